"""trainer.batch_size against the train split: a batch of one sample that BatchNorm cannot train on is refused
before the first step; a batch larger than the split is said."""
from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from trainer.errors import UserError
from trainer.models.batches import check_batches, last_batch, single_value_norms
from trainer.models.networks import MLP, resnet18
from trainer.run import run


def test_last_batch_follows_the_loops_slicing():
    assert [last_batch(300, b) for b in (13, 12, 300, 301, 1)] == [1, 12, 300, 300, 1]


def test_only_norm_layers_that_see_one_value_per_channel_are_named():
    small = resnet18((1, 8, 8), 10)  # 8 px shrinks to 1x1 by layer4
    assert single_value_norms(small, torch.zeros(1, 1, 8, 8)) == ["layer4.0.bn1", "layer4.0.bn2",
                                                                    "layer4.0.downsample.1", "layer4.1.bn1",
                                                                    "layer4.1.bn2"]
    assert single_value_norms(resnet18((3, 32, 32), 10), torch.zeros(1, 3, 32, 32)) == []  # 4x4 at layer4
    assert single_value_norms(MLP((64,), 10), torch.zeros(1, 64)) == []
    assert small.training  # the probe leaves the mode (and the running statistics) as they were
    assert all(m.num_batches_tracked == 0 for m in small.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_a_last_batch_of_one_sample_is_refused_with_sizes_that_work():
    model = resnet18((1, 8, 8), 10)
    with pytest.raises(UserError, match=r"trainer.batch_size=13: the train split holds 300 samples, so the last batch "
                                        r"of every epoch holds one sample, and model=resnet18 cannot train on it .* "
                                        r"e.g. trainer.batch_size=12 or trainer.batch_size=14\."):
        check_batches(model, torch.zeros(1, 1, 8, 8), 300, 13, "resnet18")
    with pytest.raises(UserError, match=r"trainer.batch_size=1: .* so every batch holds one sample"):
        check_batches(model, torch.zeros(1, 1, 8, 8), 300, 1, "resnet18")
    check_batches(model, torch.zeros(1, 1, 8, 8), 300, 12, "resnet18")
    check_batches(MLP((64,), 10), torch.zeros(1, 64), 300, 13, "mlp")  # no BatchNorm: a batch of one trains


def test_a_batch_larger_than_the_train_split_is_said(caplog):
    check_batches(MLP((64,), 10), torch.zeros(1, 64), 300, 512, "mlp")
    assert "trainer.batch_size=512 is larger than the train split (300 samples): each epoch is one optimizer step" \
        in caplog.text


def test_the_run_stops_before_training_and_ends_failed(run_cfg, store):
    # BatchNorm's ValueError, mid-epoch, before: model=resnet18 trainer.batch_size=13 on the default digits
    with pytest.raises(UserError, match="trainer.batch_size=13") as err:
        run(run_cfg("model=resnet18", "trainer.batch_size=13", "trainer.epochs=1"))
    client = MlflowClient(store)
    failed = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                                order_by=["start_time DESC"], max_results=1)[0]
    assert failed.info.status == "FAILED" and str(err.value) in failed.data.tags["error"]
    assert not client.get_metric_history(failed.info.run_id, "train/ce")  # stopped before the first step
