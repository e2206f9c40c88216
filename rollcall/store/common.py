"""The helpers every store module shares (``rollcall.store.db`` re-exports them).

* :func:`utc_now` / :func:`now_iso` - the one clock (aware UTC; ISO-8601 text);
* :func:`backoff_delay` - the one exponential backoff;
* :func:`write_transaction` - the one write transaction: ``BEGIN IMMEDIATE``,
  a savepoint when nested inside a transaction that the same code path opened
  with it, and an error (never a silent join) when the connection is inside a
  transaction nobody on this path opened.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

import sqlite_utils


class StorageError(Exception):
    """The database cannot be used (newer schema, locked, corrupt)."""


class ForeignTransactionError(sqlite3.ProgrammingError):
    """:func:`write_transaction` found the connection inside a transaction it did not open.

    Joining it would tie this write to someone else's commit or rollback (the
    bug of a job lost with a rolled-back retention purge), so it is refused.
    """


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
    return float(delay)


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


def inserted_pk(table: sqlite_utils.db.Table) -> int:
    """The primary key of the row ``table.insert(...)`` just wrote."""
    pk = table.last_pk
    if pk is None:
        raise StorageError(f"insert into {table.name} returned no primary key")
    return int(pk)
