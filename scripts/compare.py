"""Compare runs: paired tests against the best (or --baseline), --across ranks over datasets; writes report.md/.html:
python scripts/compare.py [--parent RUN_ID | --experiment NAME] [--baseline GROUP] [--across KEY]"""
import sys
from pathlib import Path

# The repository root first, so that the script uses this checkout's trainer package even when it is
# not the one pip installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.analysis.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
