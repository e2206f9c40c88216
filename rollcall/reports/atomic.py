"""Atomic report files: written to hidden temp files, then moved into place together.

Each file is written to a hidden temporary file in the destination directory
and moved into place with :func:`os.replace`, so a crash leaves either the
previous file or the complete new one, never half a report.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path


def _new_temp(final: Path) -> Path:
    """Create an empty hidden temp file next to ``final`` (umask-respecting mode)."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    return tmp


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_atomically(jobs: Sequence[tuple[Path, Callable[[Path], None]]]) -> None:
    """Run each writer on a temp file, then move all of them into place.

    Nothing is replaced unless every writer succeeded. An exception (including
    KeyboardInterrupt) removes the temp files; a hard kill can leave a hidden
    ``.<name>.<hex>.tmp`` file behind, but never a partial ``<name>``.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for final, write in jobs:
            tmp = _new_temp(final)
            temps.append((tmp, final))
            write(tmp)
            _fsync_file(tmp)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    for directory in {final.parent for _, final in temps}:
        _fsync_dir(directory)
