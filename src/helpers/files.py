"""Atomic file writes: a reader never sees half a file, a crash never leaves one.

Every product a later stage reads is written to a temporary file in the same
folder and renamed into place (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it to ``path``.

    The temporary name keeps ``path``'s suffixes (``.nii.gz``, ``.csv``), so
    writers that pick a format from the name work unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """``df.to_csv(path, index=False)``, atomically."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
