"""StatusNotification consumer: connector status history and current state."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import StationMessage
from csms.db.statuses import StatusReport, record_statuses
from csms.timeutil import parse_datetime


async def handle_status_notifications(
    session: AsyncSession, messages: list[StationMessage]
) -> None:
    """A whole batch in two statements."""
    await record_statuses(session, [_report(message) for message in messages])


def _report(message: StationMessage) -> StatusReport:
    payload = message["payload"]
    return StatusReport(
        station_id=message["stationId"],
        evse_id=int(payload["evseId"]),
        connector_id=int(payload["connectorId"]),
        status=payload["connectorStatus"],
        status_at=parse_datetime(payload["timestamp"]),
        received_at=parse_datetime(message["receivedAt"]),
    )
