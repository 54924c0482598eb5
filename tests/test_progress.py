"""Messages in the job's log: long steps say they run and how long they took, each epoch gets one line."""
from __future__ import annotations

import logging
import time

import torch
from omegaconf import OmegaConf

from trainer.models.losses import build_loss
from trainer.models.networks import MLP
from trainer.runtime import progress
from trainer.train import loop
from trainer.train.loop import FitConfig, Tensors, fit


def test_a_long_step_logs_its_start_a_heartbeat_and_its_duration(caplog):
    caplog.set_level(logging.INFO, logger="trainer")
    with progress.step("data: resampling=smote of 10 train samples", heartbeat_s=0.05):
        time.sleep(0.3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "data: resampling=smote of 10 train samples ..."
    assert any("still running" in line for line in lines[1:-1])
    assert lines[-1].startswith("data: resampling=smote of 10 train samples: done in 0.")


def _fit_lines(caplog, epochs: int) -> list[str]:
    caplog.set_level(logging.INFO, logger="trainer")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = MLP((4,), 3, hidden=[8])
    fit(model, build_loss(OmegaConf.create({"name": "plain"}), [1, 1, 1]), torch.optim.Adam(model.parameters()),
        Tensors(x, y), Tensors(x, y), ["a", "b", "c"], FitConfig(epochs=epochs, batch_size=16, progress=False), g,
        on_epoch=lambda epoch, metrics: None)
    return [r.getMessage() for r in caplog.records if r.name == "trainer.train.loop"]


def test_fast_epochs_are_logged_at_most_once_a_second_and_always_the_first_and_last(caplog):
    lines = _fit_lines(caplog, 5)  # a few milliseconds each
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/5", "epoch 5/5"]


def test_fit_logs_one_line_per_epoch_with_its_metrics_and_seconds(caplog, monkeypatch):
    monkeypatch.setattr(loop, "LOG_EVERY_S", 0.0)  # as epochs of a second or more are
    lines = _fit_lines(caplog, 3)
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    for line in lines:
        fields = line.split("  ")
        assert [f.split()[0] for f in fields[1:4]] == ["train/ce", "val/ce", "val/balanced_accuracy"]
        assert fields[-1].endswith(" s") and float(fields[-1][:-2]) >= 0
