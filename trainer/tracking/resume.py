"""Continuing an interrupted run: find it in MLflow, check that it is the same experiment, locate its checkpoint."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trainer.config import ADDED_SETTINGS
from trainer.errors import UserError
from trainer.tracking.artifacts import download
from trainer.tracking.params import flatten, stored_config
from trainer.tracking.process import Owner, this_process
from trainer.tracking.provenance import script
from trainer.tracking.tags import CHECKPOINT as TAG, PROCESS
from trainer.train import checkpoint
from trainer.train.loop import LoopState, epoch_metrics
from trainer.words import counted

ARTIFACT = f"{checkpoint.ARTIFACT_DIR}/{checkpoint.FILENAME}"
TOKENIZER_DIR = "tokenizer"  # a text run's tokenizer.json (trainer.data.tokenizer), logged by trainer.tracking.record
# where to log, what to continue and when to draw the figures; every other setting must match
MAY_DIFFER = ("trainer.resume", "tracking.", "eval.figures")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resume:
    run_id: str
    checkpoint: Path | None  # None: the run stopped before its first checkpoint; it starts again at epoch 1
    tags: dict[str, str]
    logged_epoch: int  # the last epoch whose metrics reached MLflow
    status: str = "KILLED"  # the run's status and end time before this attempt: put back if it is refused
    end_time: int | None = None
    tokenizer: Path | None = None  # a text run's saved tokenizer: the continued run encodes with it
    claim: Any = field(default=None, compare=False, repr=False)  # the lock file held while this process continues it

    @property
    def recorded(self) -> bool:
        """Whether the run got as far as recording its params, config and provenance (the tags come last)."""
        return "git.commit" in self.tags

    @property
    def threads(self) -> int | None:
        """The run's thread count: a different one changes the floating-point result."""
        value = self.tags.get("torch.threads")
        return int(value) if value else None


def find(uri: str, run_id: str, cfg: DictConfig, commit: str, folder: Path) -> Resume:
    """The run trainer.resume names, checked to be resumable with cfg and this code; UserError if not.

    A checkpoint that exists only as the run's artifact (another machine, a cleaned outputs/) is downloaded
    into folder.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    key = f"trainer.resume={run_id}"
    claim = _claim(run_id)  # before reading the run: of two resumes at once on this machine, one gets it
    try:
        resumed = _find(client, key, uri, run_id, cfg, commit, folder)
    except BaseException:
        release(claim)
        raise
    return Resume(*resumed, claim=claim)


def _find(client, key: str, uri: str, run_id: str, cfg: DictConfig, commit: str, folder: Path) -> tuple:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as e:
        raise UserError(f"{key}: no such run in {uri}. Copy the id from the interrupted run's output or the "
                        "MLflow UI, and log to the same store (tracking.uri).") from e
    if run.info.lifecycle_stage == "deleted":
        raise UserError(f"{key}: that run is deleted. Restore it in the MLflow UI, or start a new run.")
    if run.info.status == "FINISHED":
        raise UserError(f"{key}: that run already FINISHED, there is nothing to continue. Drop trainer.resume "
                        "to start a new run, or re-run it with scripts/reproduce.py.")
    if run.info.status == "RUNNING":
        _check_running(uri, run_id, run.data.tags.get(PROCESS, ""))
    tags = run.data.tags
    logged = max((m.step for m in client.get_metric_history(run_id, "val/ce")), default=0)
    checkpoint, foreign = _locate(client, run_id, tags, folder)
    fresh = checkpoint is None and not logged  # stopped before its first checkpoint: it starts from the beginning
    try:
        stored = stored_config(client, run_id)
    except UserError:
        if not fresh:
            raise
        stored = None  # stopped before it logged its config: nothing to compare, nothing to lose
    diff = config_diff(stored, cfg) if stored is not None else []
    if diff:
        restore = " ".join(restoring_overrides(stored, cfg))
        raise UserError(f"{key}: the config differs from the run's ({'; '.join(diff)}). Resume with the same "
                        "overrides as the interrupted run (its artifact .hydra/overrides.yaml lists them)"
                        + (f"; where a default changed since it started, add: {restore}" if restore else "") + ".")
    if tags.get("git.commit") != commit and not (fresh and "git.commit" not in tags):
        raise UserError(f"{key}: the run was trained by the code at commit {tags.get('git.commit')}, this code is "
                        f"at {commit}. Check out that commit to continue it, or start a new run.")
    if checkpoint is None and logged:
        other = f" ({foreign})" if foreign else ""
        raise UserError(f"{key}: the run logged {counted(logged, 'epoch')} but its checkpoint is gone (not at "
                        f"{tags.get(TAG)}{other}, and no artifact {ARTIFACT}). It cannot be continued; start a new "
                        "run.")
    if fresh:
        log.info("run %s stopped before its first checkpoint: it starts again from the beginning", run_id)
    tokenizer = saved_tokenizer(client, run_id, folder) if cfg.get("tokenizer") is not None else None
    return run_id, checkpoint, tags, logged, run.info.status, run.info.end_time, tokenizer


def saved_tokenizer(client, run_id: str, folder: Path) -> Path | None:
    """The tokenizer.json a text run logged, downloaded into folder; None if it logged none (a run stopped before
    its data were prepared: its tokenizer is fitted again, and the data fingerprint says if it differs)."""
    from trainer.data.tokenizer import FILENAME

    try:
        folder.mkdir(parents=True, exist_ok=True)
        return download(client, run_id, f"{TOKENIZER_DIR}/{FILENAME}", folder)
    except Exception:  # no such artifact: MLflow raises store-specific errors
        return None


def _check_running(uri: str, run_id: str, tag: str) -> None:
    """UserError unless the process that left the run RUNNING is gone (killed with kill -9, say), which only
    a process on the same host can tell."""
    owner = Owner.parse(tag)
    if owner.here:
        if owner.pid != os.getpid() and owner.alive():
            raise UserError(f"trainer.resume={run_id}: run {run_id} is being continued by another process "
                            f"({owner}). Wait for it to end, or stop it (Ctrl-C) and resume again.")
        log.info("run %s is RUNNING, but its process (pid %s on this host) is gone: continuing it", run_id, owner.pid)
        return
    mark = f"python {script('scripts/orphans.py')} --run {run_id} --tracking-uri {uri}"
    raise UserError(f"trainer.resume={run_id}: run {run_id} is RUNNING in MLflow, trained by {owner}, which this "
                    f"machine cannot check. If that process is still training it, wait for it to end. If it is gone "
                    f"(kill -9, a lost machine), mark the run KILLED and resume again:\n  {mark}")


def _claim(run_id: str) -> Any:
    """An exclusive lock on this run's lock file, held until release() or the process ends (kill -9 included);
    UserError naming the holder if another process holds it. None where locks are unavailable."""
    try:
        import fcntl
    except ImportError:  # Windows: only the MLflow-side check applies
        return None
    folder = Path(tempfile.gettempdir()) / "ce-harness-resume"  # one place per machine: the checkpoint tag moves
    try:
        folder.mkdir(exist_ok=True)
        handle = open(folder / f"{run_id}.lock", "a+")
    except OSError as e:
        log.warning("cannot lock run %s against a second resume on this machine (%s)", run_id, e)
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        pid, _, host = owner.partition("@")
        raise UserError(f"trainer.resume={run_id}: run {run_id} is being continued by another process (pid {pid} "
                        f"on host {host.rpartition('/')[0] or host}). Wait for it to end, or stop it (Ctrl-C) and "
                        "resume again.") from None
    handle.truncate(0)
    handle.write(this_process())
    handle.flush()
    return handle


def release(claim: Any) -> None:
    """Give up a claim from _claim (closing the file drops the lock)."""
    if claim is not None:
        claim.close()


def check_data(resumed: Resume, fingerprint: str) -> None:
    """UserError unless the prepared data are those the run trained on (a run stopped before it recorded them
    has nothing to compare)."""
    recorded = resumed.tags.get("data.fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise UserError(f"trainer.resume={resumed.run_id}: the data differ from those the run trained on "
                        "(data.fingerprint changed). Restore the dataset files it used, or start a new run.")


def restore(resumed: Resume, device: Any, **parts: Any) -> LoopState | None:
    """Put the checkpoint's weights, optimizer and random states into parts and return the loop state to continue
    from (None: start at epoch 1). Re-logs the last epoch's metrics if the process died before logging them."""
    import mlflow

    if resumed.checkpoint is None:
        return None
    state = checkpoint.restore(checkpoint.load(resumed.checkpoint, resumed.run_id), device=device, **parts)
    for h in state.history:  # the checkpoint is written before its epochs' metrics are logged: log what was lost
        if h["epoch"] > resumed.logged_epoch:
            mlflow.log_metrics(epoch_metrics(h), step=h["epoch"], timestamp=h.get("timestamp"))
    mlflow.set_tags({"resume.count": str(int(resumed.tags.get("resume.count", 0)) + 1),
                     "resume.from_epoch": str(state.epoch)})
    part = f", {state.progress.steps} steps into epoch {state.epoch + 1}" if state.progress else ""
    log.info("continuing run %s after epoch %d%s (checkpoint %s)", resumed.run_id, state.epoch, part,
             resumed.checkpoint)
    return state


def config_diff(stored: DictConfig, cfg: DictConfig) -> list[str]:
    """`key: old -> new` for every setting that differs, except those in MAY_DIFFER. A setting the stored config
    lacks is no difference when it is null now, or has the value trainer.config.ADDED_SETTINGS names: it was added to
    the harness since the run started, and that value keeps the behaviour the run had."""
    old, new = flatten(stored), flatten(cfg)
    keys = sorted(k for k in old.keys() | new.keys() if not k.startswith(MAY_DIFFER)
                  and not (k not in old and new.get(k) in ("None", ADDED_SETTINGS.get(k))))
    return [f"{k}: {old.get(k, '(absent)')} -> {new.get(k, '(absent)')}" for k in keys if old.get(k) != new.get(k)]


def restoring_overrides(stored: DictConfig, cfg: DictConfig) -> list[str]:
    """The overrides that give cfg the stored values of the settings config_diff names (a default that changed
    since the run started, an override left out), in Hydra's syntax; settings the stored config lacks are left out."""
    from omegaconf import OmegaConf

    old = flatten(stored)
    out = []
    for line in config_diff(stored, cfg):
        key = line.split(":", 1)[0]
        if key in old:
            value = OmegaConf.select(stored, key)
            text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            out.append(f"{key}={text}")
    return out


def _locate(client, run_id: str, tags: dict[str, str], folder: Path) -> tuple[Path | None, str]:
    """The run's checkpoint: the local file its tag names if it is the run's own, else its artifact downloaded
    into folder; None if neither. Also why a local file was passed over ("" if none was)."""
    local = Path(tags[TAG]) if tags.get(TAG) else None
    foreign = ""
    if local is not None and local.is_file():
        found = checkpoint.owner(local)
        if found == run_id:
            return local, ""  # newer than the artifact whenever both exist: the artifact is only written at the end
        # two runs in one output folder: the later one replaced the file
        foreign = f"{local} belongs to run {found}" if found else f"{local} is not a readable checkpoint"
        log.warning("%s: using the checkpoint artifact of run %s instead", foreign, run_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return download(client, run_id, ARTIFACT, folder), foreign
    except Exception:  # no such artifact: MLflow raises store-specific errors
        return None, foreign


class KeepStatus:
    """Around a resumed run's MLflow context: an error before training starts again (a refused resume, data that
    no longer load, a signal) puts the run's status, end time and the tags the attempt changed back as they were,
    so a refused resume leaves a KILLED run KILLED. Set `training = True` when training starts: from there on
    the run's own ending applies."""

    RESTORED_TAGS = ("error", TAG, PROCESS)

    def __init__(self, uri: str, resumed: Resume | None) -> None:
        self.uri, self.resumed, self.training = uri, resumed, False

    def __enter__(self) -> KeepStatus:
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if self.resumed is not None:
            release(self.resumed.claim)  # the run has ended (or stays as it was): another resume may claim it
        if self.resumed is None or kind is None or self.training:
            return
        from mlflow.tracking import MlflowClient

        client, r = MlflowClient(self.uri), self.resumed
        client.set_terminated(r.run_id, r.status, r.end_time)
        for tag in self.RESTORED_TAGS:
            if tag in r.tags:
                client.set_tag(r.run_id, tag, r.tags[tag])
            elif tag in client.get_run(r.run_id).data.tags:
                client.delete_tag(r.run_id, tag)
        log.info("run %s was not continued: its status stays %s", r.run_id, r.status)
