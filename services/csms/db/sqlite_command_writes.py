"""The command journal's grouped writes on SQLite (standalone mode).

Through the engine, each statement is several hand-offs to the driver's thread (cursor,
execute, fetch, close) and a transaction several more: about 1.3 ms of CPU per command, most of
it thread switches. Here a group of commands is one transaction run in one hand-off, on a
connection of the journal's own, while it holds the engine's SQLite turn (sqlite_turns.py).
The statements and value encodings are those the engine's models use (text JSON, UTC
timestamps as naive text), so that rows read back alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.commands import (
    Answered,
    CommandRoute,
    NewCommand,
    answered_at,
    json_text,
    stored_error,
)
from csms.db.engine import sqlite_pragmas
from csms.db.sqlite_turns import turns_of

# As _CREATE_ALL in postgres_command_writes.py, one command at a time.
_CREATE = """
INSERT INTO command (id, station_id, action, request, outcome, open, created_at)
SELECT ?1, ?2, ?3, ?4, 'pending', 0, ?5 WHERE EXISTS (SELECT 1 FROM station WHERE id = ?2)
RETURNING (
    SELECT c.gateway_id FROM station s JOIN station_connection c ON c.id = s.connection_id
    WHERE s.id = command.station_id AND s.connected
)
"""

_RECORD = """
UPDATE command SET outcome = ?, response = ?, error_code = ?, error_description = ?,
    answered_at = ?
WHERE id = ?
"""

T = TypeVar("T")


def has_own_file(engine: AsyncEngine) -> bool:
    """Whether the engine's database is a file a second connection can open (not :memory:)."""
    return engine.url.database not in (None, "", ":memory:")


class SqliteCommandWrites:
    def __init__(self, engine: AsyncEngine) -> None:
        assert has_own_file(engine), "an in-memory database is seen by one connection only"
        self._path = str(engine.url.database)
        self._turns = turns_of(engine.sync_engine)
        # One thread: the connection is used only where it was opened.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="command-journal")
        self._connection: sqlite3.Connection | None = None

    async def create_all(self, commands: Sequence[NewCommand]) -> list[CommandRoute | None]:
        def create(connection: sqlite3.Connection) -> list[CommandRoute | None]:
            routes: list[CommandRoute | None] = []
            for c in commands:
                row = connection.execute(
                    _CREATE,
                    (c.id, c.station_id, c.action, json_text(c.request), _utc(c.created_at)),
                ).fetchone()
                routes.append(None if row is None else CommandRoute(row[0]))
            return routes

        return await self._transaction(create)

    async def record_all(self, answered: Sequence[Answered]) -> list[None]:
        rows = []
        for command, result in answered:
            code, description = stored_error(result)
            response = None if result.response is None else json_text(result.response)
            at = answered_at(result)
            rows.append(
                (
                    result.outcome.value,
                    response,
                    code,
                    description,
                    None if at is None else _utc(at),
                    command.id,
                )
            )
        await self._transaction(lambda connection: connection.executemany(_RECORD, rows))
        return [None] * len(answered)

    def item_fault(self, error: Exception) -> bool:
        # Constraint or data errors; not a locked, full or unreadable database.
        return isinstance(error, sqlite3.DatabaseError) and not isinstance(
            error, sqlite3.OperationalError
        )

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown()

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        async with self._turns.turn():
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

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


def _utc(value: datetime) -> str:
    # As UtcDateTime stores it on SQLite, in SQLAlchemy's SQLite DATETIME format.
    if value.tzinfo is None:
        raise ValueError("naive datetime given; the CSMS stores UTC only")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
