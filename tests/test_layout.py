"""The package's shape: stage subpackages in layers, imports only downwards and without cycles, a light start-up for
what Hydra imports on every command, and the names that runs logged before the move still use."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import ROOT, make_cfg
from trainer.errors import UserError

# Bottom to top. A module may import its own layer and those below, never one above; analysis (compare, its
# statistics and report) sits beside the entry points, and nothing on the training path imports it.
LAYERS = [
    ("trainer.errors", "trainer.words", "trainer.config"),
    ("trainer.runtime", "trainer.data"),
    ("trainer.models",),
    ("trainer.evaluate",),
    ("trainer.train",),
    ("trainer.tracking",),
    ("trainer.sweep",),
    ("trainer.run", "trainer.reproduce", "trainer.draw", "trainer.analysis"),
]


def _layer(module: str) -> int:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: place it")


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (ROOT / "trainer").rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The trainer modules a file imports at run time (anywhere in it, functions included; `if TYPE_CHECKING:`
    blocks left out), each resolved to a module (from trainer.data import cache -> trainer.data.cache)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("trainer")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainer"):
            for a in node.names:
                found.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
    return found


def test_imports_run_down_the_layers_and_nothing_on_the_training_path_imports_analysis():
    modules = _modules()
    upward, into_analysis = [], []
    for name, path in modules.items():
        for target in _imports(path, modules):
            if _layer(target) > _layer(name):
                upward.append(f"{name} -> {target}")
            if target.startswith("trainer.analysis") and not name.startswith("trainer.analysis"):
                into_analysis.append(f"{name} -> {target}")
    assert not upward, upward
    assert not into_analysis, into_analysis


def test_the_package_has_no_import_cycle():
    modules = _modules()
    graph = {name: {t for t in _imports(path, modules) if t in modules and t != name} for name, path in modules.items()}
    graph = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in graph.items()}  # a package's own face
    done, path_stack, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in path_stack:
            cycles.append(path_stack[path_stack.index(node):] + [node])
            return
        if node in done:
            return
        path_stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path_stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert not cycles, cycles


@pytest.mark.parametrize("module", ["trainer.sweep.callback", "hydra_plugins.ce_optuna_sweeper.sweeper",
                                    "hydra_plugins.ce_joblib.launcher", "hydra_plugins.ce_submitit.local_launcher",
                                    "hydra_plugins.ce_submitit.slurm_launcher"])
def test_what_hydra_imports_at_start_up_pulls_in_no_torch_mlflow_or_matplotlib(module):
    # Hydra builds the sweep callback and scans every plugin on every command, a single run's included
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {module}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'mlflow', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("model", ["mlp", "logreg", "cnn", "resnet18"])
def test_the_model_names_configs_stored_before_the_move_still_build(model):
    from hydra.utils import get_method

    target = make_cfg(f"model={model}").model["_target_"]
    assert target.startswith("trainer.models.") and target.count(".") == 2  # as runs logged them
    assert callable(get_method(target))


def test_a_config_stored_before_the_move_resumes(store):
    """A run logged by the code before the stage packages (its config.yaml as that code wrote it, naming
    trainer.models.MLP), stopped before its first checkpoint, is continued by today's code in the same run."""
    from mlflow.tracking import MlflowClient

    from trainer.run import run
    from trainer.tracking.provenance import git_state
    from trainer.tracking.store import setup_experiment

    stored = OmegaConf.load(ROOT / "tests" / "fixtures" / "config_stored_before_the_stage_packages.yaml")
    assert stored.model._target_ == "trainer.models.MLP"
    client = MlflowClient(store)
    experiment_id = setup_experiment(store, "ce-harness")
    run_id = client.create_run(experiment_id, tags={"git.commit": git_state().commit}).info.run_id
    client.log_text(run_id, OmegaConf.to_yaml(stored), "config.yaml")
    client.set_terminated(run_id, "KILLED")
    overrides = ["trainer.epochs=1", "trainer.threads=1", f"tracking.uri={store}", f"trainer.resume={run_id}"]
    with pytest.raises(UserError) as refused:  # the default monitor changed since: the message says what to add
        run(make_cfg(*overrides))
    assert "trainer.monitor: val/ce -> val/balanced_ce" in str(refused.value)
    assert "where a default changed since it started, add: trainer.monitor=val/ce." in str(refused.value)
    assert client.get_run(run_id).info.status == "KILLED"  # a refused resume leaves the run as it was
    resumed = run(make_cfg(*overrides, "trainer.monitor=val/ce"))  # settings added since (trainer.steps, keep) pass
    assert resumed.run_id == run_id and client.get_run(run_id).info.status == "FINISHED"
    assert resumed.epochs_run == 1 and 0 < resumed.test["balanced_accuracy"] <= 1
