"""The benchmark behind scripts/bench.py: the harness's training path against a bare PyTorch loop.

Each per-epoch case builds one model, data and optimizer and times, interleaved (A B A B ...), the harness
(trainer.train.persist.train_model: trainer.train.loop.fit with its per-epoch checkpoint and MLflow call) and a bare loop
written here (shuffled slices of device tensors, cross-entropy, Adam; a val pass computing CE and accuracy).
Both start from the same weights; the figure is the median seconds per epoch over the repeats.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GOALS = {"overhead": 1.10, "compute": 1.10, "digits": 1.30}


@dataclass
class Row:
    """One line of the benchmark's table."""

    case: str
    what: str
    harness: float | None = None  # seconds (per epoch, per run or in all, as `unit` says)
    bare: float | None = None
    unit: str = "s/epoch"
    goal: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.harness is None or not self.bare else self.harness / self.bare

    @property
    def met(self) -> bool | None:
        """Whether the row meets its goal: the ratio against a plain number ("<= 1.50"), the harness figure
        against one with a unit ("<= 0.5 s", "<= 3x"); None without a goal."""
        m = re.fullmatch(r"(<=|<)\s*([\d.]+)\s*(\S*)", self.goal)
        value = None if m is None else self.harness if m[3] else self.ratio
        if value is None:
            return None
        return value <= float(m[2]) if m[1] == "<=" else value < float(m[2])


@dataclass
class Setup:
    """The pieces one per-epoch case needs, built once."""

    model_name: str
    x: object  # tensors on the device
    y: object
    xv: object
    yv: object
    classes: list[str]
    batch_size: int


def synthetic(n: int, features: int | tuple[int, ...], classes: int, seed: int = 0):
    """A learnable synthetic problem: random inputs labelled by a random linear teacher (fast to make)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    shape = (features,) if isinstance(features, int) else features
    x = torch.randn(n, *shape, generator=g)
    teacher = torch.randn(x[0].numel(), classes, generator=g)
    y = (x.reshape(n, -1) @ teacher + 0.5 * torch.randn(n, classes, generator=g)).argmax(1)
    return x, y


def _model(name: str, in_shape: tuple[int, ...], num_classes: int, seed: int):
    import torch
    from omegaconf import OmegaConf

    from trainer.models.networks import build_network as build

    torch.manual_seed(seed)
    return build(OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"), in_shape, num_classes, 0.0)


def bare_epochs(model, x, y, xv, yv, batch_size: int, epochs: int, seed: int) -> list[float]:
    """The ten-line loop a researcher writes by hand; seconds of each epoch (train pass + val CE and accuracy)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y), generator=g).to(y.device)
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(xv[i:i + 1024]) for i in range(0, len(yv), 1024)])
            ce, acc = F.cross_entropy(logits, yv).item(), (logits.argmax(1) == yv).float().mean().item()
        del ce, acc
        times.append(time.perf_counter() - start)
    return times


def harness_epochs(model, x, y, xv, yv, classes: list[str], batch_size: int, epochs: int, seed: int,
                   workdir: Path) -> tuple[list[float], float]:
    """The trainer's own path for the same model and data: seconds of each epoch (from one epoch's end to the
    next), and the rest of the call (set-up, and the final checkpoint and log it waits for) as a fixed cost."""
    import functools

    import mlflow
    import torch
    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    from trainer.data.types import Tensors
    from trainer.models.losses import build_loss
    from trainer.models.optim import build_optimizer
    from trainer.tracking.record import log_epochs
    from trainer.train.loop import FitConfig
    from trainer.train.persist import train_model

    loss_fn = build_loss(OmegaConf.create({"name": "plain"}), [1] * len(classes)).to(y.device)
    optimizer = build_optimizer(OmegaConf.load(ROOT / "conf" / "optim" / "adam.yaml"), model)
    cfg = FitConfig(epochs=epochs, batch_size=batch_size, patience=None, progress=False)
    ends: list[float] = []
    with mlflow.start_run() as active:
        start = time.perf_counter()
        train_model(model, loss_fn, optimizer, Tensors(x, y), Tensors(xv, yv), classes, cfg,
                    torch.Generator().manual_seed(seed), run_id=active.info.run_id,
                    ckpt=workdir / active.info.run_id / "checkpoint.pt",
                    log_epochs=functools.partial(log_epochs, MlflowClient(), active.info.run_id),
                    on_epoch=lambda epoch, metrics: ends.append(time.perf_counter()))
        total = time.perf_counter() - start
    return [b - a for a, b in zip(ends, ends[1:])], total  # epochs from the second: the first holds the set-up


def per_epoch_case(case: str, what: str, setup: Setup, epochs: int, repeats: int, workdir: Path,
                   precision: str = "fp32") -> Row:
    """Interleave harness and bare runs of `epochs` epochs, `repeats` times after a warm-up of each; the median
    epoch (the first of each run left out) of each, and the harness's fixed cost per call."""
    import copy

    in_shape, n_cls = tuple(setup.x.shape[1:]), len(setup.classes)
    from omegaconf import OmegaConf

    from trainer.models.accel import accelerate

    # Both loops get the same model: with --precision bf16 (or channels-last convolutions on CUDA) that is the
    # trainer's Accelerated wrapper, as a careful hand-written loop would autocast too.
    base = accelerate(_model(setup.model_name, in_shape, n_cls, seed=0).to(setup.x.device),
                      OmegaConf.create({"precision": precision}), setup.x.device)
    h_times, b_times, fixed = [], [], []
    for r in range(repeats + 1):  # round 0 warms up caches, allocator and lazy imports of both
        n = 2 if r == 0 else epochs
        h, h_total = harness_epochs(copy.deepcopy(base), setup.x, setup.y, setup.xv, setup.yv, setup.classes,
                                    setup.batch_size, n, r, workdir)
        b = bare_epochs(copy.deepcopy(base), setup.x, setup.y, setup.xv, setup.yv, setup.batch_size, n, r)
        if r:
            h_times += h
            b_times += b[1:]
            fixed.append(h_total - statistics.median(b) * n)  # all the harness spends beyond n bare epochs
    what = what if precision == "fp32" else f"{what}, {precision}"
    return Row(case, what, statistics.median(h_times), statistics.median(b_times), goal=f"<= {GOALS[case]:.2f}",
               extra={"fixed_s_per_call": statistics.median(fixed)})


def _tensors(x, y, device, val_fraction: float = 0.1):
    n_val = int(len(y) * val_fraction)
    return (x[n_val:].to(device), y[n_val:].to(device), x[:n_val].to(device), y[:n_val].to(device))


def case_overhead(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0,
                  precision: str = "fp32") -> list[Row]:
    """Case 1: logreg and mlp on synthetic 200,000 x 64, 10 classes, batch 512 (overhead-bound)."""
    x, y = synthetic(int(200_000 * scale), 64, 10)
    x, y, xv, yv = _tensors(x, y, device)
    classes = [str(c) for c in range(10)]
    return [per_epoch_case("overhead", f"{m}, synthetic {len(x) + len(xv):,} x 64, batch 512",
                           Setup(m, x, y, xv, yv, classes, 512), epochs, repeats, workdir, precision)
            for m in ("logreg", "mlp")]


def case_compute(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0,
                 precision: str = "fp32") -> list[Row]:
    """Case 2: cnn on synthetic 60,000 x 1 x 28 x 28, batch 256 (compute-bound)."""
    x, y = synthetic(int(60_000 * scale), (1, 28, 28), 10)
    x, y, xv, yv = _tensors(x, y, device)
    return [per_epoch_case("compute", f"cnn, synthetic {len(x) + len(xv):,} x 1x28x28, batch 256",
                           Setup("cnn", x, y, xv, yv, [str(c) for c in range(10)], 256), epochs, repeats, workdir,
                           precision)]


def case_resnet(device: str, epochs: int, repeats: int, workdir: Path, scale: float = 1.0,
                precision: str = "fp32") -> list[Row]:
    """GPU only: resnet18 on synthetic 3 x 32 x 32 (CIFAR-sized), batch 256."""
    x, y = synthetic(int(50_000 * scale), (3, 32, 32), 10)
    x, y, xv, yv = _tensors(x, y, device)
    row = per_epoch_case("compute", f"resnet18, synthetic {len(x) + len(xv):,} x 3x32x32, batch 256",
                         Setup("resnet18", x, y, xv, yv, [str(c) for c in range(10)], 256), epochs, repeats, workdir,
                         precision)
    return [row]


def case_digits(device: str, epochs: int, repeats: int, workdir: Path) -> list[Row]:
    """Case 3: the default digits run (long-tailed train split, mlp, batch 32): per epoch, and the run's fixed cost."""
    import torch

    from trainer.data.prepare import prepare

    cfg = _compose([f"trainer.device={device}"])
    prep = prepare(cfg)
    ds = prep.dataset
    # As long as the default run (trainer.epochs, 50): its epochs take about 10 ms, so in a shorter one the first
    # epoch's hand-over to the writer (one checkpoint and one MLflow call, done once a run) would be most of it.
    epochs = max(epochs, int(cfg.trainer.epochs))
    t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    setup = Setup("mlp", t(ds.train.x), t(ds.train.y), t(ds.val.x), t(ds.val.y), ds.classes, 32)
    return [per_epoch_case("digits", "the default run: digits long-tail 50, mlp, batch 32", setup, epochs, repeats,
                           workdir)]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


ZOO = ("plain", "weighted", "label_smoothed", "focal", "class_balanced", "logit_adjusted", "balanced_softmax", "ldam",
       "poly", "gce", "sce", "naive")


@dataclass
class SweepTimes:
    """One `python train.py -m ...` in a subprocess: its wall time and what its runs logged."""

    wall: float  # seconds from the start of the process to its exit (or to the end of its last run, if it hung)
    to_first_run: float  # seconds from the start of the process to the start of its first run
    train_s: list[float]  # each run's time/train_s
    epochs: list[int]  # each run's epochs run (the step of its final metrics)
    hung: bool = False  # the process did not exit within the timeout after its last run


def _runs(uri: str) -> list:
    """The child runs in the store (not the sweep's parent)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
            if r.data.tags.get("sweep") != "parent"]


def run_sweep(workdir: Path, name: str, overrides: list[str], runs: int, grace_s: float | None = None,
              timeout_s: float = 3600.0) -> SweepTimes:
    """Run train.py as a multirun of `runs` jobs in a subprocess into its own store and read back the runs' times.

    With grace_s, a process still alive grace_s after its last run finished is killed and timed to that run's
    end: a guard for a process that would not exit (a joblib sweep hung there before trainer/shutdown.py ran
    Python's thread shutdown first)."""
    from mlflow.tracking import MlflowClient

    folder = workdir / name
    folder.mkdir(exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    MlflowClient(uri).search_experiments()  # creates the store: a user's next sweep logs to an existing one
    start_ms, start = time.time() * 1000, time.perf_counter()
    log = (folder / "sweep.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"tracking.uri={uri}"],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    all_done, hung = None, False
    try:
        while proc.poll() is None and time.perf_counter() - start < timeout_s:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)  # returns at its exit: the wall time is not rounded up to the polling step
            if grace_s is not None and all_done is None and (folder / "mlflow.db").exists():
                try:
                    done = sum(r.info.status == "FINISHED" for r in _runs(uri))
                except Exception:  # noqa: BLE001 - the store is being created: ask again later
                    done = 0
                all_done = time.perf_counter() if done >= runs else None
            if all_done is not None and time.perf_counter() - all_done > grace_s:
                hung = True
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    wall = time.perf_counter() - start
    found = _runs(uri)
    if (proc.returncode and not hung) or len(found) != runs or any(r.info.status != "FINISHED" for r in found):
        raise RuntimeError(f"sweep {name} failed ({proc.returncode}, {len(found)} of {runs} runs): "
                           f"{(folder / 'sweep.log').read_text()[-3000:]}")
    if hung:
        wall = (max(r.info.end_time for r in found) - start_ms) / 1000
    client = MlflowClient(uri)
    return SweepTimes(wall, (min(r.info.start_time for r in found) - start_ms) / 1000,
                      [r.data.metrics["time/train_s"] for r in found],
                      [client.get_metric_history(r.info.run_id, "time/train_s")[-1].step for r in found], hung)


# The researcher's own script: the same prepared data, one fresh model per run, the bare loop for as many epochs
# as the harness's run took, one run after another, torch's default thread count. Prints its wall time and the
# summed time of its epochs.
_BARE_SWEEP = r"""
import sys, time
start = time.time()
sys.path.insert(0, %r)
import torch
from benchmarks.bench import _compose, _model, bare_epochs
from trainer.data.prepare import prepare
epochs = [int(e) for e in sys.argv[1].split(",")]
overrides = sys.argv[2:]
ds = prepare(_compose(overrides)).dataset
t = lambda a: torch.as_tensor(a)
x, y, xv, yv = t(ds.train.x), t(ds.train.y), t(ds.val.x), t(ds.val.y)
train = 0.0
for i, n in enumerate(epochs):
    train += sum(bare_epochs(_model("mlp", tuple(x.shape[1:]), len(ds.classes), seed=i), x, y, xv, yv, 32, n, seed=i))
print(time.time() - start, train)
""" % str(ROOT)


def bare_sweep(epochs: list[int], overrides: list[str]) -> tuple[float, float]:
    """The researcher's script doing len(epochs) runs of the bare loop one after another: its wall seconds (imports
    included) and the summed seconds of its epochs."""
    proc = subprocess.run([sys.executable, "-c", _BARE_SWEEP, ",".join(map(str, epochs)), *overrides],
                          capture_output=True, text=True, check=True)
    wall, train = proc.stdout.split()[-2:]
    return float(wall), float(train)


def case_sweep(device: str, runs: int, workdir: Path, epochs: int | None = None) -> list[Row]:
    """Case 4: the loss zoo (`experiment=loss_zoo`, seed 0: `runs` losses) as a sequential multirun and through
    joblib on 2 workers, against the summed training time of its runs and the bare loops run one after another."""
    losses = ",".join(ZOO[:runs])
    base = ["experiment=loss_zoo", f"hydra.sweeper.params.loss='{losses}'", "hydra.sweeper.params.seed=0",
            f"trainer.device={device}"] + ([f"trainer.epochs={epochs}"] if epochs else [])
    seq = run_sweep(workdir, "sweep_sequential", base, runs)
    par = run_sweep(workdir, "sweep_joblib", base + ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], runs,
                    grace_s=30.0)
    data = [o for o in base if not o.startswith(("experiment=", "hydra."))]
    bare, bare_train = bare_sweep(seq.epochs, data)
    n, train = len(seq.train_s), sum(seq.train_s)
    hung = " (hung at exit: timed to its last run)" if par.hung else ""
    return [Row("sweep", f"loss zoo, {n} runs, sequential: wall / summed time/train_s", seq.wall, train,
                unit="s in all", goal="<= 1.50"),
            Row("sweep", "the bare script alone: wall / its epochs (floor of the ratio above)", bare, bare_train,
                unit="s in all"),
            Row("sweep", "outside training per run (figures included, from run 1)", (
                seq.wall - seq.to_first_run - train) / n, None, unit="s/run", goal="<= 0.5 s",
                extra={"to_first_run_s": seq.to_first_run}),
            Row("sweep", f"{n} runs, joblib 2 workers vs {n} bare loops in a row{hung}", par.wall, bare,
                unit="s in all", goal="< 1.00", extra={"summed_train_s": sum(par.train_s)})]


# A process that keeps every core busy (torch's default thread count, large matrix products) until killed.
_BUSY = "import torch\na = torch.randn(1500, 1500)\nwhile True:\n    a @ a"


def case_contention(device: str, workdir: Path, repeats: int = 2, epochs: int | None = None) -> list[Row]:
    """Case 7: the default digits run, quiet and beside a busy process (matrix products on every core), with the
    harness's thread choice and with trainer.threads=<all cores> (torch's default): each one's median
    time/train_s beside the busy process against its median quiet time, the runs interleaved."""
    import mlflow

    from trainer.run import run

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    uri = f"sqlite:///{workdir / 'contention.db'}"
    settings = {"chosen": [], f"trainer.threads={cores}": [f"trainer.threads={cores}"]}
    extra = [f"tracking.uri={uri}", f"trainer.device={device}"] + ([f"trainer.epochs={epochs}"] if epochs else [])
    times: dict[tuple[str, bool], list[float]] = {}
    threads: dict[str, str] = {}

    def one(name: str, busy: bool) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            result = run(_compose(settings[name] + extra))
        r = mlflow.get_run(result.run_id)
        times.setdefault((name, busy), []).append(r.data.metrics["time/train_s"])
        threads[name] = r.data.params["torch.threads"]

    one("chosen", False)  # warm-up: imports, store creation
    for _ in range(repeats):
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", _BUSY]) if busy else None
            try:
                if hog is not None:
                    time.sleep(1.0)  # torch imported and spinning
                for name in settings:
                    one(name, busy)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    return [Row("contention", f"digits run beside a busy process, {threads[name]} thread(s)"
                              f"{' (chosen)' if name == 'chosen' else ' (torch default)'}: busy / quiet",
                statistics.median(times[name, True]), statistics.median(times[name, False]), unit="s train",
                goal="<= 2.00" if name == "chosen" else "")
            for name in settings]


def case_cold_start(device: str, workdir: Path, runs: int = 3) -> list[Row]:
    """Case 5: `python train.py` in a fresh process: wall time to the first epoch logged, and to the end."""
    from mlflow.tracking import MlflowClient

    folder = workdir / "cold"
    folder.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([sys.executable, str(ROOT / "train.py"), "trainer.epochs=1"], cwd=folder, env=env,
                   capture_output=True, check=True)  # creates the store: a user's second run is the common one
    rows, floors = [], []
    for _ in range(runs):
        start_s = time.time()  # the libraries alone: what any script using them pays before its first step
        floor = subprocess.run([sys.executable, "-c", _IMPORT_FLOOR], check=True, capture_output=True, text=True)
        floors.append(float(floor.stdout.split()[-1]) - start_s)  # to the end of the imports, not of the process
        start_ms = time.time() * 1000
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "train.py"), f"trainer.device={device}"], cwd=folder,
                              env=env, capture_output=True, text=True, check=True)
        end = time.perf_counter() - start
        run_id = proc.stdout.split("MLflow run id: ")[1].split()[0]
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        first = client.get_metric_history(run_id, "val/ce")[0].timestamp
        rows.append(((first - start_ms) / 1000, end))
    first_epoch = statistics.median(r[0] for r in rows)
    total = statistics.median(r[1] for r in rows)
    return [Row("cold start", "python train.py: to the first epoch logged", first_epoch, None, unit="s",
                goal="<= 5 s"),
            Row("cold start", "python train.py: to the end", total, None, unit="s", goal="<= 10 s"),
            Row("cold start", "floor: import torch, mlflow, sklearn, hydra; torch.optim", statistics.median(floors),
                None, unit="s")]


# Python with the libraries every run needs (MLflow's SQL store is the default one), and the first torch.optim
# call (it imports torch._dynamo); it prints the time when all that is done.
_IMPORT_FLOOR = ("import time, torch, mlflow, mlflow.store.tracking.sqlalchemy_store, hydra, sklearn.datasets, "
                 "sklearn.model_selection; torch.optim.Adam([torch.zeros(1, requires_grad=True)]); print(time.time())")


def case_memory(workdir: Path, n: int = 1_000_000) -> list[Row]:
    """Case 6: peak resident memory of the data path for synthetic n x 64 float32, without and with SMOTE."""
    rows = []
    for resampling in ("none", "smote"):
        proc = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(n), resampling], capture_output=True,
                              text=True, cwd=workdir)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        goal = "<= 3x features" if resampling == "none" else ""
        rows.append(Row("memory", f"{n:,} x 64 ({m['feature_mb']:.0f} MB), resampling={resampling}: "
                                  f"+{m['peak_over_baseline_mb']:.0f} MB peak",
                        m["peak_over_baseline_mb"] / m["feature_mb"], None, unit="x features", goal=goal,
                        extra={"peak_rss_mb": m["peak_rss_mb"], "baseline_rss_mb": m["baseline_rss_mb"],
                               "feature_mb": m["feature_mb"]}))
    return rows


# The child process behind case_memory: features generated first (their bytes are the unit), then, from the
# resident memory at that point, the harness's data path on them: split, long-tail imbalance, resampling,
# standardisation, device tensors, and one training epoch. Linux only (/proc/self/status, clear_refs).
_MEMORY_CHILD = r"""
import json, sys
import numpy as np, torch
from omegaconf import OmegaConf
sys.path.insert(0, %r)
from trainer.data import splits
from trainer.data.standardize import standardize
from trainer.data import imbalance
from trainer.data import resampling
from benchmarks.bench import synthetic
from trainer.data.types import Tensors
from trainer.train.loop import FitConfig, fit
from trainer.models.losses import build_loss
from trainer.models.networks import MLP

def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

n, how = int(sys.argv[1]), sys.argv[2]
x, y = (t.numpy() for t in synthetic(n, 64, 10))
open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current RSS: imports' transients do not count
baseline = status_mb("VmRSS")
ds = splits.split(x, y, [str(c) for c in range(10)], 0.1, 0.1, 0, tabular=True)
del x, y
train = imbalance.apply(ds.train, OmegaConf.create({"name": "longtail", "ratio": 10}), 10, 0)
sampler = {"none": None, "smote": {"_target_": "imblearn.over_sampling.SMOTE", "k_neighbors": 5}}[how]
res = resampling.apply(train, OmegaConf.create({"name": how, "sampler": sampler}), ds.classes, 0)
del train
from dataclasses import replace
ds = standardize(replace(ds, train=res.train))
del res
t = lambda s: Tensors(torch.as_tensor(s.x), torch.as_tensor(s.y))
model = MLP((64,), 10)
fit(model, build_loss(OmegaConf.create({"name": "plain"}), [1] * 10), torch.optim.Adam(model.parameters()),
    t(ds.train), t(ds.val), ds.classes, FitConfig(epochs=1, batch_size=512, progress=False),
    torch.Generator().manual_seed(0), on_epoch=lambda e, m: None)
peak = status_mb("VmHWM")
print(json.dumps({"feature_mb": n * 64 * 4 / 2**20, "baseline_rss_mb": baseline, "peak_rss_mb": peak,
                  "peak_over_baseline_mb": peak - baseline}))
""" % str(ROOT)


def table(rows: list[Row], device_name: str) -> str:
    """The rows as an aligned text table a user can read."""
    w = max([58] + [len(r.what) for r in rows])
    head = (f"{'case':<11} {'what':<{w}} {'harness':>9} {'bare':>9} {'unit':<10} {'ratio':>6} {'fixed/run':>9}  "
            f"goal")
    lines = [f"benchmark on {device_name}", head, "-" * len(head)]
    for r in rows:
        num = lambda v: "" if v is None else f"{v:9.4f}"  # noqa: E731
        ratio = "" if r.ratio is None else f"{r.ratio:6.3f}"
        fixed = r.extra.get("fixed_s_per_call")
        fixed = "" if fixed is None else f"{fixed:8.3f}s"
        verdict = {True: ": met", False: ": NOT met", None: ""}[r.met]
        lines.append(f"{r.case:<11} {r.what:<{w}} {num(r.harness):>9} {num(r.bare):>9} {r.unit:<10} {ratio:>6} "
                     f"{fixed:>9}  {r.goal}{verdict}")
    return "\n".join(lines)


def device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads (torch {torch.__version__})")


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Time the harness's training path against a bare PyTorch loop.")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--cases", default=None, help="comma-separated: overhead,compute,digits,sweep,contention,cold,memory "
                   "(default: all for cpu; overhead,compute,resnet for cuda)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    p.add_argument("--repeats", type=int, default=3, help="interleaved harness/bare runs after the warm-up")
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the cases' dataset sizes (smoke tests)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="autocast of both loops' forward passes in the per-epoch cases")
    p.add_argument("--sweep-runs", type=int, default=12, help="losses of the loss zoo in the sweep case")
    p.add_argument("--sweep-epochs", type=int, default=None, help="trainer.epochs of the sweep and contention "
                   "cases (default: the config's)")
    p.add_argument("--contention-repeats", type=int, default=2)
    p.add_argument("--cold-runs", type=int, default=3, help="cold starts timed (the median is shown)")
    p.add_argument("--memory-rows", type=int, default=1_000_000)
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    a = p.parse_args(argv)
    if a.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda, but torch sees no CUDA device here.", file=sys.stderr)
            return 2
    default = "overhead,compute,resnet" if a.device == "cuda" else "overhead,compute,digits,sweep,contention,cold,memory"
    chosen = (a.cases or default).split(",")
    unknown = set(chosen) - {"overhead", "compute", "digits", "sweep", "contention", "cold", "memory",
                                 "resnet"}
    if unknown:
        print(f"error: --cases: unknown {sorted(unknown)}", file=sys.stderr)
        return 2
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    trainer_log = logging.getLogger("trainer")  # the epoch lines a Hydra job writes to train.log, written here too
    trainer_log.setLevel(logging.INFO)
    trainer_log.propagate = False
    rows: list[Row] = []
    json_path = a.json.resolve() if a.json else None
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)  # MLflow's artifacts (./mlruns) and the runs' outputs/ stay in the temporary folder
        handler = logging.FileHandler(workdir / "bench.log")
        trainer_log.addHandler(handler)
        try:
            mlflow.set_tracking_uri(f"sqlite:///{workdir / 'bench.db'}")
            mlflow.set_experiment("bench")
            for case in chosen:
                started = time.perf_counter()
                if case == "overhead":
                    rows += case_overhead(a.device, a.epochs, a.repeats, workdir, a.scale, a.precision)
                elif case == "compute":
                    rows += case_compute(a.device, a.epochs, a.repeats, workdir, a.scale, a.precision)
                elif case == "resnet":
                    rows += case_resnet(a.device, a.epochs, a.repeats, workdir, a.scale, a.precision)
                elif case == "digits":
                    rows += case_digits(a.device, a.epochs, a.repeats, workdir)
                elif case == "sweep":
                    rows += case_sweep(a.device, a.sweep_runs, workdir, a.sweep_epochs)
                elif case == "contention":
                    rows += case_contention(a.device, workdir, a.contention_repeats, a.sweep_epochs)
                elif case == "cold":
                    rows += case_cold_start(a.device, workdir, a.cold_runs)
                elif case == "memory":
                    rows += case_memory(workdir, a.memory_rows)
                print(f"[{case}: {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
        finally:
            trainer_log.removeHandler(handler)
            handler.close()
            os.chdir(here)
    name = device_name(a.device)
    print(table(rows, name))
    if json_path:
        rows_json = [asdict(r) | {"ratio": r.ratio, "met": r.met} for r in rows]
        json_path.write_text(json.dumps({"device": name, "rows": rows_json}, indent=2))
    return 0
