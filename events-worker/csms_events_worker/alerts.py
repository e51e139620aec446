"""NotifyEvent consumer: stores eventData items and detects lost report parts."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import StationMessage
from csms.db.events import Gap, NotifyEventReport, close_unfinished_reports
from csms.timeutil import parse_datetime, utcnow

log = logging.getLogger(__name__)


def notify_event_reports(messages: list[StationMessage]) -> list[NotifyEventReport]:
    """A batch, in publish order (the queue has a single active consumer)."""
    return [
        NotifyEventReport(
            station_id=message["stationId"],
            ocpp_message_id=message["ocppMessageId"],
            payload=message["payload"],
            generated_at=parse_datetime(message["payload"]["generatedAt"]),
            received_at=parse_datetime(message["receivedAt"]),
        )
        for message in messages
    ]


async def close_stale_reports(session: AsyncSession, report_timeout: float) -> None:
    """Record reports left unfinished (tbc) for longer than `report_timeout` seconds."""
    now = utcnow()
    gaps = await close_unfinished_reports(
        session, idle_since=now - timedelta(seconds=report_timeout), now=now
    )
    log_gaps(gaps)


def log_gaps(gaps: list[Gap]) -> None:
    for gap in gaps:
        log.warning(
            "NotifyEvent gap for station %s: expected seqNo %d, received %s",
            gap.station_id,
            gap.expected_seq_no,
            "nothing (report never finished)"
            if gap.received_seq_no is None
            else gap.received_seq_no,
        )
