"""Whether a folder can be written (made first if it does not exist yet), asked before anything is written into it:
Hydra's output folders and the folder of the MLflow database. Imports nothing heavy: Hydra's callback uses it."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from trainer.errors import UserError


def blocker(folder: Path) -> Path | None:
    """The folder, or the nearest existing folder above it, when this process cannot write there (so cannot create
    `folder` or files in it); None if it can. A file standing where a folder is needed is its own blocker."""
    path = Path(folder).expanduser().absolute()
    while not path.exists():
        if path.parent == path:
            return path
        path = path.parent
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        return path
    return None


def require_folder(folder: Path | str, setting: str) -> None:
    """UserError naming `setting` (the key that chose the folder) when folder cannot be created or written."""
    stuck = blocker(Path(folder))
    if stuck is None:
        return
    why = "is a file, not a folder" if stuck.exists() and not stuck.is_dir() else "is not writable by this user"
    raise UserError(f"{setting}={folder}: {stuck} {why}, so nothing can be written there. Run from a folder you can "
                    f"write to, make it writable, or set {setting} to one.")


def free_space(folder: Path) -> str:
    """The space left on folder's file system, as '12.3 MiB free in FOLDER' (or '' if it cannot be told)."""
    try:
        return f"{shutil.disk_usage(folder).free / 2 ** 20:.1f} MiB free in {folder}"
    except OSError:
        return ""
