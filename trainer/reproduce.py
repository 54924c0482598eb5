"""Re-run a logged run from its recorded config and compare its final metrics with the original's.

scripts/reproduce.py is the command line; `main` here is what it calls.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trainer.errors import UserError
from trainer.tracking.masking import MASK
from trainer.tracking.params import flatten, stored_config
from trainer.tracking.store import resolve_uri

IGNORED = ("time/",)  # wall-clock figures differ on every run by nature


@dataclass(frozen=True)
class Row:
    metric: str
    original: float | None  # None: the run did not log it
    reproduced: float | None

    @property
    def difference(self) -> float:
        if self.original is None or self.reproduced is None:
            return math.nan
        return self.reproduced - self.original

    def differs(self, tolerance: float) -> bool:
        a, b = self.original, self.reproduced
        if a is None or b is None:
            return True
        if math.isnan(a) or math.isnan(b):
            return not (math.isnan(a) and math.isnan(b))
        return abs(b - a) > tolerance


@dataclass(frozen=True)
class Comparison:
    original_id: str
    reproduction_id: str
    rows: list[Row]
    fingerprints: tuple[str | None, str | None]  # data.fingerprint of the original and the reproduction

    def differing(self, tolerance: float = 0.0) -> list[str]:
        """Names of the metrics that differ by more than tolerance (and data.fingerprint when the data differ)."""
        names = [r.metric for r in self.rows if r.differs(tolerance)]
        return names + (["data.fingerprint"] if self.fingerprints[0] != self.fingerprints[1] else [])


def config_of(client, run_id: str, secrets: dict[str, str] | None = None) -> DictConfig:
    """The run's resolved config, set up to run again as it ran: same thread count and device kind.

    Secret values are logged as ***; secrets supplies them (dotted key -> value).
    """
    run = client.get_run(run_id)
    cfg = stored_config(client, run_id)
    masked = {k for k, v in flatten(cfg).items() if v == MASK}
    unknown = set(secrets or {}) - masked
    if unknown:
        raise UserError(f"--set {', '.join(sorted(unknown))}: only settings logged as {MASK} can be set; "
                        "a reproduction runs every other setting as recorded.")
    missing = masked - set(secrets or {})
    if missing:
        raise UserError(f"run {run_id} has secret settings logged as {MASK}: {', '.join(sorted(missing))}. "
                        "Give their values with --set KEY=VALUE.")
    for key, value in (secrets or {}).items():
        OmegaConf.update(cfg, key, value)
    tags = run.data.tags
    cfg.trainer.resume = None
    cfg.tracking.run_name = f"reproduce {run.info.run_name or run_id}"
    if cfg.trainer.get("threads") is None and tags.get("torch.threads"):
        cfg.trainer.threads = int(tags["torch.threads"])  # another count changes the floating-point result
    if cfg.trainer.device == "auto" and tags.get("device"):
        cfg.trainer.device = tags["device"].split(":")[0]  # auto would pick CUDA here if the original ran on CPU
    return cfg


def reproduce(run_id: str, uri: str, allow_commit_mismatch: bool = False,
              secrets: dict[str, str] | None = None) -> Comparison:
    """Run run_id's config again as a new run tagged reproduces=<run_id>, and compare the final metrics."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from trainer.run import run
    from trainer.tracking.provenance import git_state
    from trainer.tracking.resume import saved_tokenizer

    client = MlflowClient(uri)
    try:
        original = client.get_run(run_id)
    except MlflowException as e:
        raise UserError(f"run {run_id} is not in {uri}. Check the id and --tracking-uri.") from e
    if original.data.tags.get("sweep") == "parent":
        raise UserError(sweep_parent(client, original))
    if original.info.status != "FINISHED":
        raise UserError(f"run {run_id} is {original.info.status}, so it has no final metrics to compare. "
                        "Continue it first: python train.py <its overrides> trainer.resume=<its id>.")
    then, now = original.data.tags.get("git.commit", "unknown"), git_state().commit
    if (then != now or now == "unknown") and not allow_commit_mismatch:
        raise UserError(f"run {run_id} was trained by the code at commit {then}, this code is at {now}: the "
                        "numbers may differ because the code does. Check out that commit, or pass "
                        "--allow-commit-mismatch to run it anyway.")
    if original.data.tags.get("git.dirty") == "true":
        print(f"note: run {run_id} ran on a checkout with uncommitted changes (artifact git.diff); this run uses "
              "the code as it is now.", file=sys.stderr)
    cfg = config_of(client, run_id, secrets)
    cfg.tracking.uri = uri
    with tempfile.TemporaryDirectory() as tmp:  # a text run's tokenizer: the reproduction encodes with the original's
        tokenizer = saved_tokenizer(client, run_id, Path(tmp)) if cfg.get("tokenizer") is not None else None
        result = run(cfg, tags={"reproduces": run_id}, tokenizer=tokenizer)
    new = client.get_run(result.run_id)
    a, b = original.data.metrics, new.data.metrics
    rows = [Row(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if not k.startswith(IGNORED)]
    return Comparison(run_id, result.run_id, rows,
                      (original.data.tags.get("data.fingerprint"), new.data.tags.get("data.fingerprint")))


def sweep_parent(client, parent) -> str:
    """What to say of a sweep's parent run given to reproduce: it trained nothing; its jobs reproduce one by one,
    and the sweep runs again from its command."""
    from trainer.tracking.provenance import script

    run_id = parent.info.run_id
    jobs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'",
                              order_by=["start_time ASC"])
    command = f"python {script('train.py')} -m {parent.data.tags.get('sweep.overrides', '')}".rstrip()
    listed = ", ".join(f"{j.info.run_id} ({j.info.run_name})" for j in jobs[:3]) + (" ..." if len(jobs) > 3 else "")
    each = (f"reproduce each of its {len(jobs)} jobs by its own id, e.g. python {script('scripts/reproduce.py')} "
            f"{jobs[0].info.run_id} (jobs: {listed})" if jobs else "it has no job runs to reproduce")
    return (f"run {run_id} is the parent run of a sweep ({command}): it trained nothing itself, so there is nothing "
            f"to run again. Instead, {each}; or run the whole sweep again as a new sweep: {command}")


def table(c: Comparison, tolerance: float) -> str:
    """The final metrics side by side with their difference; differing ones marked."""
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.10g}"

    width = max([len(r.metric) for r in c.rows] + [len("data.fingerprint")])
    lines = [f"{'metric':{width}}  {'original':>16}  {'reproduced':>16}  {'difference':>12}",
             f"{'':{width}}  {c.original_id[:16]:>16}  {c.reproduction_id[:16]:>16}"]
    for r in c.rows:
        mark = "  <- differs" if r.differs(tolerance) else ""
        lines.append(f"{r.metric:{width}}  {num(r.original):>16}  {num(r.reproduced):>16}  "
                     f"{num(r.difference):>12}{mark}")
    fa, fb = c.fingerprints
    lines.append(f"{'data.fingerprint':{width}}  {(fa or '-')[:16]:>16}  {(fb or '-')[:16]:>16}  "
                 f"{'same' if fa == fb else 'DIFFERENT':>12}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line of scripts/reproduce.py; returns the exit status."""
    p = argparse.ArgumentParser(prog="scripts/reproduce.py", description=(
        "Run a logged run again from its recorded config, as a new run tagged reproduces=RUN_ID, and compare "
        "its final metrics with the original's. Exit 0 when identical (or within --tolerance), 1 when any "
        "differs, 2 when it cannot reproduce."))
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--tolerance", type=float, default=0.0,
                   help="largest absolute difference still counted as equal (default 0: bit-identical)")
    p.add_argument("--allow-commit-mismatch", action="store_true",
                   help="run even though the code is at another commit than the original's")
    p.add_argument("--tracking-uri", default=None,
                   help="the MLflow store (default: $MLFLOW_TRACKING_URI, else ./mlflow.db)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="value of a setting logged as *** (a secret); repeatable")
    args = p.parse_args(argv)
    if args.tolerance < 0:
        p.error("--tolerance must be >= 0")
    secrets = dict(s.split("=", 1) for s in args.set if "=" in s)
    if len(secrets) != len(args.set):
        p.error("--set takes KEY=VALUE")
    try:
        c = reproduce(args.run_id, resolve_uri(args.tracking_uri), args.allow_commit_mismatch, secrets)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(c, args.tolerance))
    differing = c.differing(args.tolerance)
    if differing:
        print(f"run {c.reproduction_id} does not reproduce run {c.original_id}: {len(differing)} differ "
              f"(tolerance {args.tolerance:g}): {', '.join(differing)}")
        return 1
    same = "identical" if args.tolerance == 0 else f"equal within {args.tolerance:g}"
    print(f"run {c.reproduction_id} reproduces run {c.original_id}: all {len(c.rows)} final metrics {same} "
          f"({', '.join(IGNORED)} not compared)")
    return 0
