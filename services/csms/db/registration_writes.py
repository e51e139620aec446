"""Where the events worker stores boots and presence: a batch per call, in a transaction of its
own. Straight to the driver on Postgres (postgres_registration_writes.py) and, in standalone
mode, on SQLite (sqlite_registration_writes.py), ADR 0021; through the engine (boots.py,
presence.py) on an in-memory SQLite database."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.db.boots import BootDecision, BootPolicy, BootReport, record_boots
from csms.db.engine import engine_of
from csms.db.postgres_registration_writes import PostgresRegistrationWrites
from csms.db.presence import BeforeCommit, PresenceBatch, Registrations, record_presence
from csms.db.sqlite_registration_writes import SqliteRegistrationWrites
from csms.db.sqlite_writer import has_own_file


class RegistrationWrites(Protocol):
    async def record_boots(
        self, reports: list[BootReport], policy: BootPolicy
    ) -> list[BootDecision]:
        """As boots.record_boots: one decision per report, in order."""

    async def record_presence(
        self, batch: PresenceBatch, before_commit: BeforeCommit
    ) -> Registrations:
        """As presence.record_presence; returns each connecting station's registration (its
        last boot's status, its security profile). If the batch's connections replaced open
        ones on other gateways, `before_commit` is awaited with them inside the transaction: an
        error there rolls the batch back."""

    async def close(self) -> None: ...


def registration_writes(sessions: async_sessionmaker[AsyncSession]) -> RegistrationWrites:
    engine = engine_of(sessions)
    if has_own_file(engine):
        return SqliteRegistrationWrites(engine)
    if engine.dialect.name == "postgresql":
        return PostgresRegistrationWrites(engine)
    return EngineRegistrationWrites(sessions)


class EngineRegistrationWrites:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record_boots(
        self, reports: list[BootReport], policy: BootPolicy
    ) -> list[BootDecision]:
        async with self._sessions() as session, session.begin():
            return await record_boots(session, reports, policy)

    async def record_presence(
        self, batch: PresenceBatch, before_commit: BeforeCommit
    ) -> Registrations:
        async with self._sessions() as session, session.begin():
            recorded = await record_presence(session, batch)
            if recorded.replaced:
                await before_commit(recorded.replaced)
            return recorded.registrations

    async def close(self) -> None:
        """Nothing of its own to close: sessions are the engine's."""
