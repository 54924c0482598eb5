"""Where MLflow 3.17's UI shows a run: its page, and its learning curves on MLflow's metric page.

MLflow 3.17 opens every page in its GenAI layout unless the URL says ?workflowType=machine_learning (or the browser
remembers the "Model training" switch). A run page's "Model metrics" tab orders its chart sections by the metrics'
prefixes, alphabetically (best, test, time, train, val), and keeps any reordering in the browser's local storage
only: nothing a run logs can put the curves first there without renaming metrics. MLflow's own metric page
(`#/metric/?runs=...&plot_metric_keys=...`, the URL its UI builds when a metric is clicked) draws chosen curves of a
run together; the run's description links to it.
"""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from trainer.tracking.store import ui_command

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves
MACHINE_LEARNING = {"workflowType": "machine_learning"}
DESCRIPTION_TAG = "mlflow.note.content"  # the run's description (Overview tab), markdown
CURVES = {"cross-entropy": ["train/ce", "val/ce"], "objective": ["train/loss", "val/loss"],
          "validation balanced accuracy": ["val/balanced_accuracy"]}


def _query(params: dict[str, str]) -> str:
    # every character quoted: MLflow's markdown renderer ends a link at a bare quote or bracket
    return urlencode(params, quote_via=lambda s, *_: quote(s, safe=""))


def run_page(experiment_id: str, run_id: str) -> str:
    """The run's page, as a URL fragment (after the UI's address), in the Model training layout."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{_query(MACHINE_LEARNING)}"


def curves(experiment_id: str, run_id: str, keys: list[str]) -> str:
    """MLflow's metric page drawing the run's metrics `keys` per epoch (step), as a URL fragment."""
    return "#/metric/?" + _query({"runs": json.dumps([run_id]), "metric": json.dumps(keys[-1]),
                                  "experiments": json.dumps([experiment_id]), "plot_metric_keys": json.dumps(keys),
                                  "x_axis": "step", "show_point": "true"} | MACHINE_LEARNING)


def description(experiment_id: str, run_id: str) -> str:
    """The description a new run gets (markdown, on its Overview tab): links to its learning curves and figures."""
    links = " · ".join(f"[{what}]({curves(experiment_id, run_id, keys)})" for what, keys in CURVES.items())
    return (f"**Learning curves** per epoch: {links}. Figures (confusion matrix, reliability, curves, recall "
            "against class frequency): the Artifacts tab, folder figures/.")


def address(uri: str) -> tuple[str, str]:
    """How to open the UI of the store at uri and its address: ('mlflow ui ..., then open', LOCAL_UI) for a local
    store, ('open', the server's URL) for a tracking server."""
    if uri.startswith(("http://", "https://")):
        return "open", uri.rstrip("/")
    return f"{ui_command(uri)}, then open", LOCAL_UI
