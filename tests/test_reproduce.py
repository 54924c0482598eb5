"""Provenance, determinism, scripts/reproduce.py and what must never be logged."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from importlib import metadata
from unittest import mock

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from helpers import ROOT, make_cfg, train_cli
from trainer.config import validate
from trainer.data.prepare import prepare
from trainer.errors import ConfigError
from trainer.reproduce import main as reproduce_main
from trainer.run import run
from trainer.tracking import provenance
from trainer.tracking.masking import is_secret, mask_overrides
from trainer.tracking.params import flatten

CPU = "trainer.device=cpu"  # deterministic by default there (on CUDA trainer.deterministic=auto is off)


def _histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = [k for k in client.get_run(run_id).data.metrics if not k.startswith("time/")]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_two_runs_of_one_config_have_bit_identical_metric_histories(run_cfg, store):
    cfg = ("trainer.epochs=3", "regularization=dropout", "resampling=smote", "noise=symmetric", CPU)
    a, b = run(run_cfg(*cfg)), run(run_cfg(*cfg))
    client = MlflowClient(store)
    first, second = _histories(client, a.run_id), _histories(client, b.run_id)
    assert len(first["val/ce"]) == 3 and len(first) > 20
    assert first == second  # exact float equality of every value at every step
    assert client.get_run(a.run_id).data.tags["deterministic"] == "true"  # auto on CPU


def test_a_run_records_commit_versions_device_threads_seed_data_fingerprint_and_config(run_cfg, store):
    cfg = run_cfg("trainer.threads=1", "seed=4", CPU)
    result = run(cfg)
    assert torch.get_num_threads() == 1
    client = MlflowClient(store)
    r = client.get_run(result.run_id)
    tags = r.data.tags
    assert tags["git.commit"] == _git("rev-parse", "HEAD").strip()
    dirty = bool(_git("status", "--porcelain"))
    assert tags["git.dirty"] == str(dirty).lower()
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert ("git.diff" in artifacts) == dirty
    for package in ("torch", "torchvision", "mlflow", "hydra-core", "imbalanced-learn", "numpy", "scikit-learn"):
        assert tags[f"version.{package}"] == metadata.version(package)
    assert tags["version.python"] == ".".join(map(str, sys.version_info[:3]))
    assert tags["device.name"] and tags["device"] == "cpu"
    assert tags["torch.threads"] == r.data.params["torch.threads"] == "1"
    assert tags["seed"] == "4"
    assert tags["data.fingerprint"] == provenance.data_fingerprint(prepare(cfg).dataset)
    logged = yaml.safe_load(open(client.download_artifacts(result.run_id, "config.yaml")))
    assert logged == OmegaConf.to_container(cfg, resolve=True)


def test_the_data_fingerprint_follows_the_training_data():
    base = provenance.data_fingerprint(prepare(make_cfg()).dataset)
    assert base == provenance.data_fingerprint(prepare(make_cfg()).dataset)
    for other in (["noise=symmetric"], ["imbalance.ratio=10"], ["resampling=undersample"], ["seed=1"]):
        assert provenance.data_fingerprint(prepare(make_cfg(*other)).dataset) != base, other


def test_reproduce_reruns_a_run_and_reports_identical_final_metrics(run_cfg, store, capsys):
    original = run(run_cfg("regularization=dropout", "loss=focal", CPU))
    assert reproduce_main([original.run_id, "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert f"reproduces run {original.run_id}: all" in out and "test/balanced_accuracy" in out
    client = MlflowClient(store)
    copy = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id],
                              filter_string=f"tags.reproduces = '{original.run_id}'")
    assert len(copy) == 1 and copy[0].info.status == "FINISHED"
    assert copy[0].data.params["trainer.threads"] == str(torch.get_num_threads())  # pinned to the original's


def test_reproduce_names_the_metrics_that_differ_and_honours_tolerance(run_cfg, store, capsys):
    original = run(run_cfg(CPU))
    client = MlflowClient(store)
    accuracy = client.get_run(original.run_id).data.metrics["test/accuracy"]
    client.log_metric(original.run_id, "test/accuracy", accuracy + 0.01, step=99)  # now its final value differs
    assert reproduce_main([original.run_id, "--tracking-uri", store]) == 1
    out = capsys.readouterr().out
    assert "1 differ (tolerance 0): test/accuracy" in out
    assert reproduce_main([original.run_id, "--tracking-uri", store, "--tolerance", "0.02"]) == 0
    assert "equal within 0.02" in capsys.readouterr().out


def test_reproduce_refuses_another_commit_unless_allowed(run_cfg, store, capsys):
    original = run(run_cfg("trainer.epochs=1", CPU))
    client = MlflowClient(store)
    client.set_tag(original.run_id, "git.commit", "0" * 40)
    before = len(client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id]))
    assert reproduce_main([original.run_id, "--tracking-uri", store]) == 2
    assert "--allow-commit-mismatch" in capsys.readouterr().err
    assert len(client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])) == before
    assert reproduce_main([original.run_id, "--tracking-uri", store, "--allow-commit-mismatch"]) == 0


def test_the_reproduce_script_explains_an_unknown_run(tmp_path, store):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "0" * 32, "--tracking-uri",
                           store], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"run {'0' * 32} is not in {store}" in proc.stderr and "Traceback" not in proc.stderr


def test_reproducing_a_sweep_s_parent_says_it_is_one_and_how_to_reproduce_its_jobs_or_rerun_it(store, capsys):
    # it said "commit unknown", then "not logged by this harness"
    from trainer.tracking.store import setup_experiment

    client = MlflowClient(store)
    experiment = setup_experiment(store, "ce-harness")
    parent = client.create_run(experiment, run_name="sweep loss=plain,weighted seed=0",
                               tags={"sweep": "parent", "sweep.overrides": "loss=plain,weighted seed=0"})
    jobs = [client.create_run(experiment, run_name=name, tags={"mlflow.parentRunId": parent.info.run_id})
            for name in ("loss=plain,seed=0", "loss=weighted,seed=0")]
    for r in (parent, *jobs):
        client.set_terminated(r.info.run_id)
    assert reproduce_main([parent.info.run_id, "--tracking-uri", store]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: run {parent.info.run_id} is the parent run of a sweep (python ")
    assert ("train.py -m loss=plain,weighted seed=0): it trained nothing itself, so there is nothing to run again. "
            "Instead, reproduce each of its 2 jobs by its own id, e.g. python ") in error
    assert f"reproduce.py {jobs[0].info.run_id} (jobs: {jobs[0].info.run_id} (loss=plain,seed=0), " in error
    assert error.rstrip().endswith("train.py -m loss=plain,weighted seed=0") and error.count("\n") == 1
    assert "or run the whole sweep again as a new sweep: python " in error


@pytest.mark.parametrize("bad,key", [("trainer.deterministic=sometimes", "trainer.deterministic"),
                                     ("trainer.threads=0", "trainer.threads"), ("trainer.resume=abc", "trainer.resume")])
def test_bad_reproduce_settings_are_refused_by_name(bad, key):
    with pytest.raises(ConfigError, match=f"^{key}="):
        validate(make_cfg(bad))


@pytest.mark.parametrize("key,secret", [
    ("password", True), ("db.api_token", True), ("aws_secret_access_key", True), ("apiKey", True),
    ("ssh_key", True), ("key", True), ("credentials", True), ("k_neighbors", False), ("monkey", False),
    ("keyboard_layout", False), ("sampling_strategy", False), ("hf_token", True), ("tokenizer", False),
    ("tokenizer.max_length", False)])
def test_secret_looking_keys(key, secret):
    assert is_secret(key) == secret


def test_flatten_masks_set_secrets_and_keeps_unset_ones_visible():
    flat = flatten(make_cfg("+tracking.token=abc", "+tracking.password=null", "+dataset.credentials={user: u}"))
    assert flat["tracking.token"] == "***" and flat["dataset.credentials"] == "***"
    assert flat["tracking.password"] == "None" and flat["loss.name"] == "plain"


def test_mask_overrides_hides_only_secret_values():
    assert mask_overrides("loss=focal,+db.password=hunter2,seed=1") == "loss=focal,+db.password=***,seed=1"
    assert mask_overrides("tracking.api_token=abc loss.gamma=2") == "tracking.api_token=*** loss.gamma=2"


def test_a_server_asking_for_a_login_names_the_variables_to_set(store):
    import mlflow
    from mlflow.exceptions import MlflowException

    from trainer.errors import UserError
    from trainer.tracking.store import setup_experiment

    refused = MlflowException("API request to endpoint /api/2.0/mlflow/experiments/get-by-name failed with error "
                              "code 401 != 200. Response body: 'You are not authenticated.'")
    with mock.patch.object(mlflow, "get_experiment_by_name", side_effect=refused), \
            pytest.raises(UserError, match="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        setup_experiment(store, "ce-harness")


def test_environment_and_secret_settings_never_reach_mlflow(tmp_path, capsys):
    # made up here, so that no file (nor the git.diff artifact of a dirty checkout) can contain them
    env_value, secret = f"env-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    proc = train_cli("trainer.epochs=1", CPU, f"+tracking.api_token={secret}", cwd=tmp_path,
                     env={"CE_HARNESS_PROBE": env_value, "MY_SERVICE_PASSWORD": env_value})
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    (r,) = client.search_runs([client.get_experiment_by_name("ce-harness").experiment_id])
    texts = [r.info.run_name, json.dumps(r.data.params), json.dumps(r.data.tags)]
    for a in client.list_artifacts(r.info.run_id, ".hydra") + client.list_artifacts(r.info.run_id):
        if not a.is_dir and a.path.endswith((".yaml", ".json", ".diff")):
            texts.append(open(client.download_artifacts(r.info.run_id, a.path, str(tmp_path))).read())
    assert len(texts) >= 7  # run name, params, tags, config.yaml, class_counts.json, three .hydra files
    for text in texts:
        assert secret not in text and env_value not in text
    assert r.data.params["tracking.api_token"] == "***" and "tracking.api_token=***" in r.info.run_name
    # a reproduction needs the masked value back, and only that one
    assert reproduce_main([r.info.run_id, "--tracking-uri", store]) == 2
    assert "tracking.api_token" in capsys.readouterr().err
    assert reproduce_main([r.info.run_id, "--tracking-uri", store, "--set", f"tracking.api_token={secret}"]) == 0


def test_printed_commands_name_the_scripts_as_typed_from_the_working_folder(tmp_path):
    from trainer.tracking.provenance import REPO, script

    assert script("train.py", cwd=REPO) == "train.py"
    assert script("scripts/compare.py", cwd=REPO / "scripts") == "compare.py"
    assert script("train.py", cwd=tmp_path) == str(REPO / "train.py")  # from elsewhere: the absolute path
    assert script("no_such_script.py", cwd=REPO) == "no_such_script.py"  # not in a checkout: the bare name


def test_the_resume_command_keeps_the_last_of_each_override_and_drops_the_sweep_s_own(monkeypatch):
    from trainer.tracking.provenance import REPO, resume_command

    monkeypatch.chdir(REPO)
    job = ["tracking.uri=sqlite:///a.db", "tracking.parent_run_id=abc", "loss=focal", "tracking.uri=sqlite:///b.db",
           "trainer.resume=old"]
    expected = f"python train.py loss=focal tracking.uri=sqlite:///b.db trainer.resume={'f' * 32}"
    assert resume_command(job, "f" * 32) == expected


def test_the_resume_command_pastes_into_a_shell_as_the_job_s_overrides(monkeypatch):
    import shlex

    from trainer.tracking.provenance import REPO, resume_command

    monkeypatch.chdir(REPO)
    job = ["model.hidden=[64, 32]", "tracking.run_name='my run'", "loss=plain"]
    words = shlex.split(resume_command(job, "f" * 32))  # what the shell hands to train.py
    assert words == ["python", "train.py", *job, f"trainer.resume={'f' * 32}"]
