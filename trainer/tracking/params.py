"""The run's config as MLflow records it: every resolved setting as a param (dotted keys), the chosen option of each
group as a tag, the whole config and Hydra's files as artifacts; and the config a run stored, read back."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainer.errors import UserError
from trainer.tracking.artifacts import download
from trainer.tracking.masking import mask

# remedy: only in the study presets (conf/experiment/), which choose one remedy per run; tokenizer: text datasets only
GROUPS = ("dataset", "imbalance", "noise", "model", "loss", "resampling", "regularization", "optim", "ssl",
          "remedy", "tokenizer")
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param's value
MAX_TAG_CHARS = 8000  # MLflow's limit on a tag's value (a server on PostgreSQL refuses longer ones)
MAX_NAME_CHARS = 250  # a run's name, e.g. its overrides: a 40 KB override once named a run with 40,603 characters


def bounded(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """text, or when longer than limit its beginning, '...' and a hash of the whole (two long names that share
    their beginning stay apart)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{text[:limit - 12]}...#{digest}"


def flatten(cfg: DictConfig, cut: list[str] | None = None) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, values cut to MLflow's limit (their keys appended to cut,
    when given), secrets masked."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
            return
        key = re.sub(r"[^\w\-. :/]", "_", prefix)
        value = json.dumps(node) if isinstance(node, (list, dict)) else str(node)
        out[key] = value[:MAX_PARAM_CHARS]
        if cut is not None and len(value) > MAX_PARAM_CHARS:
            cut.append(key)

    walk(mask(OmegaConf.to_container(cfg, resolve=True)), "")
    return out


def log_config(cfg: DictConfig, hydra_dir: Path | None) -> None:
    """Log the resolved config as config.yaml and Hydra's .hydra/ files (config, overrides), secrets masked."""
    import mlflow

    mlflow.log_text(OmegaConf.to_yaml(mask(OmegaConf.to_container(cfg, resolve=True))), "config.yaml")
    if hydra_dir is None or not hydra_dir.is_dir():
        return
    for path in sorted(hydra_dir.glob("*.yaml")):
        tree = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        mlflow.log_text(OmegaConf.to_yaml(mask(tree)), f".hydra/{path.name}")


def stored_config(client: Any, run_id: str) -> DictConfig:
    """The resolved config a run logged as config.yaml (secret values are *** there)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = download(client, run_id, "config.yaml", tmp)
        except Exception as e:
            raise UserError(f"run {run_id} has no readable config.yaml artifact ({type(e).__name__}: {e}); "
                            "it was not logged by this harness or its artifacts are gone.") from e
        return OmegaConf.load(path)


def group_tags(cfg: DictConfig) -> dict[str, str]:
    """The chosen option of each config group, as tags (dataset=digits, loss=focal, ...)."""
    return {g: str(cfg[g].name) for g in GROUPS if g in cfg and "name" in cfg[g]}
