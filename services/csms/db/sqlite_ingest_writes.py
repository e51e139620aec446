"""The events worker's hot-path writes on SQLite (standalone mode): a batch of StatusNotifications
or NotifyEvents is one transaction, run by a child process on a connection of its own
(sqlite_child_writer.py). The batch goes there as plain tuples, which pickle in a tenth of the
time of the report objects.

The rules are those of statuses.py and events.py, which run the same statements through the
engine (Postgres, or an in-memory SQLite database); the NotifyEvent sequence logic is shared
(`plan_notify_events`). Through the engine, standalone ingest spent about half of the process's
CPU in SQLAlchemy's statement processing and the driver's thread hand-offs.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.events import (
    Gap,
    NotifyEventReport,
    StationSequence,
    StoredKey,
    new_sequence_rows,
    plan_notify_events,
)
from csms.db.sqlite_child_writer import SqliteChildWriter
from csms.db.sqlite_writer import utc_from_text, utc_text
from csms.db.statuses import StatusReport, newest_per_connector
from csms.db.types import json_text

_STATUS_HISTORY = """
INSERT INTO status_notification
    (station_id, evse_id, connector_id, status, status_at, received_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, evse_id, connector_id, status_at, status) DO NOTHING
"""

# Timestamps are stored as fixed-width text, so text order is time order.
_CURRENT_STATUS = """
INSERT INTO connector_status (station_id, evse_id, connector_id, status, status_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (station_id, evse_id, connector_id) DO UPDATE
SET status = excluded.status, status_at = excluded.status_at, updated_at = excluded.updated_at
WHERE connector_status.status_at <= excluded.status_at
"""

_NEW_SEQUENCE = """
INSERT INTO event_sequence
    (station_id, expected_seq_no, report_open, last_generated_at, updated_at)
VALUES (:station_id, :expected_seq_no, :report_open, :last_generated_at, :updated_at)
ON CONFLICT (station_id) DO NOTHING
"""

_SEQUENCE = """
SELECT station_id, expected_seq_no, report_open, last_generated_at, updated_at
FROM event_sequence WHERE station_id = ?
"""

_STORED_KEYS = """
SELECT DISTINCT generated_at, seq_no FROM event_data WHERE station_id = ? AND ocpp_message_id = ?
"""

_ADVANCE_SEQUENCE = """
UPDATE event_sequence
SET expected_seq_no = ?, report_open = ?, last_generated_at = ?, updated_at = ?
WHERE station_id = ?
"""


class SqliteIngestWrites:
    def __init__(self, engine: AsyncEngine) -> None:
        self._writer = SqliteChildWriter(engine)

    async def start(self) -> None:
        await self._writer.start()

    async def record_statuses(self, reports: list[StatusReport]) -> None:
        """As statuses.record_statuses, in a transaction of its own."""
        history = [_status_fields(report) for report in reports]
        current = [_status_fields(report) for report in newest_per_connector(reports)]
        await self._writer.transaction(_write_statuses, history, current)

    async def record_notify_events(self, reports: list[NotifyEventReport]) -> list[Gap]:
        """As events.record_notify_events, in a transaction of its own; returns new gaps."""
        fields = [
            (r.station_id, r.ocpp_message_id, r.payload, r.generated_at, r.received_at)
            for r in reports
        ]
        gaps: list[tuple[str, int, int | None]] = await self._writer.transaction(
            _write_notify_events, fields
        )
        return [Gap(*gap) for gap in gaps]

    async def close(self) -> None:
        await self._writer.close()


StatusFields = tuple[str, int, int, str, datetime, datetime]


def _status_fields(report: StatusReport) -> StatusFields:
    return (
        report.station_id,
        report.evse_id,
        report.connector_id,
        report.status,
        report.status_at,
        report.received_at,
    )


def _write_statuses(
    connection: sqlite3.Connection, history: list[StatusFields], current: list[StatusFields]
) -> None:
    connection.executemany(_STATUS_HISTORY, [_status_row(fields) for fields in history])
    connection.executemany(_CURRENT_STATUS, [_status_row(fields) for fields in current])


def _status_row(fields: StatusFields) -> tuple[Any, ...]:
    # As status_notification's and connector_status's columns (received_at is updated_at).
    station_id, evse_id, connector_id, status, status_at, received_at = fields
    return (station_id, evse_id, connector_id, status, utc_text(status_at), utc_text(received_at))


def _write_notify_events(
    connection: sqlite3.Connection,
    fields: list[tuple[str, str, dict[str, Any], datetime, datetime]],
) -> list[tuple[str, int, int | None]]:
    reports = [NotifyEventReport(*report) for report in fields]
    new_rows = new_sequence_rows(reports)
    connection.executemany(_NEW_SEQUENCE, [_values(row) for row in new_rows])
    # The transaction holds SQLite's write lock: no other writer can move these.
    sequences = {
        row["station_id"]: _sequence(connection.execute(_SEQUENCE, (row["station_id"],)))
        for row in new_rows
    }
    writes = plan_notify_events(reports, sequences, _stored_keys(connection, reports))
    _insert_all(connection, "event_data", writes.event_rows)
    _insert_all(connection, "event_gap", writes.gap_rows)
    connection.executemany(
        _ADVANCE_SEQUENCE,
        [
            (
                s.expected_seq_no,
                s.report_open,
                utc_text(s.last_generated_at),
                utc_text(s.updated_at),
                s.station_id,
            )
            for s in writes.sequences
        ],
    )
    return [(g.station_id, g.expected_seq_no, g.received_seq_no) for g in writes.gaps]


def _sequence(cursor: sqlite3.Cursor) -> StationSequence:
    station_id, expected, report_open, generated_at, updated_at = cursor.fetchone()
    return StationSequence(
        station_id,
        expected,
        bool(report_open),
        utc_from_text(generated_at),
        utc_from_text(updated_at),
    )


def _stored_keys(
    connection: sqlite3.Connection, reports: list[NotifyEventReport]
) -> set[StoredKey]:
    keys: set[StoredKey] = set()
    for station_id, message_id in {(r.station_id, r.ocpp_message_id) for r in reports}:
        for generated_at, seq_no in connection.execute(_STORED_KEYS, (station_id, message_id)):
            keys.add((station_id, message_id, utc_from_text(generated_at), seq_no))
    return keys


def _value(value: Any) -> Any:
    """A value as the engine's column types store it on SQLite."""
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, dict):
        return json_text(value)
    return value


def _values(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _value(value) for name, value in row.items()}


def _insert_all(connection: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Rows that share their keys (the table's columns), in one executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    # Names from this module and events.py, never from input.
    names, marks = ", ".join(columns), ", ".join("?" * len(columns))
    statement = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
    connection.executemany(statement, [tuple(_value(row[c]) for c in columns) for row in rows])
