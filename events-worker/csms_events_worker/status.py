"""StatusNotification consumer: connector status history and current state."""

from __future__ import annotations

from csms.bus.envelopes import StationMessage
from csms.db.statuses import StatusReport
from csms.timeutil import parse_datetime


def status_reports(messages: list[StationMessage]) -> list[StatusReport]:
    return [_report(message) for message in messages]


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
