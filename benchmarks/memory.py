"""The memory case: peak resident memory of the harness's data path (benchmarks.memory_child, in a fresh process)
for synthetic n x 64 float32, without and with SMOTE, in units of the features' own bytes."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from benchmarks.repo import module_command, module_env
from benchmarks.table import Row


def case_memory(workdir: Path, n: int = 1_000_000) -> list[Row]:
    """Case 6: peak resident memory of the data path for synthetic n x 64 float32, without and with SMOTE."""
    rows = []
    for resampling in ("none", "smote"):
        proc = subprocess.run(module_command("memory_child", str(n), resampling), env=module_env(),
                              capture_output=True, text=True, cwd=workdir)
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
