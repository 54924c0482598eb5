"""The study presets: what they sweep, what each remedy changes, and a short sweep of each run as a user would."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from mlflow.tracking import MlflowClient

from helpers import CONF, make_cfg, train_cli
from trainer.config import validate
from trainer.tracking.params import flatten

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models: on a busy 2-core machine threads only wait for each other
REMEDIES = sorted(p.stem for p in (CONF / "remedy").glob("*.yaml"))
# remedy option -> the one group option it sets
SETS = {"weighted": ("loss", "weighted"), "label_smoothed": ("loss", "label_smoothed"),
        "logit_adjusted": ("loss", "logit_adjusted"), "gce": ("loss", "gce"), "sce": ("loss", "sce"),
        "smote": ("resampling", "smote"), "undersample": ("resampling", "undersample"),
        "oversample": ("resampling", "oversample"),
        "balanced_sampler": ("resampling", "balanced_sampler"), "pseudo_label": ("ssl", "pseudo_label")}


def _sweep(study: str) -> dict[str, str]:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={study}"], return_hydra_config=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    return dict(cfg.hydra.sweeper.params)


def test_presets_sweep_what_the_studies_promise():
    assert _sweep("imbalance_study") == {"imbalance.ratio": "10,50,100", "seed": "0,1,2",
                                         "remedy": "plain,weighted,logit_adjusted,smote,undersample,balanced_sampler"}
    assert _sweep("noise_study") == {"noise.rate": "0.2,0.4", "seed": "0,1,2",
                                     "remedy": "plain,label_smoothed,gce,sce,pseudo_label"}
    study = make_cfg("experiment=imbalance_study")
    assert (study.dataset.name, study.imbalance.name, study.noise.name) == ("synthetic", "longtail", "none")
    noise = make_cfg("experiment=noise_study")
    assert (noise.dataset.name, noise.imbalance.name, noise.noise.name) == ("digits", "none", "symmetric")
    for preset in ("noise_study", "loss_zoo", "imbalance_study"):  # any loss, bounded ones included; large val split
        assert make_cfg(f"experiment={preset}").trainer.monitor == "val/balanced_accuracy"
    # the default, fair to every remedy on small and imbalanced validation splits (docs/studies.md)
    assert make_cfg("experiment=remedy_study").trainer.monitor == make_cfg().trainer.monitor == "val/balanced_ce"


def test_every_remedy_in_a_sweep_exists():
    for study in ("imbalance_study", "noise_study", "remedy_study"):
        assert set(_sweep(study)["remedy"].split(",")) <= set(REMEDIES)


@pytest.mark.parametrize("remedy", [r for r in REMEDIES if r != "plain"])
def test_each_remedy_changes_its_one_group_and_nothing_else(remedy):
    plain = flatten(make_cfg("experiment=imbalance_study", "remedy=plain"))
    cfg = make_cfg("experiment=imbalance_study", f"remedy={remedy}")
    validate(cfg)
    group, option = SETS[remedy]
    assert cfg[group].name == option and cfg.remedy.name == remedy
    changed = {k for k in plain.keys() | flatten(cfg).keys() if plain.get(k) != flatten(cfg).get(k)}
    assert changed and all(k == "remedy.name" or k.split(".")[0] == group for k in changed), changed


def _study_children(tmp_path, *args: str) -> list:
    """Run `python train.py -m ARGS` (one epoch each, seed 0) and return its child runs, all FINISHED."""
    proc = train_cli("-m", *args, "seed=0", "trainer.epochs=1", cwd=tmp_path, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert children and all(r.info.status == "FINISHED" for r in children)
    return children


def test_imbalance_study_runs_one_child_per_remedy(tmp_path):
    children = _study_children(tmp_path, "experiment=imbalance_study", "imbalance.ratio=100")
    tags = sorted((r.data.tags["remedy"], r.data.tags["loss"], r.data.tags["resampling"]) for r in children)
    assert tags == [("balanced_sampler", "plain", "balanced_sampler"), ("logit_adjusted", "logit_adjusted", "none"),
                    ("plain", "plain", "none"), ("smote", "plain", "smote"), ("undersample", "plain", "undersample"),
                    ("weighted", "weighted", "none")]
    assert {r.data.params["imbalance.ratio"] for r in children} == {"100"}


@pytest.mark.slow
def test_noise_study_runs_one_child_per_remedy(tmp_path):
    children = _study_children(tmp_path, "experiment=noise_study", "noise.rate=0.4")
    assert sorted((r.data.tags["remedy"], r.data.tags["loss"], r.data.tags["ssl"]) for r in children) == [
        ("gce", "gce", "none"), ("label_smoothed", "label_smoothed", "none"), ("plain", "plain", "none"),
        ("pseudo_label", "plain", "pseudo_label"), ("sce", "sce", "none")]
    assert all(r.data.metrics["noise/flip_rate"] == pytest.approx(0.4, abs=0.05) for r in children)
