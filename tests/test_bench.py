"""scripts/bench.py in its smallest setting, so that it cannot rot: every case runs and prints its figures."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_the_benchmark_runs_every_cpu_case_and_writes_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--scale", "0.005", "--epochs", "2",
                           "--repeats", "1", "--sweep-runs", "2", "--cold-runs", "1", "--memory-rows", "20000", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    cases = {r["case"] for r in figures["rows"]}
    assert cases == {"overhead", "compute", "digits", "sweep", "cold start", "memory"}
    for row in figures["rows"]:
        assert row["harness"] is not None and (row["harness"] > 0 or row["case"] == "memory"), row
        if row["unit"] == "s/epoch":
            assert row["bare"] > 0 and row["ratio"] == row["harness"] / row["bare"]
    assert "benchmark on CPU" in proc.stdout and "ratio" in proc.stdout
    for case in cases:
        assert case in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]  # no mlruns/ or outputs/ left behind


def test_the_benchmark_refuses_cuda_without_a_gpu_and_unknown_cases():
    import torch

    if not torch.cuda.is_available():
        proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--device", "cuda"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--cases", "warp"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "warp" in proc.stderr
