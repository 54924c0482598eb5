"""End KILLED the MLflow runs left RUNNING by a process that is gone (kill -9, a lost machine):
python scripts/orphans.py [--dry-run] [--host NAME] [--run RUN_ID] [--tracking-uri URI]"""
import sys
from pathlib import Path

# The repository root first, so that the script uses this checkout's trainer package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.sweep.orphans import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
