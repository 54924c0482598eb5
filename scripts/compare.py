"""Compare the runs of the latest sweep (or --parent RUN_ID, or --experiment NAME): python scripts/compare.py"""
import sys
from pathlib import Path

# The repository root first, so that the script uses this checkout's trainer package even when it is
# not the one pip installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
