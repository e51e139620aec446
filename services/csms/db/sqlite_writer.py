"""Hot-path SQLite writes that bypass the engine (standalone mode).

Through the engine, each statement is several hand-offs to the driver's thread (cursor,
execute, fetch, close) and a transaction several more, and SQLAlchemy's statement and value
processing runs on the event loop's thread. Here a whole transaction is one hand-off to a
thread of the writer's own, on a connection of its own, run while it holds the engine's SQLite
turn (sqlite_turns.py). Callers store values as the engine's models do (see `utc_text`,
`types.json_text`), so that rows read back alike.

A writer of small transactions on a request's path (the command journal) runs them on the
event loop instead: a transaction there takes well under a millisecond, while the hand-off to
a thread and back, waiting for the GIL each way, took several (commands in standalone mode at
500/s: p50 12 -> 5 ms). That connection never waits on the event loop: it does not wait for a
lock another process holds (the transaction then goes to the thread, which does wait) and
leaves automatic checkpoints to the other connections.
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
    if value.tzinfo is UTC:
        # One call instead of three (on the ingest path): "+00:00" cut off the aware form.
        return value.isoformat(" ", "microseconds")[:-6]
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
    def __init__(self, engine: AsyncEngine, name: str, *, on_loop: bool = False) -> None:
        assert has_own_file(engine), "an in-memory database is seen by one connection only"
        self._path = str(engine.url.database)
        self._turns = turns_of(engine.sync_engine)
        # One thread: the connection is used only where it was opened.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None
        self._on_loop = on_loop
        self._loop_connection: sqlite3.Connection | None = None

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one transaction, committed if it returns."""
        async with self._turns.turn():
            if self._on_loop:
                connection = self._open_on_loop()
                try:
                    return run_transaction(connection, work)
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                    # Another process holds the write lock: the thread waits it out.
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

    async def close(self) -> None:
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown()

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return run_transaction(self._open(), work)

    def _open_on_loop(self) -> sqlite3.Connection:
        if self._loop_connection is None:
            self._loop_connection = self._connect()
            self._loop_connection.execute("PRAGMA busy_timeout=0")
            self._loop_connection.execute("PRAGMA wal_autocheckpoint=0")
        return self._loop_connection

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _connect(self) -> sqlite3.Connection:
        # Each connection is used only on the thread that opened it (check_same_thread).
        connection = sqlite3.connect(self._path)
        sqlite_pragmas(connection, None)
        return connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def run_transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result
