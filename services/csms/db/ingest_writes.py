"""Where the events worker stores StatusNotifications and NotifyEvents: a batch per call, in a
transaction of its own. Straight to the driver on Postgres (postgres_ingest_writes.py, ADR 0018)
and, in standalone mode, on SQLite (sqlite_ingest_writes.py, ADR 0015); through the engine on an
in-memory SQLite database. Boots and presence take the same ways (registration_writes.py, ADR
0021)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.db.engine import engine_of
from csms.db.events import Gap, NotifyEventReport, record_notify_events
from csms.db.postgres_ingest_writes import PostgresIngestWrites
from csms.db.sqlite_ingest_writes import SqliteIngestWrites
from csms.db.sqlite_writer import has_own_file
from csms.db.statuses import StatusReport, record_statuses


class IngestWrites(Protocol):
    async def start(self) -> None:
        """Ready for the first batch (what it needs started, started)."""

    async def record_statuses(self, reports: list[StatusReport]) -> None: ...

    async def record_notify_events(self, reports: list[NotifyEventReport]) -> list[Gap]:
        """The gaps the batch revealed."""

    async def close(self) -> None: ...


def ingest_writes(sessions: async_sessionmaker[AsyncSession]) -> IngestWrites:
    engine = engine_of(sessions)
    if has_own_file(engine):
        return SqliteIngestWrites(engine)
    if engine.dialect.name == "postgresql":
        return PostgresIngestWrites(sessions)
    return EngineIngestWrites(sessions)


class EngineIngestWrites:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def start(self) -> None:
        """Nothing to start: sessions are the engine's."""

    async def record_statuses(self, reports: list[StatusReport]) -> None:
        async with self._sessions() as session, session.begin():
            await record_statuses(session, reports)

    async def record_notify_events(self, reports: list[NotifyEventReport]) -> list[Gap]:
        async with self._sessions() as session, session.begin():
            return await record_notify_events(session, reports)

    async def close(self) -> None:
        """Nothing of its own to close: sessions are the engine's."""
