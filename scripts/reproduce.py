"""Run a logged run again and compare: python scripts/reproduce.py RUN_ID [--tolerance T] [--allow-commit-mismatch]"""
import sys
from pathlib import Path

# This checkout's trainer package, even where another copy is installed: the commit check is about this code.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
