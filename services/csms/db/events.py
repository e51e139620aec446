"""NotifyEvent storage and per-station sequence tracking (gap detection).

A report starts at seqNo 0 and continues while `tbc` is true. Messages of one station are
handled in publish order (a single active consumer) and under a row lock on the station's
sequence, so a jump in seqNo is a real gap; a repeated message is recognised and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import EventData, EventGap, EventSequence, table_of
from csms.timeutil import parse_datetime


@dataclass(frozen=True, slots=True)
class Gap:
    station_id: str
    expected_seq_no: int
    received_seq_no: int | None


@dataclass(frozen=True, slots=True)
class NotifyEventReport:
    """One NotifyEventRequest as received."""

    station_id: str
    ocpp_message_id: str
    payload: dict[str, Any]
    generated_at: datetime
    received_at: datetime


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
    report = NotifyEventReport(station_id, ocpp_message_id, payload, generated_at, received_at)
    return await record_notify_events(session, [report])


async def record_notify_events(
    session: AsyncSession, reports: list[NotifyEventReport]
) -> list[Gap]:
    """A batch, in order, in a handful of statements whatever its size; returns new gaps.

    Core statements, executemany of cached ones: ORM objects per event item cost more than
    the database's own work on them."""
    if not reports:
        return []
    sequences = await _locked_sequences(session, reports)
    writes = plan_notify_events(reports, sequences, await _stored_keys(session, reports))
    connection = await session.connection()
    if writes.event_rows:
        await connection.execute(table_of(EventData).insert(), writes.event_rows)
    if writes.gap_rows:
        await connection.execute(table_of(EventGap).insert(), writes.gap_rows)
    if writes.sequences:
        await connection.execute(
            _UPDATE_SEQUENCE,
            [
                {
                    "sid": s.station_id,
                    "expected": s.expected_seq_no,
                    "open": s.report_open,
                    "generated": s.last_generated_at,
                    "updated": s.updated_at,
                }
                for s in writes.sequences
            ],
        )
    return writes.gaps


@dataclass(slots=True)
class StationSequence:
    """A station's EventSequence row, as read under its lock and advanced by a batch."""

    station_id: str
    expected_seq_no: int
    report_open: bool
    last_generated_at: datetime
    updated_at: datetime
    changed: bool = False


# What identifies a NotifyEvent message among those stored.
StoredKey = tuple[str, str, datetime, int]


@dataclass(frozen=True, slots=True)
class NotifyEventWrites:
    """What a batch stores: its event items, its gaps, and the sequences it advanced."""

    event_rows: list[dict[str, Any]]
    gap_rows: list[dict[str, Any]]
    gaps: list[Gap]
    sequences: list[StationSequence]


def new_sequence_rows(reports: list[NotifyEventReport]) -> list[dict[str, Any]]:
    """EventSequence rows for the batch's stations, to insert where none exists yet; in id
    order, the order in which they are locked, so that concurrent batches cannot deadlock."""
    first = {report.station_id: report for report in reversed(reports)}
    return [
        {
            "station_id": station_id,
            "expected_seq_no": 0,
            "report_open": False,
            "last_generated_at": report.generated_at,
            "updated_at": report.received_at,
        }
        for station_id, report in sorted(first.items())
    ]


def plan_notify_events(
    reports: list[NotifyEventReport],
    sequences: dict[str, StationSequence],
    stored: set[StoredKey],
) -> NotifyEventWrites:
    """The writes of a batch, given its stations' sequences (advanced in place) and the keys
    of its messages already stored."""
    seen = set(stored)
    rows: list[dict[str, Any]] = []
    gap_rows: list[dict[str, Any]] = []
    gaps: list[Gap] = []
    for report in reports:
        seq_no = int(report.payload["seqNo"])
        key = (report.station_id, report.ocpp_message_id, report.generated_at, seq_no)
        if key in seen:
            continue  # redelivered or retransmitted: changes nothing twice
        seen.add(key)
        tbc = bool(report.payload.get("tbc", False))
        rows.extend(
            _event_row(report, seq_no, tbc, index, item)
            for index, item in enumerate(report.payload["eventData"])
        )
        sequence = sequences[report.station_id]
        gap = _gap(sequence, report.station_id, seq_no)
        if gap is not None:
            gaps.append(gap)
            gap_rows.append(
                {
                    "station_id": gap.station_id,
                    "expected_seq_no": gap.expected_seq_no,
                    "received_seq_no": gap.received_seq_no,
                    "generated_at": report.generated_at,
                    "detected_at": report.received_at,
                }
            )
        sequence.expected_seq_no = seq_no + 1 if tbc else 0
        sequence.report_open = tbc
        sequence.last_generated_at = report.generated_at
        sequence.updated_at = report.received_at
        sequence.changed = True
    changed = [s for s in sequences.values() if s.changed]
    return NotifyEventWrites(rows, gap_rows, gaps, changed)


def _update_sequence() -> Any:
    table = table_of(EventSequence)
    return (
        update(table)
        .where(table.c.station_id == bindparam("sid"))
        .values(
            expected_seq_no=bindparam("expected"),
            report_open=bindparam("open"),
            last_generated_at=bindparam("generated"),
            updated_at=bindparam("updated"),
        )
    )


_UPDATE_SEQUENCE = _update_sequence()


def _gap(sequence: StationSequence, station_id: str, seq_no: int) -> Gap | None:
    if seq_no == 0 and sequence.report_open:
        # A new report began while the previous one still said "to be continued".
        return Gap(station_id, sequence.expected_seq_no, 0)
    if seq_no > sequence.expected_seq_no:
        return Gap(station_id, sequence.expected_seq_no, seq_no)
    return None


async def _locked_sequences(
    session: AsyncSession, reports: list[NotifyEventReport]
) -> dict[str, StationSequence]:
    new_rows = new_sequence_rows(reports)
    await session.execute(
        insert(session, EventSequence).on_conflict_do_nothing(index_elements=["station_id"]),
        new_rows,
    )
    table = table_of(EventSequence)
    connection = await session.connection()
    rows = await connection.execute(
        select(
            table.c.station_id,
            table.c.expected_seq_no,
            table.c.report_open,
            table.c.last_generated_at,
            table.c.updated_at,
        )
        .where(table.c.station_id.in_([row["station_id"] for row in new_rows]))
        .order_by(table.c.station_id)
        .with_for_update()
    )
    return {row[0]: StationSequence(*row) for row in rows}


async def _stored_keys(session: AsyncSession, reports: list[NotifyEventReport]) -> set[StoredKey]:
    pairs = sorted({(report.station_id, report.ocpp_message_id) for report in reports})
    stored = await session.execute(
        select(
            EventData.station_id,
            EventData.ocpp_message_id,
            EventData.generated_at,
            EventData.seq_no,
        )
        .where(tuple_(EventData.station_id, EventData.ocpp_message_id).in_(pairs))
        .distinct()
    )
    return {(row[0], row[1], row[2], row[3]) for row in stored}


def _event_row(
    report: NotifyEventReport, seq_no: int, tbc: bool, index: int, item: dict[str, Any]
) -> dict[str, Any]:
    return {
        "station_id": report.station_id,
        "ocpp_message_id": report.ocpp_message_id,
        "generated_at": report.generated_at,
        "seq_no": seq_no,
        "tbc": tbc,
        "item_index": index,
        "event_id": int(item["eventId"]),
        "occurred_at": parse_datetime(item["timestamp"]),
        "trigger": item["trigger"],
        "cause": _optional_int(item.get("cause")),
        "actual_value": item["actualValue"],
        "tech_code": item.get("techCode"),
        "tech_info": item.get("techInfo"),
        "cleared": item.get("cleared"),
        "transaction_id": item.get("transactionId"),
        "variable_monitoring_id": _optional_int(item.get("variableMonitoringId")),
        "event_notification_type": item["eventNotificationType"],
        "component": item["component"],
        "variable": item["variable"],
        "received_at": report.received_at,
    }


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
