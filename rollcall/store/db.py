"""Opening the database: the one way to get a connection, and the rule for using it.

**The rule: a connection never crosses threads.** Open one per thread (or per
asyncio task run in a thread) with :func:`open_db`, close it when done, and
never pass one to another thread. Connections are opened with
``check_same_thread=True``, so SQLite refuses a connection used from a thread
other than the one that opened it. SQLite itself (WAL, ``BEGIN IMMEDIATE``,
the busy timeout) then serialises the writers of all threads and processes.

The helpers every store module shares live in ``rollcall.store.common`` and are
re-exported here:

* :func:`utc_now` / :func:`now_iso` - the one clock (aware UTC; ISO-8601 text);
* :func:`backoff_delay` - the one exponential backoff;
* :func:`write_transaction` - the one write transaction: ``BEGIN IMMEDIATE``,
  a savepoint when nested inside a transaction that the same code path opened
  with it, and an error (never a silent join) when the connection is inside a
  transaction nobody on this path opened.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from rollcall.store.common import (
    ForeignTransactionError,
    StorageError,
    backoff_delay,
    now_iso,
    utc_now,
    write_transaction,
)
from rollcall.store.schema import migrate

__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_NAME",
    "ForeignTransactionError",
    "StorageError",
    "backoff_delay",
    "now_iso",
    "open_db",
    "utc_now",
    "write_transaction",
]

DB_NAME = "rollcall.db"
BUSY_TIMEOUT_S = 30


def open_db(home: Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database in ``home`` and bring its schema up to date.

    The connection belongs to the calling thread (see the module docstring):
    SQLite itself refuses it in any other thread.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / DB_NAME
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        db = sqlite_utils.Database(conn)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    migrate(db, path)
    return db
