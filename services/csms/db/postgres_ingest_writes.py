"""The events worker's StatusNotification writes on Postgres: a batch in one statement, sent to
the driver directly (postgres_driver.py). Through the engine, SQLAlchemy's processing of each
row's parameters was most of the worker's CPU for a status; the rules are those of statuses.py.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.db.engine import engine_of
from csms.db.events import Gap, NotifyEventReport, record_notify_events
from csms.db.postgres_driver import on_driver
from csms.db.statuses import StatusReport, newest_per_connector

# The history and the current statuses in one statement: one round trip, committed as one.
_RECORD_STATUSES = """
WITH history AS (
    INSERT INTO status_notification
        (station_id, evse_id, connector_id, status, status_at, received_at)
    SELECT * FROM unnest(
        $1::varchar[], $2::int[], $3::int[], $4::varchar[], $5::timestamptz[], $6::timestamptz[]
    )
    ON CONFLICT (station_id, evse_id, connector_id, status_at, status) DO NOTHING
)
INSERT INTO connector_status AS current
    (station_id, evse_id, connector_id, status, status_at, updated_at)
SELECT * FROM unnest(
    $7::varchar[], $8::int[], $9::int[], $10::varchar[], $11::timestamptz[], $12::timestamptz[]
)
ON CONFLICT (station_id, evse_id, connector_id) DO UPDATE
SET status = excluded.status, status_at = excluded.status_at, updated_at = excluded.updated_at
WHERE current.status_at <= excluded.status_at
"""


class PostgresIngestWrites:
    """Statuses straight to the driver; NotifyEvents through the engine (events.py)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine = engine_of(sessions)

    async def record_statuses(self, reports: list[StatusReport]) -> None:
        if not reports:
            return
        # Rows in key order: concurrent batches then lock shared rows in the same order.
        history = sorted(reports, key=_key)
        current = sorted(newest_per_connector(reports), key=_key)
        arguments = (*_columns(history), *_columns(current))
        await on_driver(self._engine, lambda driver: driver.execute(_RECORD_STATUSES, *arguments))

    async def record_notify_events(self, reports: list[NotifyEventReport]) -> list[Gap]:
        async with self._sessions() as session, session.begin():
            return await record_notify_events(session, reports)

    async def close(self) -> None:
        """Nothing of its own to close: connections are the engine's."""


def _key(report: StatusReport) -> tuple[str, int, int, object]:
    return (report.station_id, report.evse_id, report.connector_id, report.status_at)


def _columns(reports: list[StatusReport]) -> tuple[list[object], ...]:
    return (
        [r.station_id for r in reports],
        [r.evse_id for r in reports],
        [r.connector_id for r in reports],
        [r.status for r in reports],
        [r.status_at for r in reports],
        [r.received_at for r in reports],
    )
