"""A batch of StatusNotifications is stored in one go with the same rules as one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.models import ConnectorStatus, StatusNotification
from csms.db.statuses import StatusReport, record_statuses


async def test_a_batch_keeps_the_newest_per_connector_and_every_distinct_report(
    session: AsyncSession, station_id: str
) -> None:
    t0 = datetime.now(UTC)
    now = t0 + timedelta(seconds=60)
    reports = [
        StatusReport(station_id, 1, 1, "Occupied", t0 + timedelta(seconds=5), now),
        StatusReport(station_id, 1, 1, "Available", t0, now),  # older, same batch
        StatusReport(station_id, 1, 1, "Available", t0, now),  # a repeat
        StatusReport(station_id, 1, 2, "Faulted", t0, now),
    ]
    await record_statuses(session, reports)
    await record_statuses(
        session, [StatusReport(station_id, 1, 2, "Available", t0 - timedelta(1), now)]
    )

    current = {
        (row.evse_id, row.connector_id): row.status
        for row in await session.scalars(
            select(ConnectorStatus).where(ConnectorStatus.station_id == station_id)
        )
    }
    assert current == {(1, 1): "Occupied", (1, 2): "Faulted"}
    history = await session.scalar(
        select(func.count())
        .select_from(StatusNotification)
        .where(StatusNotification.station_id == station_id)
    )
    assert history == 4
