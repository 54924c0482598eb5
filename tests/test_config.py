"""Every option of every config group composes and validates; every bad value stops with a named key."""
from __future__ import annotations

import pytest
from conftest import CONF, make_cfg, train_cli
from mlflow.tracking import MlflowClient

from trainer.config import ConfigError, validate

# remedy options exist for the study presets, which add the group (tests/test_studies.py composes them);
# hparams_search presets are whole searches (tests/test_search.py composes them)
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra", "remedy",
                                                                                     "hparams_search"))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_groups_of_the_design_are_present():
    expected = {"dataset", "imbalance", "noise", "model", "loss", "resampling", "regularization", "optim", "ssl"}
    assert expected <= set(GROUPS)
    for group, option in [("dataset", "digits"), ("imbalance", "longtail"), ("model", "mlp"), ("loss", "plain"),
                          ("resampling", "none"), ("regularization", "none"), ("optim", "adam"), ("noise", "none"),
                          ("ssl", "none")]:
        assert make_cfg()[group].name == option, f"default of {group} should be {option}"


# Options that cannot run without a setting of the user's (their file or folder).
REQUIRED = {("dataset", "csv"): ["dataset.path=my.csv", "dataset.target=label"],
            ("dataset", "image_folder"): ["dataset.path=pets/"]}


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_option_composes_and_validates(group, option):
    cfg = make_cfg(f"{group}={option}", *REQUIRED.get((group, option), []))
    assert cfg[group].name == option
    validate(cfg)


BAD = [
    ("loss=focal", "loss.gamma=-1", "loss.gamma"),
    ("loss=label_smoothed", "loss.smoothing=1.5", "loss.smoothing"),
    ("loss=weighted", "loss.scheme=bogus", "loss.scheme"),
    ("loss=focal", "loss.alpha=7", "loss.alpha"),
    ("imbalance=longtail", "imbalance.ratio=0.5", "imbalance.ratio"),
    ("imbalance=step", "imbalance.minority_fraction=1.5", "imbalance.minority_fraction"),
    ("noise=symmetric", "noise.rate=1.2", "noise.rate"),
    ("regularization=dropout", "regularization.dropout=1.0", "regularization.dropout"),
    ("regularization=l2", "regularization.l2=-1", "regularization.l2"),
    ("optim=sgd", "optim.lr=0", "optim.lr"),
    ("trainer.epochs=1", "trainer.epochs=0", "trainer.epochs"),
    ("trainer.epochs=1", "trainer.device=tpu", "trainer.device"),
    ("trainer.epochs=1", "trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.epochs=1", "trainer.precision=fp16", "trainer.precision"),
    ("trainer.epochs=1", "trainer.monitor=val/auc", "trainer.monitor"),
    ("trainer.epochs=1", "trainer.channels_last=maybe", "trainer.channels_last"),
    ("trainer.epochs=1", "trainer.persist_every_s=-1", "trainer.persist_every_s"),
    ("trainer.epochs=1", "trainer.patience=0", "trainer.patience"),
    ("trainer.epochs=1", "split.val=0.7", "split.val"),
    ("resampling=adasyn", "resampling.sampler.n_neighbors=0", "resampling.sampler.n_neighbors"),
    ("resampling=smote_tomek", "resampling.sampler.smote.k_neighbors=0", "resampling.sampler.smote.k_neighbors"),
    ("ssl=pseudo_label", "ssl.labeled_fraction=0", "ssl.labeled_fraction"),
    ("ssl=pseudo_label", "ssl.threshold=1.0", "ssl.threshold"),
    ("ssl=pseudo_label", "ssl.warmup_epochs=-1", "ssl.warmup_epochs"),
    ("regularization=elastic", "regularization.l1=-1", "regularization.l1"),
]


@pytest.mark.parametrize("choice,bad,key", BAD, ids=[b[1] for b in BAD])
def test_bad_value_names_the_key_and_the_allowed_values(choice, bad, key):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(choice, bad))
    assert err.value.key == key
    message = str(err.value)
    assert message.startswith(f"{key}=") and "must be" in message


def test_device_error_lists_the_allowed_devices():
    with pytest.raises(ConfigError, match=r"auto \| cpu \| cuda"):
        validate(make_cfg("trainer.device=tpu"))


@pytest.mark.parametrize("args,key", [
    (["loss=focal", "loss.gamma=-1"], "loss.gamma"),
    (["imbalance.ratio=0.5"], "imbalance.ratio"),
    (["trainer.device=tpu"], "trainer.device"),
])
def test_cli_bad_value_exits_nonzero_with_one_message_and_no_run(tmp_path, args, key):
    proc = train_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and key in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    db = tmp_path / "mlflow.db"
    if db.exists():
        client = MlflowClient(f"sqlite:///{db}")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert not [r for r in runs if r.info.status == "RUNNING"]


def test_cli_unknown_option_is_refused_by_hydra(tmp_path):
    proc = train_cli("loss=nope", cwd=tmp_path)
    assert proc.returncode != 0
    assert "loss" in proc.stderr and "plain" in proc.stderr  # Hydra lists the available options
