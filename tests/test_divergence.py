"""A run whose cross-entropy diverged (finite, far above a uniform guess's ln C) is said in one line and tagged."""
from __future__ import annotations

import math

from mlflow.tracking import MlflowClient

from trainer.run import run
from trainer.train.divergence import FACTOR, TAG, find


def history(train: list[float], val: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "train/ce": t, "val/ce": v} for i, (t, v) in enumerate(zip(train, val))]


def test_a_run_that_ends_far_above_a_uniform_guess_diverged_since_the_stretch_began():
    far = FACTOR * math.log(10) * 1.01
    found = find(history([2.0, far, 1.0, far, 3e21, 5e5], [2.0, far, 1.5, far, 3e19, 9e18]), 10)
    assert found is not None and found.since == 4 and (found.train_ce, found.val_ce) == (5e5, 9e18)
    assert "since epoch 4 and end at 5e+05 and 9e+18" in found.message and "ln 10 = 23" in found.message


def test_runs_that_recover_overfit_or_go_non_finite_are_not_called_diverged():
    far = 1e9
    assert find(history([far, 0.5], [far, 0.9]), 10) is None  # recovered
    assert find(history([0.01, 0.01], [far, far]), 2) is None  # val alone: an overconfident, overfitted model
    assert find(history([far, math.nan], [far, math.nan]), 10) is None  # NonFiniteLoss says that one
    assert find([], 10) is None


def test_adam_at_lr_1e6_is_said_and_tagged(run_cfg, store, caplog):
    # it "finished" at val cross-entropy 7.9e18 and chance accuracy without a word
    result = run(run_cfg("optim.lr=1e6", "trainer.epochs=3"))
    tags = MlflowClient(store).get_run(result.run_id).data.tags
    assert tags[TAG].startswith("training diverged: train/ce and val/ce have been above 10 x ln 10 = 23 (a uniform "
                                "guess's cross-entropy) since epoch 1")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"].count(tags[TAG]) == 1
    assert TAG not in MlflowClient(store).get_run(run(run_cfg("trainer.epochs=2")).run_id).data.tags


def test_a_sweep_and_compare_name_the_runs_that_diverged(tmp_path):
    """A diverged run FINISHED, so the sweep's list of unfinished jobs leaves it out: its end and compare name it,
    or its chance-level score pulls its group's mean down unsaid."""
    import subprocess
    import sys

    from helpers import ROOT, train_cli

    proc = train_cli("-m", "optim.lr=1e6,1e-3", "trainer.epochs=2", "eval.figures=off", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: 1 run of the sweep finished but diverged in training (tag diverged; chance-level " \
           "scores): eval.figures=off,optim.lr=1000000.0,trainer.epochs=2. Lower optim.lr" in proc.stderr
    compared = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare.py")], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stderr
    assert "1 run diverged (tag diverged: finished at chance-level scores, which pull their group's mean down): " \
           "eval.figures=off,optim.lr=1000000.0,trainer.epochs=2" in compared.stdout
