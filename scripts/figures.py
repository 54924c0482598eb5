"""Draw the figures of runs that deferred them (eval.figures=later), from what each run logged:
python scripts/figures.py [RUN_ID ...] [--parent RUN_ID | --experiment NAME] [--tracking-uri URI]"""
import sys
from pathlib import Path

# The repository root first, so that the script uses this checkout's trainer package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.draw import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
