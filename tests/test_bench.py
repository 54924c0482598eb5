"""scripts/bench.py in its smallest setting, so that it cannot rot: every case runs and prints its figures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import ROOT


def test_the_benchmark_runs_every_cpu_case_and_writes_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--scale", "0.005", "--epochs", "2",
                           "--repeats", "1", "--cases", "overhead,compute,digits,cold,memory", "--cold-runs", "1",
                           "--memory-rows", "20000", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    cases = {r["case"] for r in figures["rows"]}
    assert cases == {"overhead", "compute", "digits", "cold start", "memory"}
    for row in figures["rows"]:
        assert row["harness"] is not None and (row["harness"] > 0 or row["case"] == "memory"), row
        if row["unit"] == "s/epoch":
            assert row["bare"] > 0 and row["ratio"] == row["harness"] / row["bare"]
    assert "benchmark on CPU" in proc.stdout and "ratio" in proc.stdout
    for case in cases:
        assert case in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # no mlruns/ or outputs/ left behind


@pytest.mark.slow  # a minute: transformers' Trainer set up twice, the text CNN on 256-token documents
def test_the_text_cases_time_the_text_models_the_transformer_against_its_trainer_and_tokenizing(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--scale", "0.005", "--epochs", "2",
                           "--repeats", "1", "--cases", "text,transformer,tokenize", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["case"], r["unit"]) for r in rows] == [("text", "s/epoch"), ("text", "s/epoch"),
                                                      ("transformer", "s/step"), ("tokenize", "docs/s"),
                                                      ("tokenize", "share")]
    assert [r["what"].split(",")[0] for r in rows[:3]] == ["ngram_bag", "text_cnn", "bert 2x64"]
    assert all(r["harness"] > 0 and r["bare"] > 0 for r in rows[:3]) and 0 < rows[4]["harness"] < 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


def test_the_benchmark_refuses_cuda_without_a_gpu_and_unknown_cases():
    import torch

    if not torch.cuda.is_available():
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--device", "cuda"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--cases", "warp"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "warp" in proc.stderr


def _bench(tmp_path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # the sweeps ran in a temporary folder
    return json.loads(out.read_text())


def test_the_sweep_case_times_a_sequential_and_a_joblib_sweep_against_training_and_bare_loops(tmp_path):
    rows = _bench(tmp_path, "--cases", "sweep", "--sweep-runs", "2", "--sweep-epochs", "2")["rows"]
    assert [r["case"] for r in rows] == ["sweep"] * 4
    sequential, floor, outside, joblib = rows
    assert "2 runs, sequential" in sequential["what"] and sequential["harness"] > sequential["bare"] > 0
    assert sequential["ratio"] == sequential["harness"] / sequential["bare"]
    assert "bare script alone" in floor["what"] and floor["harness"] > floor["bare"] > 0
    assert sequential["met"] == (sequential["ratio"] <= 1.5) and floor["met"] is None  # the verdict printed
    assert outside["met"] == (outside["harness"] <= 0.5)
    assert floor["harness"] == joblib["bare"]  # the same script's wall time
    assert 0 < outside["harness"] < sequential["harness"] / 2 and outside["extra"]["to_first_run_s"] > 0
    assert "joblib 2 workers" in joblib["what"] and joblib["harness"] > 0 and joblib["bare"] > 0
    assert joblib["extra"]["summed_train_s"] > 0


def test_the_contention_case_times_a_run_quiet_and_beside_a_busy_process(tmp_path):
    rows = _bench(tmp_path, "--cases", "contention", "--sweep-epochs", "2", "--contention-repeats", "1")["rows"]
    assert [r["case"] for r in rows] == ["contention"] * 2
    assert "1 thread(s) (chosen)" in rows[0]["what"] and "(torch default)" in rows[1]["what"]
    for row in rows:
        assert row["harness"] > 0 and row["bare"] > 0 and row["ratio"] == row["harness"] / row["bare"]


@pytest.mark.slow
def test_the_study_cases_time_a_big_sweep_and_compare_on_a_big_store(tmp_path):
    rows = _bench(tmp_path, "--cases", "bigsweep,bigstore", "--big-sweep-runs", "4", "--big-store-tables", "2")["rows"]
    sweep = [r for r in rows if r["case"] == "bigsweep"]
    store = [r for r in rows if r["case"] == "bigstore"]
    assert [r["what"].split(":")[0] for r in sweep[:2]] == ["2 runs", "4 runs"]
    assert all(0 < r["harness"] < r["extra"]["to_first_run_s"] for r in sweep[:2])  # launched, then started
    per_job = sweep[2]
    assert per_job["harness"] > 0 and per_job["bare"] > 0 and per_job["met"] == (per_job["ratio"] <= 1.25)
    assert sweep[3]["harness"] >= 0 and sweep[4]["harness"] > 50  # the exit's wait; MB
    assert "store of 200 runs" in store[0]["what"] and store[0]["harness"] > 0
    assert "200 runs, 2 tables" in store[1]["what"] and store[2]["harness"] > 50
