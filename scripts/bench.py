"""Time the harness against a bare PyTorch loop: python scripts/bench.py [--device cuda] [--json FILE]"""
import sys
from pathlib import Path

# The repository root first, so that the script uses this checkout's trainer package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
