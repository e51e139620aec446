"""Where the API records commands and their outcomes: two writes per command, on its hot path.

On Postgres the writes of concurrent commands are grouped (see grouping.py): one statement and
one commit for all the commands created, or answered, while the previous statement ran. They
go to the driver directly with statements prepared once per connection: through the ORM layer
a command's two writes took about three times the CPU. Whole-station Resets the station
accepted still take the locking path of `record_outcome`. On SQLite, where a write costs no
round trip, each write runs on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.db.commands import (
    CommandOutcome,
    CommandRoute,
    NewCommand,
    answered_at,
    awaits_boot,
    create_command,
    record_outcome,
    stored_error,
)
from csms.db.engine import autocommit_connection, engine_of
from csms.db.grouping import GroupedWriter

# As create_command, for many commands: those whose station was never seen are not recorded
# (no row returned); the others return the gateway holding the station's current connection.
_CREATE_ALL = """
INSERT INTO command (id, station_id, action, request, outcome, open, created_at)
SELECT n.id, n.station_id, n.action, n.request::jsonb, 'pending', false, n.created_at
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::text[], $5::timestamptz[])
    AS n(id, station_id, action, request, created_at)
WHERE EXISTS (SELECT FROM station WHERE station.id = n.station_id)
RETURNING command.id, (
    SELECT c.gateway_id FROM station s JOIN station_connection c ON c.id = s.connection_id
    WHERE s.id = command.station_id AND s.connected
)
"""

# As record_outcome for outcomes that await no boot: `open` and `closed_at` keep the values
# the row was created with.
_RECORD_ALL = """
UPDATE command SET outcome = v.outcome, response = v.response::jsonb, error_code = v.error_code,
    error_description = v.error_description, answered_at = v.answered_at
FROM unnest(
    $1::varchar[], $2::varchar[], $3::text[], $4::varchar[], $5::varchar[], $6::timestamptz[]
) AS v(id, outcome, response, error_code, error_description, answered_at)
WHERE command.id = v.id
"""

_Answered = tuple[NewCommand, CommandOutcome]
T = TypeVar("T")


class CommandJournal:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine = engine_of(sessions)
        grouped = self._engine.dialect.name == "postgresql"
        self._creates = GroupedWriter(self._create_all) if grouped else None
        self._outcomes = GroupedWriter(self._record_all) if grouped else None

    async def create(self, command: NewCommand) -> CommandRoute | None:
        """Record a command before it is sent; where to send it, or None if its station was
        never seen (nothing is recorded then)."""
        if self._creates is not None:
            return await self._creates.submit(command)
        async with autocommit_connection(self._sessions) as connection:
            return await create_command(connection, command)

    async def record(self, command: NewCommand, result: CommandOutcome) -> None:
        """Store what came of a command."""
        if awaits_boot(command, result):
            async with self._engine.begin() as connection:
                await record_outcome(connection, command, result)
        elif self._outcomes is not None:
            await self._outcomes.submit((command, result))
        else:
            async with autocommit_connection(self._sessions) as connection:
                await record_outcome(connection, command, result)

    async def close(self) -> None:
        for writer in (self._creates, self._outcomes):
            if writer is not None:
                await writer.close()

    async def _create_all(self, commands: Sequence[NewCommand]) -> list[CommandRoute | None]:
        arguments = (
            [c.id for c in commands],
            [c.station_id for c in commands],
            [c.action for c in commands],
            [_json(c.request) for c in commands],
            [c.created_at for c in commands],
        )
        rows = await self._run(lambda driver: driver.fetch(_CREATE_ALL, *arguments))
        holders = {row[0]: row[1] for row in rows}
        return [CommandRoute(holders[c.id]) if c.id in holders else None for c in commands]

    async def _record_all(self, answered: Sequence[_Answered]) -> list[None]:
        errors = [stored_error(result) for _, result in answered]
        arguments = (
            [command.id for command, _ in answered],
            [result.outcome.value for _, result in answered],
            [None if result.response is None else _json(result.response) for _, result in answered],
            [code for code, _ in errors],
            [description for _, description in errors],
            [answered_at(result) for _, result in answered],
        )
        await self._run(lambda driver: driver.execute(_RECORD_ALL, *arguments))
        return [None] * len(answered)

    async def _run(self, statement: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """One autocommitted statement on a pooled connection's driver."""
        pooled = await self._engine.raw_connection()
        try:
            return await statement(pooled.driver_connection)
        except BaseException as exc:
            # A connection that failed other than by the statement's fault is not reused.
            if not isinstance(exc, asyncpg.PostgresError):
                pooled.invalidate()
            raise
        finally:
            pooled.close()


def _json(value: dict[str, Any]) -> str:
    # Sent as text and cast to jsonb by the statement: an array of jsonb would make the driver
    # look the array type up on each new connection, a query of about 100 ms.
    return orjson.dumps(value).decode()
