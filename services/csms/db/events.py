"""NotifyEvent storage and per-station sequence tracking (gap detection).

A report starts at seqNo 0 and continues while `tbc` is true. Messages of one station are
handled in publish order (a single active consumer) and under a row lock on the station's
sequence, so a jump in seqNo is a real gap; a repeated message is recognised and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import EventData, EventGap, EventSequence
from csms.timeutil import parse_datetime


@dataclass(frozen=True, slots=True)
class Gap:
    station_id: str
    expected_seq_no: int
    received_seq_no: int | None


async def record_notify_event(
    session: AsyncSession,
    *,
    station_id: str,
    ocpp_message_id: str,
    payload: dict[str, Any],
    generated_at: datetime,
    received_at: datetime,
) -> list[Gap]:
    """Store every eventData item and advance the station's sequence; return new gaps."""
    seq_no: int = int(payload["seqNo"])
    tbc: bool = bool(payload.get("tbc", False))
    sequence = await _locked_sequence(session, station_id, generated_at, received_at)
    duplicate = await session.scalar(
        select(EventData.id)
        .where(
            EventData.station_id == station_id,
            EventData.ocpp_message_id == ocpp_message_id,
            EventData.generated_at == generated_at,
            EventData.seq_no == seq_no,
        )
        .limit(1)
    )
    if duplicate is not None:
        return []
    session.add_all(
        _event_row(station_id, ocpp_message_id, generated_at, seq_no, tbc, index, item, received_at)
        for index, item in enumerate(payload["eventData"])
    )

    gaps: list[Gap] = []
    if seq_no == 0 and sequence.report_open:
        # A new report began while the previous one still said "to be continued".
        gaps.append(Gap(station_id, sequence.expected_seq_no, 0))
    elif seq_no > sequence.expected_seq_no:
        gaps.append(Gap(station_id, sequence.expected_seq_no, seq_no))
    sequence.expected_seq_no = seq_no + 1 if tbc else 0
    sequence.report_open = tbc
    sequence.last_generated_at = generated_at
    sequence.updated_at = received_at
    for gap in gaps:
        session.add(
            EventGap(
                station_id=station_id,
                expected_seq_no=gap.expected_seq_no,
                received_seq_no=gap.received_seq_no,
                generated_at=generated_at,
                detected_at=received_at,
            )
        )
    return gaps


async def _locked_sequence(
    session: AsyncSession, station_id: str, generated_at: datetime, received_at: datetime
) -> EventSequence:
    await session.execute(
        insert(session, EventSequence)
        .values(
            station_id=station_id,
            expected_seq_no=0,
            report_open=False,
            last_generated_at=generated_at,
            updated_at=received_at,
        )
        .on_conflict_do_nothing(index_elements=["station_id"])
    )
    sequence = (
        await session.scalars(
            select(EventSequence)
            .where(EventSequence.station_id == station_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    return sequence


def _event_row(
    station_id: str,
    ocpp_message_id: str,
    generated_at: datetime,
    seq_no: int,
    tbc: bool,
    index: int,
    item: dict[str, Any],
    received_at: datetime,
) -> EventData:
    return EventData(
        station_id=station_id,
        ocpp_message_id=ocpp_message_id,
        generated_at=generated_at,
        seq_no=seq_no,
        tbc=tbc,
        item_index=index,
        event_id=int(item["eventId"]),
        occurred_at=parse_datetime(item["timestamp"]),
        trigger=item["trigger"],
        cause=_optional_int(item.get("cause")),
        actual_value=item["actualValue"],
        tech_code=item.get("techCode"),
        tech_info=item.get("techInfo"),
        cleared=item.get("cleared"),
        transaction_id=item.get("transactionId"),
        variable_monitoring_id=_optional_int(item.get("variableMonitoringId")),
        event_notification_type=item["eventNotificationType"],
        component=item["component"],
        variable=item["variable"],
        received_at=received_at,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


async def close_unfinished_reports(
    session: AsyncSession, *, idle_since: datetime, now: datetime
) -> list[Gap]:
    """Record as gaps the reports still open (tbc) with nothing received since `idle_since`."""
    stale = (
        await session.scalars(
            select(EventSequence)
            .where(EventSequence.report_open.is_(True), EventSequence.updated_at < idle_since)
            .with_for_update(skip_locked=True)
        )
    ).all()
    gaps = [Gap(sequence.station_id, sequence.expected_seq_no, None) for sequence in stale]
    for sequence in stale:
        session.add(
            EventGap(
                station_id=sequence.station_id,
                expected_seq_no=sequence.expected_seq_no,
                received_seq_no=None,
                generated_at=sequence.last_generated_at,
                detected_at=now,
            )
        )
    if stale:
        await session.execute(
            update(EventSequence)
            .where(EventSequence.station_id.in_([s.station_id for s in stale]))
            .values(report_open=False, expected_seq_no=0, updated_at=now)
        )
    return gaps
