"""Hot-path SQLite writes that bypass the engine (standalone mode).

Through the engine, each statement is several hand-offs to the driver's thread (cursor,
execute, fetch, close) and a transaction several more, and SQLAlchemy's statement and value
processing runs on the event loop's thread. Here a whole transaction is one hand-off to a
thread of the writer's own, on a connection of its own, run while it holds the engine's SQLite
turn (sqlite_turns.py). Callers store values as the engine's models do (see `utc_text`,
`types.json_text`), so that rows read back alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import sqlite_pragmas
from csms.db.sqlite_turns import turns_of

T = TypeVar("T")


def has_own_file(engine: AsyncEngine) -> bool:
    """Whether the engine's database is a file a second connection can open (not :memory:)."""
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


def utc_text(value: datetime) -> str:
    """A datetime as UtcDateTime stores it on SQLite: naive UTC, in SQLAlchemy's format."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given; the CSMS stores UTC only")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def utc_from_text(value: str) -> datetime:
    """The inverse of `utc_text`."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def is_item_fault(error: Exception) -> bool:
    """Constraint or data errors, which one item may cause; not a locked, full or unreadable
    database, which fails every item alike."""
    return isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.OperationalError
    )


class SqliteWriter:
    def __init__(self, engine: AsyncEngine, name: str) -> None:
        assert has_own_file(engine), "an in-memory database is seen by one connection only"
        self._path = str(engine.url.database)
        self._turns = turns_of(engine.sync_engine)
        # One thread: the connection is used only where it was opened.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one transaction on the writer's thread, committed if it returns."""
        async with self._turns.turn():
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown()

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._open()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, check_same_thread=True)
            sqlite_pragmas(connection, None)
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
