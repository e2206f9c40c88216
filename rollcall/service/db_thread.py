"""A thread that owns one SQLite connection, for asyncio code that makes many small
database calls (a job worker: claim, state changes, heartbeats).

A connection is opened, used and closed in one thread only: every call made
through :class:`DbThread` runs on its single thread, so the event loop never
blocks on SQLite (a lock held by another process only delays this worker).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from rollcall.store import storage

T = TypeVar("T")


class DbThread:
    """``await db_thread.run(fn, *args)`` runs ``fn(db, *args)`` on the thread that owns ``db``."""

    def __init__(self, home: Path, name: str = "rollcall-db"):
        self._home = home
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite_utils.Database | None = None
        self._thread: threading.Thread | None = None

    def _call(self, fn: Callable[..., T], args: tuple, kwargs: dict[str, Any]) -> T:
        if self._db is None:  # opened lazily, in the thread that will use it
            self._db = storage.open_db(self._home)
            self._thread = threading.current_thread()
        return fn(self._db, *args, **kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(self._call, fn, args, kwargs)
        return await loop.run_in_executor(self._executor, call)

    @property
    def thread(self) -> threading.Thread | None:
        """The thread that opened (and alone uses) the connection, once one was opened."""
        return self._thread

    def _close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    async def close(self) -> None:
        """Close the connection (in its thread) and let the thread end."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)
