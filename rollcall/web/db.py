"""Database work of the web app's handlers, off the event loop.

:func:`db_call` runs ``fn(db, *args)`` in a worker thread with a connection
opened and closed in that same thread, so no SQLite connection crosses threads
and the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rollcall.store import storage

T = TypeVar("T")


def with_db(home: Path, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(db, *args)`` with a connection of this thread, closed afterwards."""
    db = storage.open_db(home)
    try:
        return fn(db, *args, **kwargs)
    finally:
        db.conn.close()


async def db_call(home: Path, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(db, *args)`` in a worker thread with its own connection."""
    return await asyncio.to_thread(with_db, home, fn, *args, **kwargs)
