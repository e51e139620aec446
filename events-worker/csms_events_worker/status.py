"""StatusNotification consumer: connector status history and current state."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import StationMessage
from csms.db.statuses import record_status
from csms.timeutil import parse_datetime


async def handle_status_notification(session: AsyncSession, message: StationMessage) -> None:
    payload = message["payload"]
    await record_status(
        session,
        station_id=message["stationId"],
        evse_id=int(payload["evseId"]),
        connector_id=int(payload["connectorId"]),
        status=payload["connectorStatus"],
        status_at=parse_datetime(payload["timestamp"]),
        received_at=parse_datetime(message["receivedAt"]),
    )
