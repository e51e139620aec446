"""NotifyEvent consumer: stores eventData items and detects lost report parts."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import StationMessage
from csms.db.events import Gap, NotifyEventReport, close_unfinished_reports, record_notify_events
from csms.timeutil import parse_datetime, utcnow

log = logging.getLogger(__name__)


async def handle_notify_events(session: AsyncSession, messages: list[StationMessage]) -> None:
    """A batch, in publish order (the queue has a single active consumer)."""
    reports = [
        NotifyEventReport(
            station_id=message["stationId"],
            ocpp_message_id=message["ocppMessageId"],
            payload=message["payload"],
            generated_at=parse_datetime(message["payload"]["generatedAt"]),
            received_at=parse_datetime(message["receivedAt"]),
        )
        for message in messages
    ]
    for gap in await record_notify_events(session, reports):
        _log_gap(gap)


async def close_stale_reports(session: AsyncSession, report_timeout: float) -> None:
    """Record reports left unfinished (tbc) for longer than `report_timeout` seconds."""
    now = utcnow()
    gaps = await close_unfinished_reports(
        session, idle_since=now - timedelta(seconds=report_timeout), now=now
    )
    for gap in gaps:
        _log_gap(gap)


def _log_gap(gap: Gap) -> None:
    log.warning(
        "NotifyEvent gap for station %s: expected seqNo %d, received %s",
        gap.station_id,
        gap.expected_seq_no,
        "nothing (report never finished)" if gap.received_seq_no is None else gap.received_seq_no,
    )
