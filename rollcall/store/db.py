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
  transaction nobody on this path opened;
* :func:`checkpoint_erased` - after deleting personal data: copy the WAL into the
  database file and truncate it, so the deleted rows survive in neither file.

**Erasure.** Every connection runs with ``PRAGMA secure_delete = ON`` (SQLite
overwrites deleted content with zeros instead of leaving it in free pages; some
builds have it off by default), and the code that deletes photos, embeddings,
students or meetings calls :func:`checkpoint_erased` once its transaction is
committed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from rollcall.store.common import (
    ForeignTransactionError,
    StorageError,
    backoff_delay,
    inserted_pk,
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
    "inserted_pk",
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
        conn.execute("PRAGMA secure_delete=ON")
        db = sqlite_utils.Database(conn)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    migrate(db, path)
    return db


def checkpoint_erased(db: sqlite_utils.Database | sqlite3.Connection) -> bool:
    """Checkpoint the WAL into the database file and truncate the WAL (after deletions).

    With ``secure_delete`` the pages that held deleted rows are written zeroed; this
    moves them into the database file and empties the WAL, whose older frames still
    hold the rows as they were. Returns False when another connection's open read
    kept the checkpoint from completing (SQLite finishes it at a later checkpoint);
    inside a transaction it does nothing and returns False.
    """
    conn = db.conn if isinstance(db, sqlite_utils.Database) else db
    if conn.in_transaction:
        return False
    busy, _log_frames, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return bool(busy == 0)
