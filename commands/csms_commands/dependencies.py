"""Request-scoped dependencies: one database session per request, the bus, the settings, the
command journal.

All are `async def`: FastAPI runs plain functions in a thread pool, a hand-off per request.
FastAPI's cost is per dependency (about 40 µs each), so the command endpoints, the hot path,
take all they need from one: `CommandContextDep`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.bus.base import Bus
from csms.config import Settings
from csms.db.command_journal import CommandJournal
from csms.security.tokens import Scope
from csms_commands.auth import Credentials, authorize


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_bus(request: Request) -> Bus:
    bus: Bus = request.app.state.bus
    return bus


async def get_journal(request: Request) -> CommandJournal:
    journal: CommandJournal = request.app.state.journal
    return journal


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return factory


async def get_session(
    factory: Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)],
) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


@dataclass(frozen=True, slots=True)
class CommandContext:
    journal: CommandJournal
    bus: Bus
    settings: Settings


async def command_context(request: Request, credentials: Credentials) -> CommandContext:
    """What sending a command needs, for a caller with write access."""
    await authorize(request, credentials, Scope.WRITE)
    return command_context_of(request)


def command_context_of(request: Request) -> CommandContext:
    state = request.app.state
    return CommandContext(journal=state.journal, bus=state.bus, settings=state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
BusDep = Annotated[Bus, Depends(get_bus)]
JournalDep = Annotated[CommandJournal, Depends(get_journal)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
CommandContextDep = Annotated[CommandContext, Depends(command_context)]
