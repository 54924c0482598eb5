"""The background EpochWriter, and the throttled hand-over of checkpoints and metrics in trainer.run."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
from mlflow.tracking import MlflowClient

from trainer.run import run
from trainer.train import checkpoint
from trainer.train.writer import EpochWriter


def test_the_writer_writes_the_checkpoint_before_logging_and_close_waits_for_both(tmp_path):
    events = []

    def write(path, payload):
        time.sleep(0.05)
        events.append(("write", payload["n"]))

    writer = EpochWriter(tmp_path / "c.pt", lambda epochs: events.append(("log", [e for e, _, _ in epochs])), write)
    writer.submit({"n": 1}, [(1, 0, {"val/ce": 1.0})])
    writer.close()
    assert events == [("write", 1), ("log", [1])]


def test_a_busy_writer_writes_only_the_newest_checkpoint_and_logs_every_waiting_epoch(tmp_path):
    release, events = threading.Event(), []

    def write(path, payload):
        release.wait(5)
        events.append(("write", payload["n"]))

    writer = EpochWriter(tmp_path / "c.pt", lambda epochs: events.append(("log", [e for e, _, _ in epochs])), write)
    writer.submit({"n": 1}, [(1, 0, {})])
    time.sleep(0.05)  # the writer is now inside write(1)
    writer.submit({"n": 2}, [(2, 0, {})])
    writer.submit({"n": 3}, [(3, 0, {})])
    release.set()
    writer.close()
    assert events == [("write", 1), ("log", [1]), ("write", 3), ("log", [2, 3])]


def test_a_writer_error_reaches_the_training_thread_once(tmp_path):
    def fail(path, payload):
        raise OSError("disk full")

    writer = EpochWriter(tmp_path / "c.pt", lambda epochs: None, fail)
    writer.submit({"n": 1}, [(1, 0, {})])
    time.sleep(0.1)
    with pytest.raises(OSError, match="disk full"):
        writer.submit({"n": 2}, [(2, 0, {})])
    with pytest.raises(RuntimeError, match="stopped after an earlier error"):
        writer.submit({"n": 3}, [(3, 0, {})])
    writer.close()  # already reported: close does not raise it a second time


def test_close_raises_an_error_of_the_last_hand_over(tmp_path):
    writer = EpochWriter(tmp_path / "c.pt", lambda epochs: (_ for _ in ()).throw(ConnectionError("server gone")),
                         lambda path, payload: None)
    writer.submit({"n": 1}, [(1, 0, {})])
    with pytest.raises(ConnectionError, match="server gone"):
        writer.close()


def test_throttled_runs_still_log_every_epoch_and_end_with_the_last_checkpoint(run_cfg, store):
    handed_over = []
    real_snapshot = checkpoint.snapshot

    def counting_snapshot(**parts):
        if "copy_state" not in parts:  # not a copy kept in case the run fails
            handed_over.append(parts["state"].epoch)
        return real_snapshot(**parts)

    with mock.patch.object(checkpoint, "snapshot", counting_snapshot):
        result = run(run_cfg("trainer.epochs=5", "trainer.patience=null", "trainer.persist_every_s=1000"))
        # the first epoch at once, then none until the last: the epochs came faster than the interval
        assert handed_over == [1, 5]
        handed_over.clear()
        run(run_cfg("trainer.epochs=5", "trainer.patience=null", "trainer.persist_every_s=0"))
        assert handed_over == [1, 2, 3, 4, 5]
    client = MlflowClient(store)
    history = client.get_metric_history(result.run_id, "val/ce")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    stamps = [m.timestamp for m in history]  # each epoch keeps the time it ended, not the time it was logged
    assert stamps == sorted(stamps) and stamps[1] <= stamps[4]
    saved = checkpoint.load(Path(client.get_run(result.run_id).data.tags["checkpoint.path"]), result.run_id)
    assert saved["loop"]["epoch"] == 5


def test_a_failing_tracking_store_fails_the_run_with_its_error(run_cfg, store):
    from mlflow.tracking import MlflowClient as Client

    with mock.patch.object(Client, "log_batch", side_effect=ConnectionError("tracking server went away")), \
            pytest.raises(ConnectionError, match="went away"):
        run(run_cfg("trainer.epochs=3", "trainer.persist_every_s=0"))
    client = MlflowClient(store)
    r = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                           order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert r.info.status == "FAILED" and "went away" in r.data.tags["error"]


def _fail_at(epoch: int):
    """loop.train_epoch that trains as usual, then fails at `epoch` as a diverging loss does: after its steps
    changed the weights."""
    from trainer.train import loop

    real = loop.train_epoch

    def train_epoch(*args, **kwargs):
        out = real(*args, **kwargs)
        if args[6] == epoch:
            raise loop.NonFiniteLoss(epoch, 3)
        return out
    return mock.patch.object(loop, "train_epoch", train_epoch)


def _latest(store):
    client = MlflowClient(store)
    return client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                              order_by=["attributes.start_time DESC"], max_results=1)[0]


def test_a_failing_run_keeps_every_completed_epoch_and_the_checkpoint_of_the_last(run_cfg, store):
    from trainer.train.loop import NonFiniteLoss

    throttled = ("trainer.epochs=10", "trainer.patience=null", "trainer.persist_every_s=1000")
    with _fail_at(4), pytest.raises(NonFiniteLoss) as failed:
        run(run_cfg(*throttled))
    r = _latest(store)
    client = MlflowClient(store)
    assert r.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(r.info.run_id, "val/ce")] == [1, 2, 3]
    path = Path(r.data.tags["checkpoint.path"])
    assert f"Epochs 1-3 are logged in MLflow and the checkpoint of epoch 3 is kept in {path}." in str(failed.value)
    assert "Epochs 1-3" in r.data.tags["error"]
    kept = checkpoint.load(path, r.info.run_id)
    assert kept["loop"]["epoch"] == 3 and kept["loop"]["progress"] is None
    # the weights after epoch 3, not those epoch 4 changed before it failed: as a clean 3-epoch run ends
    clean = run(run_cfg("trainer.epochs=3", "trainer.patience=null", "trainer.persist_every_s=1000"))
    ended = checkpoint.load(Path(client.get_run(clean.run_id).data.tags["checkpoint.path"]), clean.run_id)
    assert kept["model"].keys() == ended["model"].keys()
    for key, value in kept["model"].items():
        assert torch.equal(value, ended["model"][key]), key
    assert client.list_artifacts(r.info.run_id, "checkpoint")  # and logged with the run, as any run's


def test_a_run_failing_in_its_first_epoch_says_it_kept_nothing(run_cfg, store):
    from trainer.train.loop import NonFiniteLoss

    with _fail_at(1), pytest.raises(NonFiniteLoss, match="No epoch completed: no metrics or checkpoint"):
        run(run_cfg("trainer.epochs=5"))
    r = _latest(store)
    assert r.info.status == "FAILED" and "val/ce" not in r.data.metrics
    assert not Path(r.data.tags["checkpoint.path"]).exists()
