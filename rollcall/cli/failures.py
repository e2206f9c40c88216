"""What went wrong, in one line: the CLI's words for the failures it did not expect.

A command that fails with an exception the CLI does not handle itself (a full
disk, a read-only folder, a file where a folder should be, a bug) ends in one
line naming the problem and exit code 1; ``rollcall -v`` adds the traceback.
"""

from __future__ import annotations

import errno
import sqlite3

from rollcall.printable import printable

_VERBOSE_HINT = " (run with -v for the traceback)"


def _where(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else exc.filename2
    return str(name) if name is not None else "a file"


def _named(exc: OSError) -> bool:
    return exc.filename is not None or exc.filename2 is not None


def _os_error(exc: OSError) -> str:
    where = _where(exc)
    code = exc.errno
    if code == errno.ENOSPC or code == errno.EDQUOT:
        place = f" holding {where}" if _named(exc) else ""
        return f"no space left on the device{place} (disk full); free some space and run again"
    if code == errno.EROFS:
        return f"{where} is on a read-only file system; choose a writable place"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where}"
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return f"{where} (or a folder above it) is a file, but a folder is needed there"
    if isinstance(exc, IsADirectoryError):
        return f"{where} is a folder, but a file is needed there"
    if isinstance(exc, FileNotFoundError):
        return f"{where} does not exist"
    return f"{where}: {exc.strerror or exc}"


def _sqlite_error(exc: sqlite3.Error) -> str:
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return (
            f"the database cannot grow: {text} (is the disk of the data folder full?); "
            "free some space and run again"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return f"the database cannot be written: {text} (a read-only data folder?)"
    if "locked" in lowered or "busy" in lowered:
        return f"the database is busy: {text} (another rollcall holds it); try again"
    if "disk i/o" in lowered:
        return f"the database cannot be read or written: {text} (a full or failing disk?)"
    return f"database error: {text}{_VERBOSE_HINT}"


def describe_failure(exc: BaseException) -> str:
    """One line for an exception the command did not handle itself (control characters escaped)."""
    if isinstance(exc, OSError):
        line = _os_error(exc)
    elif isinstance(exc, sqlite3.Error):
        line = _sqlite_error(exc)
    elif isinstance(exc, MemoryError):
        line = "out of memory"
    else:
        line = f"unexpected {type(exc).__name__}: {exc}{_VERBOSE_HINT}"
    return printable(line)
