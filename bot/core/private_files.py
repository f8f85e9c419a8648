"""Folders and files only this account may read: the data folder, the SQLite database, the secret key.

Created 0700/0600 from the start (the umask can only make them stricter), so there is never a
moment where another local account could read a phone number or the key. Folders and files that
already exist are left as they are: their owner chose those permissions.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """`path` and any missing parents, each created 0700 (mkdir(parents=True) would use 0777 & umask)."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            pass  # another process made it first
    return Path(path)


def private_file(path: Path) -> bool:
    """Create `path` empty and 0600 (in a 0700 folder if that is missing); False if it already existed."""
    private_dir(Path(path).parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        return False
    return True
