"""Where the API records commands and their outcomes: two writes per command, on its hot path.

The writes of concurrent commands are grouped (see grouping.py): one statement, or one
transaction, for all the commands created and answered while the previous write ran; see
postgres_command_writes.py and sqlite_command_writes.py. Whole-station Resets the station
accepted still take the locking path of `record_outcome`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from csms.db.commands import (
    Answered,
    CommandOutcome,
    CommandRoute,
    NewCommand,
    awaits_boot,
    create_command,
    record_outcome,
)
from csms.db.engine import autocommit_connection, engine_of
from csms.db.grouping import GroupedWriter
from csms.db.postgres_command_writes import PostgresCommandWrites
from csms.db.sqlite_command_writes import SqliteCommandWrites
from csms.db.sqlite_writer import has_own_file

log = logging.getLogger(__name__)


class GroupWrites(Protocol):
    async def write_all(
        self, commands: Sequence[NewCommand], answered: Sequence[Answered]
    ) -> list[CommandRoute | None]:
        """As record_outcome for each outcome (none awaits a boot), and create_command for each
        command, in order; together."""

    def item_fault(self, error: Exception) -> bool:
        """Whether the error may be one item's fault (see GroupedWriter)."""

    async def close(self) -> None: ...


def group_writes(engine: AsyncEngine) -> GroupWrites | None:
    if engine.dialect.name == "postgresql":
        return PostgresCommandWrites(engine)
    if has_own_file(engine):
        return SqliteCommandWrites(engine)
    # An in-memory SQLite database is one connection's: each write goes through the engine.
    return None


class CommandJournal:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine = engine_of(sessions)
        self._writes = group_writes(self._engine)
        self._grouped: GroupedWriter[NewCommand | Answered, CommandRoute | None] | None = None
        if self._writes is not None:
            self._grouped = GroupedWriter(self._write_group, item_fault=self._writes.item_fault)

    async def start(self) -> None:
        """Open the journal's connection and prepare its statement, so that the first commands
        do not pay for it; with the database away, it is opened on first use."""
        if self._writes is None:
            return
        try:
            await self._writes.write_all([], [])
        except Exception as exc:
            log.warning("command journal not ready yet: %s", exc)

    async def create(self, command: NewCommand) -> CommandRoute | None:
        """Record a command before it is sent; where to send it, or None if its station was
        never seen (nothing is recorded then)."""
        if self._grouped is not None:
            return await self._grouped.submit(command)
        async with autocommit_connection(self._sessions) as connection:
            return await create_command(connection, command)

    async def record(self, command: NewCommand, result: CommandOutcome) -> None:
        """Store what came of a command."""
        if awaits_boot(command, result):
            async with self._engine.begin() as connection:
                await record_outcome(connection, command, result)
        elif self._grouped is not None:
            await self._grouped.submit((command, result))
        else:
            async with autocommit_connection(self._sessions) as connection:
                await record_outcome(connection, command, result)

    async def _write_group(
        self, items: Sequence[NewCommand | Answered]
    ) -> list[CommandRoute | None]:
        assert self._writes is not None
        commands = [item for item in items if isinstance(item, NewCommand)]
        answered = [item for item in items if not isinstance(item, NewCommand)]
        routes = iter(await self._writes.write_all(commands, answered))
        return [next(routes) if isinstance(item, NewCommand) else None for item in items]

    async def close(self) -> None:
        if self._grouped is not None:
            await self._grouped.close()
        if self._writes is not None:
            await self._writes.close()
