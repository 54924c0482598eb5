"""The study in MLflow: the sweep's parent run (made by trainer.sweep.callback.SweepCallback) describes the study,
each trial's run gets its state, and at the end the parent holds the best trial and Optuna's own figures."""
from __future__ import annotations

import logging
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.tracking.masking import hide_password

log = logging.getLogger(__name__)

FIGURES = ("optimization_history", "param_importances", "slice", "contour", "intermediate_values")


def storage_label(url: str | None) -> str:
    """The storage as a tag: `memory`, or its URL with any password hidden."""
    return "memory" if url is None else hide_password(url)


def command(overrides: list[str]) -> str:
    """The shell command that reruns a trial as a single run (train.py named as from the working folder)."""
    from trainer.tracking.provenance import train_command

    return train_command(overrides)


def param_key(name: str) -> str:
    """best.<setting>, in the characters MLflow allows in a param key."""
    return "best." + re.sub(r"[^\w\-. :/]", "_", name.lstrip("+~"))


@dataclass
class Parent:
    """The parent run of this sweep (None when no SweepCallback made one: then nothing is logged)."""

    uri: str
    run_id: str | None

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    def start(self, study: Any, storage: str | None, metric: str) -> None:
        if self.run_id is None:
            return
        direction = "maximize" if study.direction.name == "MAXIMIZE" else "minimize"
        for key, value in {"optuna.study": study.study_name, "optuna.study_id": str(study._study_id),
                           "optuna.storage": storage_label(storage), "optuna.metric": metric,
                           "optuna.direction": direction}.items():
            self._client().set_tag(self.run_id, key, value)

    def tag_trial(self, study: Any, number: int, state: str, value: float | None) -> None:
        """Tag the trial's own run with its Optuna state (and its objective value as metric optuna/value)."""
        if self.run_id is None:
            return
        client = self._client()
        experiment = client.get_run(self.run_id).info.experiment_id
        runs = client.search_runs([experiment], filter_string=(
            f"tags.mlflow.parentRunId = '{self.run_id}' and tags.`optuna.trial` = '{number}' "
            f"and tags.`optuna.study` = '{study.study_name}'"))
        for run in runs:
            client.set_tag(run.info.run_id, "optuna.state", state)
            if value is not None:
                client.log_metric(run.info.run_id, "optuna/value", value)

    def finish(self, study: Any, metric: str) -> None:
        """Best value, best params (best.<key>), the best trial's command and Optuna's figures on the parent."""
        from optuna.trial import TrialState

        if self.run_id is None:
            return
        client = self._client()
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        for k, v in counts.items():
            client.log_metric(self.run_id, f"optuna/trials/{k}", v)
        if not complete:
            client.set_tag(self.run_id, "optuna.best_trial", "none: no trial completed")
            return
        best = study.best_trial
        client.log_metric(self.run_id, f"best/{metric}", best.value)
        for name, value in best.params.items():
            client.log_param(self.run_id, param_key(name), value)
        cmd = command(best.user_attrs.get("overrides", []))
        client.set_tag(self.run_id, "optuna.best_trial", str(best.number))
        client.set_tag(self.run_id, "optuna.best_command", cmd)
        if best.user_attrs.get("run_id"):
            client.set_tag(self.run_id, "optuna.best_run", best.user_attrs["run_id"])
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "best_command.txt").write_text(cmd + "\n")
            client.log_artifact(self.run_id, str(Path(tmp) / "best_command.txt"))
            study.trials_dataframe().to_csv(Path(tmp) / "trials.csv", index=False)
            client.log_artifact(self.run_id, str(Path(tmp) / "trials.csv"), "optuna")
            for path in figures(study, Path(tmp)):
                client.log_artifact(self.run_id, str(path), "optuna")
        log.info("best trial %d: %s=%.4f; rerun it with: %s", best.number, metric, best.value, cmd)


def figures(study: Any, folder: Path) -> list[Path]:
    """Optuna's matplotlib figures of the study as PNG files in folder; those the study cannot draw yet
    (importances need two complete trials, a contour two parameters) are skipped with a log line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    n_params = len({p for t in study.trials for p in t.params})
    paths = []
    for name in FIGURES:
        if name == "contour" and n_params < 2:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's ExperimentalWarning on every matplotlib plot
                ax = getattr(ovm, f"plot_{name}")(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
        except Exception as e:  # a figure is a bonus: the study's numbers are already logged
            log.warning("optuna figure %s skipped: %s", name, e)
    return paths
