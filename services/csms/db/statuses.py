"""Connector status: the history of StatusNotifications and each connector's current status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import ConnectorStatus, StatusNotification


@dataclass(frozen=True, slots=True)
class StatusReport:
    station_id: str
    evse_id: int
    connector_id: int
    status: str
    status_at: datetime
    received_at: datetime


async def record_statuses(session: AsyncSession, reports: list[StatusReport]) -> None:
    """Keep every notification in the history; make each current unless a newer one is stored.

    Ordering is by the station's own timestamp, so a late redelivery never overwrites newer
    state, and a repeated notification is stored once. Two statements for any number of
    reports.
    """
    if not reports:
        return
    # executemany of one cached statement: a multi-row VALUES would be compiled anew for
    # every batch size, which costs more than the database work.
    await session.execute(
        insert(session, StatusNotification).on_conflict_do_nothing(
            index_elements=["station_id", "evse_id", "connector_id", "status_at", "status"]
        ),
        [_history_row(report) for report in reports],
    )
    upsert = insert(session, ConnectorStatus)
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=["station_id", "evse_id", "connector_id"],
            set_={
                "status": upsert.excluded.status,
                "status_at": upsert.excluded.status_at,
                "updated_at": upsert.excluded.updated_at,
            },
            where=ConnectorStatus.__table__.c.status_at <= upsert.excluded.status_at,
        ),
        [
            {
                "station_id": r.station_id,
                "evse_id": r.evse_id,
                "connector_id": r.connector_id,
                "status": r.status,
                "status_at": r.status_at,
                "updated_at": r.received_at,
            }
            for r in newest_per_connector(reports)
        ],
    )


async def record_status(
    session: AsyncSession,
    *,
    station_id: str,
    evse_id: int,
    connector_id: int,
    status: str,
    status_at: datetime,
    received_at: datetime,
) -> None:
    """One notification (see record_statuses)."""
    await record_statuses(
        session,
        [StatusReport(station_id, evse_id, connector_id, status, status_at, received_at)],
    )


def newest_per_connector(reports: list[StatusReport]) -> list[StatusReport]:
    """The newest report of each connector: an upsert may not touch the same row twice."""
    newest: dict[tuple[str, int, int], StatusReport] = {}
    for report in reports:
        key = (report.station_id, report.evse_id, report.connector_id)
        if key not in newest or newest[key].status_at <= report.status_at:
            newest[key] = report
    return list(newest.values())


def _history_row(report: StatusReport) -> dict[str, object]:
    return {
        "station_id": report.station_id,
        "evse_id": report.evse_id,
        "connector_id": report.connector_id,
        "status": report.status,
        "status_at": report.status_at,
        "received_at": report.received_at,
    }
