"""Opening the database, and the helpers every store module shares.

**The rule: a connection never crosses threads.** Open one per thread (or per
asyncio task run in a thread) with :func:`open_db`, close it when done, and
never pass one to another thread. Connections are opened with
``check_same_thread=True``, so SQLite refuses a connection used from a thread
other than the one that opened it. SQLite itself (WAL, ``BEGIN IMMEDIATE``,
the busy timeout) then serialises the writers of all threads and processes.

Shared helpers, used by the job queue, the outbox and the rest of the store:

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

import random
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

DB_NAME = "rollcall.db"
BUSY_TIMEOUT_S = 30


class StorageError(Exception):
    """The database cannot be used (newer schema, locked, corrupt)."""


class ForeignTransactionError(sqlite3.ProgrammingError):
    """:func:`write_transaction` found the connection inside a transaction it did not open.

    Joining it would tie this write to someone else's commit or rollback (the
    bug of a job lost with a rolled-back retention purge), so it is refused.
    """


# ---------------------------------------------------------------- connections


def open_db(home: Path, *, check_same_thread: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database in ``home`` and bring its schema up to date.

    The connection belongs to the calling thread (see the module docstring).
    ``check_same_thread=False`` exists only for callers that still share a
    connection between threads; do not use it in new code.
    """
    from rollcall.store.schema import migrate

    home.mkdir(parents=True, exist_ok=True)
    path = home / DB_NAME
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=check_same_thread)
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
    return busy == 0


# ---------------------------------------------------------------- clock


def utc_now(now: datetime | None = None) -> datetime:
    """``now`` as an aware UTC datetime (a naive one is taken as UTC); the current time if None.

    Every function that stores a time accepts ``now`` so tests can inject the clock.
    """
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def now_iso(now: datetime | None = None, *, timespec: str = "seconds") -> str:
    """ISO-8601 UTC text of ``now`` (default: the current time), e.g. ``2024-05-01T12:00:00+00:00``.

    A table keeps one ``timespec`` for all its rows so the texts compare as times.
    """
    return utc_now(now).isoformat(timespec=timespec)


# ---------------------------------------------------------------- backoff


def backoff_delay(
    attempts: int,
    base_s: float,
    max_s: float,
    *,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after the ``attempts``-th failure: ``min(max_s, base_s * 2**(attempts-1))``.

    ``jitter`` adds up to that fraction of the delay at random (0.1 = up to +10 %).
    """
    delay = min(float(max_s), base_s * 2 ** max(attempts - 1, 0))
    if jitter > 0:
        delay += (rng or random).uniform(0, jitter * delay)
    return delay


# ---------------------------------------------------------------- write transactions

# The connections whose transaction the current thread/task opened with write_transaction.
# A ContextVar is private to each thread and asyncio task: another thread's transaction on a
# shared connection is never mistaken for ours.
_OPENED_HERE: ContextVar[tuple[sqlite3.Connection, ...]] = ContextVar(
    "rollcall_write_transactions", default=()
)


def _conn_of(db: sqlite_utils.Database | sqlite3.Connection) -> sqlite3.Connection:
    return db.conn if isinstance(db, sqlite_utils.Database) else db


@contextmanager
def write_transaction(
    db: sqlite_utils.Database | sqlite3.Connection,
) -> Iterator[sqlite3.Connection]:
    """A write transaction: commit on success, roll back on any exception.

    Outermost, it starts with ``BEGIN IMMEDIATE``, which takes SQLite's write
    lock before reading, so a read-check-update sequence inside it cannot
    interleave with another connection's (waiting for the lock is bounded by
    the busy timeout). Nested inside a ``write_transaction`` that this same
    code path (thread or task) opened on the connection, it is a savepoint:
    its own failure undoes only its writes, and everything commits or rolls
    back with the outer transaction.

    If the connection is already inside a transaction that this path did not
    open with ``write_transaction`` (another thread's on a shared connection,
    or a caller's implicit one), it raises :class:`ForeignTransactionError`
    instead of silently joining it.
    """
    conn = _conn_of(db)
    opened = _OPENED_HERE.get()
    if any(c is conn for c in opened):
        if not conn.in_transaction:
            raise ForeignTransactionError(
                "the enclosing write_transaction was committed or rolled back behind its back "
                "(a 'with conn:' block or an explicit commit inside it)"
            )
        name = f"rollcall_{secrets.token_hex(4)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # an error may already have ended the transaction
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    if conn.in_transaction:
        raise ForeignTransactionError(
            "the connection is inside a transaction this code did not open (another thread's "
            "on a shared connection, or an implicit one); refusing to join it. Open one "
            "connection per thread with open_db, and open transactions with write_transaction"
        )
    conn.execute("BEGIN IMMEDIATE")
    token = _OPENED_HERE.set((*opened, conn))
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    else:
        conn.commit()
    finally:
        _OPENED_HERE.reset(token)
