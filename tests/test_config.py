"""Every option of every config group composes and validates; every bad value stops with a named key."""
from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import CONF, make_cfg, train_cli
from trainer.config import UnknownKey, check_command_line, validate
from trainer.errors import ConfigError, UserError

# remedy options exist for the study presets, which add the group (tests/test_studies.py composes them);
# hparams_search presets are whole searches (tests/test_search.py composes them); sweeper options choose Hydra's
# sweeper (every sweep test uses the default)
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra", "remedy",
                                                                                     "hparams_search", "sweeper"))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_groups_of_the_design_are_present():
    expected = {"dataset", "imbalance", "noise", "model", "loss", "resampling", "regularization", "optim", "ssl"}
    assert expected <= set(GROUPS)
    for group, option in [("dataset", "digits"), ("imbalance", "longtail"), ("model", "mlp"), ("loss", "plain"),
                          ("resampling", "none"), ("regularization", "none"), ("optim", "adam"), ("noise", "none"),
                          ("ssl", "none")]:
        assert make_cfg()[group].name == option, f"default of {group} should be {option}"


# Options that cannot run without a setting of the user's (their file or folder), or outside text data.
TEXT = ["dataset=spam_assassin"]
REQUIRED = {("dataset", "csv"): ["dataset.path=my.csv", "dataset.target=label"],
            ("dataset", "image_folder"): ["dataset.path=pets/"], ("dataset", "text"): ["dataset.path=mail.csv"],
            ("model", "ngram_bag"): TEXT, ("model", "text_cnn"): TEXT, ("model", "transformer"): TEXT,
            ("tokenizer", "wordpiece"): TEXT, ("tokenizer", "bpe"): TEXT, ("tokenizer", "char"): TEXT,
            ("tokenizer", "pretrained"): TEXT + ["model=transformer", "model.pretrained={folder}"]}


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_option_composes_and_validates(group, option, tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a save_pretrained folder, as far as validation looks
    cfg = make_cfg(f"{group}={option}", *(o.format(folder=tmp_path) for o in REQUIRED.get((group, option), [])))
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
    ("trainer.epochs=1", "seed=-1", "seed"),  # numpy's seeds are 0 <= seed < 2**32
    ("trainer.epochs=1", "seed=4294967296", "seed"),
    ("trainer.epochs=1", "eval.shot_thresholds=[20,100]", "eval.shot_thresholds"),  # [many, few]: many >= few
    ("trainer.epochs=1", "eval.shot_thresholds=[100]", "eval.shot_thresholds"),
    ("optim=adam", "optim.lr=inf", "optim.lr"),  # Hydra reads inf and nan as floats: no setting takes them
    ("optim=adam", "optim.lr=nan", "optim.lr"),
    ("imbalance=longtail", "imbalance.ratio=inf", "imbalance.ratio"),
    ("loss=label_smoothed", "loss.smoothing=1.0", "loss.smoothing"),  # a uniform target: nothing to learn
    ("model=mlp", "model.hidden=[0]", "model.hidden"),
    ("model=mlp", "model.hidden=[64,-1]", "model.hidden"),
    ("model=cnn", "model.channels=[]", "model.channels"),
    ("model=cnn", "model.hidden=0", "model.hidden"),
    ("trainer.epochs=1", "eval.figures=never", "eval.figures"),  # now | later | off
]


@pytest.mark.parametrize("choice,bad,key", BAD, ids=[b[1] for b in BAD])
def test_bad_value_names_the_key_and_the_allowed_values(choice, bad, key):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(choice, bad))
    assert err.value.key == key
    message = str(err.value)
    assert message.startswith(f"{key}=") and "must be" in message


def test_a_non_finite_value_is_said_to_be_refused_for_being_one():
    with pytest.raises(ConfigError, match=r"optim.lr=inf is not valid: .*inf and nan are not accepted"):
        validate(make_cfg("optim.lr=inf"))


def test_a_model_without_hidden_layers_is_still_accepted():
    validate(make_cfg("model.hidden=[]"))


def test_device_error_lists_the_allowed_devices():
    with pytest.raises(ConfigError, match=r"auto \| cpu \| cuda"):
        validate(make_cfg("trainer.device=tpu"))


def test_the_largest_numpy_seed_is_accepted():
    validate(make_cfg("seed=4294967295"))


@pytest.mark.parametrize("overrides,key,near", [
    (["+trainer.epoch=3"], "trainer.epoch", "trainer.epochs"),  # once accepted and ignored (41 epochs)
    (["+seeds=1"], "seeds", "seed"),
    (["+model.hiden=[8]"], "model.hiden", "model.hidden"),
    (["+optim.amsgrd=true"], "optim.amsgrd", "optim.amsgrad"),  # near a constructor argument of torch.optim.Adam
    (["resampling=smote_tomek", "+resampling.sampler.smote.k_neighbor=3"], "resampling.sampler.smote.k_neighbor",
     "resampling.sampler.smote.k_neighbors"),
    (["resampling=smote_tomek", "+resampling.sampler.smote.n_jobs=2"], "resampling.sampler.smote.n_jobs", None),
    (["+dataset.credentials={user: u}"], "dataset.credentials", None),
])
def test_a_key_nothing_reads_is_refused_naming_the_near_miss(overrides, key, near):
    with pytest.raises(UnknownKey) as err:
        validate(make_cfg(*overrides))
    assert err.value.key == key
    message = str(err.value)
    assert message.startswith(f"+{key}=") and "not a setting" in message
    assert (f"did you mean {near}?" in message) if near else "did you mean" not in message


@pytest.mark.parametrize("overrides", [
    ["+optim.amsgrad=true"],  # an argument of the optimizer's constructor
    ["resampling=smote_tomek", "+resampling.sampler.n_jobs=2"],  # of SMOTETomek's
    ["resampling=smote", "resampling.sampler.sampling_strategy={0: 100}"],  # a dict value of a declared key
    ["dataset=mnist", "+dataset.augment=true"],  # read by every image dataset, declared by cifar10
    ["+tracking.api_token=abc"],  # for a tracking plugin: recorded masked
])
def test_legitimate_additions_are_accepted(overrides):
    validate(make_cfg(*overrides))


def test_a_key_of_another_option_is_accepted_with_a_warning(caplog):
    # a sweep -m loss=plain,focal +loss.alpha=0.25 applies the addition to both options
    validate(make_cfg("loss=focal", "+loss.alpha=0.25"))
    assert not caplog.records
    validate(make_cfg("loss=plain", "+loss.alpha=0.25"))
    assert "loss.alpha is not read by loss=plain (only by loss=focal, loss=sce)" in caplog.text


@pytest.mark.parametrize("args,key", [
    (["seed=-1"], "seed=-1"),
    (["+trainer.epoch=3"], "did you mean trainer.epochs?"),
    (["loss=focal", "loss.gamma=-1"], "loss.gamma"),
    (["imbalance.ratio=0.5"], "imbalance.ratio"),
    (["trainer.device=tpu"], "trainer.device"),
    # without '+': Hydra's multi-line "not in struct" and exit 1
    (["trainer.epoch=3"], "did you mean trainer.epochs? Write trainer.epochs=3"),
    (["-m", "trainer.epoch=3,4"], "did you mean trainer.epochs?"),
    (["loss.gamma=2"], "loss.gamma is not a setting of loss=plain (only of loss=class_balanced, loss=focal)"),
    (["dataset=csv", "imbalance.ratio=3"], "imbalance.ratio is not a setting of imbalance=none"),
    (["optim.amsgrad=true"], "added with '+': +optim.amsgrad=true"),
    (["optim.lr=inf"], "optim.lr=inf"),
    (["seed=[0,1]"], "seed=[0, 1] is not valid: seed must be an integer"),  # was a ConfigTypeError traceback
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


@pytest.mark.parametrize("args", [
    ["loss=focal", "loss.gamma=2"], ["imbalance=step", "dataset=csv", "imbalance.ratio=3"], ["+trainer.epoch=3"],
    ["-m", "loss=plain,focal", "loss.gamma=2"],  # the plain jobs: composing tells, not the command line
    ["remedy=smote", "loss.gamma=2"], ["hydra.run.dir=x", "seed=1"], ["model=cnn", "model.channels=[8]"],
    ["resampling=smote", "resampling.sampler.k_neighbors=3"],
    ["trainer.epochs=[oops"],  # a syntax error: Hydra's own message names it
    ["-m", "hydra/launcher=joblib"], ["hydra/job_logging=disabled"], ["-m", "hydra/sweeper=ce_optuna"],
    ["-m", "seed=0,1"], ["--multirun", "seed=range(0,3)"], ["experiment=loss_zoo", "seed=0,1"],  # a preset's MULTIRUN
    ["seed=0,1", "--cfg", "job"],
    ["-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["seed=-1"], ["--cfg", "job", "-p", "loss"],
    ["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
    ["resampling=balanced_sampler", "+resampling.sampler={_target_: x}", "resampling.sampler.k_neighbors=3"],
])
def test_the_command_line_check_leaves_what_hydra_can_set_or_only_composing_tells(args):
    check_command_line(args)


@pytest.mark.parametrize("args,message", [
    # an option no file of conf/ has: Hydra printed "Could not find", its search path, and exited 1
    (["loss=focall"], "loss=focall: loss has no option 'focall'; did you mean loss=focal?"),
    (["-m", "loss=plain,focall"], "loss has no option 'focall'"),
    (["+remedy=plainn"], "did you mean +remedy=plain?"),
    (["+experiment=loss_zo"], "did you mean +experiment=loss_zoo?"),
    # a group's name mistyped: the group, not '+los'
    (["los=focal"], "did you mean loss? Write loss=focal."),
    (["lose=weighted"], "did you mean loss? Write loss=weighted."),
    (["--mutlirun", "seed=0,1"], "--mutlirun: train.py has no such flag; did you mean --multirun?"),  # argparse's usage
    # a constructor's argument mistyped without '+': Hydra's "Key 'k_neighbours' is not in struct"
    (["resampling=smote", "resampling.sampler.k_neighbours=3"],
     "did you mean resampling.sampler.k_neighbors? Write resampling.sampler.k_neighbors=3."),
    (["resampling=smote", "resampling.sampler.random_state=3"], "added with '+': +resampling.sampler.random_state=3"),
    (["resampling.sampler.k_neighbors=3"], "resampling.sampler.k_neighbors is not a setting of resampling=none (only"),
    (["resampling.sampler.k_neighbours=3"], "resampling.sampler is not a setting of resampling=none (only"),
    (["dataset=csv", "dataset.path=~/my.csv"], "write dataset.path=$HOME/my.csv"),  # Hydra's LexerNoViableAlt...
    # a key inside a node the option sets to null: Hydra's "Key 'k_neighbors' is not in struct"
    (["resampling=balanced_sampler", "resampling.sampler.k_neighbors=3"],
     "resampling=balanced_sampler sets resampling.sampler to null (conf/resampling/balanced_sampler.yaml), so it has "
     "no resampling.sampler.k_neighbors (resampling.sampler.k_neighbors is a setting of resampling=borderline_smote, "
     "resampling=smote); choose one of those"),
    # one of Hydra's groups: its "Could not find" with the config search path, exit 1
    (["-m", "hydra/launcher=joblibb"], "hydra/launcher has no option 'joblibb'; did you mean hydra/launcher=joblib? "
                                      "its options are basic, joblib, submitit_local, submitit_slurm"),
    (["hydra/hydra_logging=nonee"], "did you mean hydra/hydra_logging=none?"),
    # a sweep's values without -m: Hydra's "Ambiguous value" or "requires --multirun", exit 1
    (["seed=0,1", "trainer.epochs=2"], "seed=0,1: several values are a sweep, which runs with -m (--multirun): "
                                       "python train.py -m seed=0,1 trainer.epochs=2"),
    (["seed=range(0,3)"], "seed=range(0,3): several values are a sweep"),
    # a setting the launcher lacks: Hydra's "Key 'n_jobs' not in 'BasicLauncherConf'", exit 1
    (["-m", "seed=0,1", "hydra.launcher.n_jobs=2"], "hydra.launcher.n_jobs=2: hydra/launcher=basic has no setting "
                                                  "n_jobs; it is a setting of hydra/launcher=joblib: add "
                                                  "hydra/launcher=joblib."),
    (["-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobz=2"],
     "did you mean hydra.launcher.n_jobs? Write hydra.launcher.n_jobs=2."),
])
def test_the_command_line_check_names_the_option_or_argument_meant(args, message):
    with pytest.raises(UserError) as err:
        check_command_line(args)
    assert message in str(err.value)


def test_a_near_miss_that_is_itself_added_with_plus_keeps_the_plus():
    # "did you mean optim.betas? Write optim.betas=... (without '+')" was then refused as not a setting
    with pytest.raises(UnknownKey) as err:
        validate(make_cfg("+optim.betaz=[0.9,0.99]"))
    assert "did you mean optim.betas? Write +optim.betas=[0.9, 0.99]." in str(err.value)


def test_cli_unknown_option_is_one_error_line(tmp_path):
    proc = train_cli("loss=nope", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: loss=nope: loss has no option 'nope'; its options "
                                                           "are balanced_softmax, ")


def test_output_folders_are_unique_per_run_even_within_one_second():
    # one-second folders made two runs started in one second share one folder (and its checkpoint)
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    def folders() -> tuple[str, str]:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            hydra = compose("config", return_hydra_config=True).hydra
            OmegaConf.resolve(hydra)
            return hydra.run.dir, hydra.sweep.dir

    first, second = folders(), folders()
    assert first[0] != second[0] and first[1] != second[1]
    assert first[0].startswith("outputs/runs/") and first[1].startswith("outputs/sweeps/")


def test_setting_errors_survive_pickling_as_a_launcher_worker_sends_them_back():
    # joblib returns a failed job's error by pickle: ConfigError(key, value, allowed) could not be rebuilt from its
    # message, and the sweep reported a broken process pool instead
    import pickle

    from trainer.train.checkpoint import CheckpointError
    from trainer.train.loop import NonFiniteLoss

    for error in (ConfigError("loss.alpha", 0.25, "a list"), UnknownKey("loss.gama", 2, ["loss.gamma"]),
                  CheckpointError(Path("/x/checkpoint.pt"), "truncated"), NonFiniteLoss(3, 4)):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error) and back.__dict__ == error.__dict__
