"""The events worker's writes on Postgres, sent to the driver directly (postgres_driver.py) with
whole batches as arrays. Through the engine, SQLAlchemy's processing of each row's parameters
was most of the worker's CPU per message. The rules are those of statuses.py and events.py,
whose NotifyEvent sequence logic is shared (`plan_notify_events`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.db.engine import engine_of
from csms.db.events import (
    Gap,
    NotifyEventReport,
    StationSequence,
    new_sequence_rows,
    plan_notify_events,
)
from csms.db.postgres_driver import INDEX_PLANS, on_driver
from csms.db.statuses import StatusReport, newest_per_connector
from csms.db.types import json_text

# The history and the current statuses in one statement: one round trip, committed as one.
_RECORD_STATUSES = """
WITH history AS (
    INSERT INTO status_notification
        (station_id, evse_id, connector_id, status, status_at, received_at)
    SELECT * FROM unnest(
        $1::varchar[], $2::int[], $3::int[], $4::varchar[], $5::timestamptz[], $6::timestamptz[]
    )
    ON CONFLICT (station_id, evse_id, connector_id, status_at, status) DO NOTHING
)
INSERT INTO connector_status AS current
    (station_id, evse_id, connector_id, status, status_at, updated_at)
SELECT * FROM unnest(
    $7::varchar[], $8::int[], $9::int[], $10::varchar[], $11::timestamptz[], $12::timestamptz[]
)
ON CONFLICT (station_id, evse_id, connector_id) DO UPDATE
SET status = excluded.status, status_at = excluded.status_at, updated_at = excluded.updated_at
WHERE current.status_at <= excluded.status_at
"""


_NEW_SEQUENCES = """
INSERT INTO event_sequence (station_id, expected_seq_no, report_open, last_generated_at, updated_at)
SELECT * FROM unnest($1::varchar[], $2::int[], $3::bool[], $4::timestamptz[], $5::timestamptz[])
ON CONFLICT (station_id) DO NOTHING
"""

# Locked in id order, as in events.py, so that concurrent batches cannot deadlock.
_LOCK_SEQUENCES = """
SELECT station_id, expected_seq_no, report_open, last_generated_at, updated_at
FROM event_sequence WHERE station_id = ANY($1::varchar[]) ORDER BY station_id FOR UPDATE
"""

_STORED_KEYS = """
SELECT DISTINCT e.station_id, e.ocpp_message_id, e.generated_at, e.seq_no
FROM unnest($1::varchar[], $2::varchar[]) AS k(station_id, ocpp_message_id)
JOIN event_data AS e ON e.station_id = k.station_id AND e.ocpp_message_id = k.ocpp_message_id
"""

# event_data's columns, as events._event_row names them, with their types.
_EVENT_COLUMNS = {
    "station_id": "varchar",
    "ocpp_message_id": "varchar",
    "generated_at": "timestamptz",
    "seq_no": "int",
    "tbc": "bool",
    "item_index": "int",
    "event_id": "int",
    "occurred_at": "timestamptz",
    "trigger": "varchar",
    "cause": "int",
    "actual_value": "text",
    "tech_code": "varchar",
    "tech_info": "varchar",
    "cleared": "bool",
    "transaction_id": "varchar",
    "variable_monitoring_id": "int",
    "event_notification_type": "varchar",
    # JSON goes as text, cast below (see postgres_command_writes.py).
    "component": "text",
    "variable": "text",
    "received_at": "timestamptz",
}
_JSON_COLUMNS = ("component", "variable")

_INSERT_EVENTS = """
INSERT INTO event_data ({names})
SELECT {values}
FROM unnest({arrays}) AS e({names})
""".format(
    names=", ".join(f'"{name}"' for name in _EVENT_COLUMNS),
    values=", ".join(
        f'"{name}"::jsonb' if name in _JSON_COLUMNS else f'"{name}"' for name in _EVENT_COLUMNS
    ),
    arrays=", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_EVENT_COLUMNS.values(), 1)),
)

_INSERT_GAPS = """
INSERT INTO event_gap (station_id, expected_seq_no, received_seq_no, generated_at, detected_at)
SELECT * FROM unnest($1::varchar[], $2::int[], $3::int[], $4::timestamptz[], $5::timestamptz[])
"""

# The keys named with ANY as well: joined to the array alone, Postgres scanned the whole table.
_UPDATE_SEQUENCES = """
UPDATE event_sequence AS s
SET expected_seq_no = u.expected_seq_no, report_open = u.report_open,
    last_generated_at = u.last_generated_at, updated_at = u.updated_at
FROM unnest($1::varchar[], $2::int[], $3::bool[], $4::timestamptz[], $5::timestamptz[])
    AS u(station_id, expected_seq_no, report_open, last_generated_at, updated_at)
WHERE s.station_id = ANY($1::varchar[]) AND s.station_id = u.station_id
"""

_SEQUENCE_COLUMNS = (
    "station_id",
    "expected_seq_no",
    "report_open",
    "last_generated_at",
    "updated_at",
)
# StatusReport's, in the statement's column order.
_STATUS_FIELDS = ("station_id", "evse_id", "connector_id", "status", "status_at", "received_at")
_GAP_COLUMNS = ("station_id", "expected_seq_no", "received_seq_no", "generated_at", "detected_at")


class PostgresIngestWrites:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._engine = engine_of(sessions)

    async def start(self) -> None:
        """Nothing to start: connections are the engine's."""

    async def record_statuses(self, reports: list[StatusReport]) -> None:
        """As statuses.record_statuses, in one statement."""
        if not reports:
            return
        # Rows in key order: concurrent batches then lock shared rows in the same order.
        history = sorted(reports, key=_key)
        current = sorted(newest_per_connector(reports), key=_key)
        arguments = (*_fields(history, _STATUS_FIELDS), *_fields(current, _STATUS_FIELDS))
        await on_driver(self._engine, lambda driver: driver.execute(_RECORD_STATUSES, *arguments))

    async def record_notify_events(self, reports: list[NotifyEventReport]) -> list[Gap]:
        """As events.record_notify_events, in a transaction of its own; returns new gaps."""
        if not reports:
            return []

        async def write(driver: asyncpg.Connection) -> list[Gap]:
            async with driver.transaction():
                await driver.execute(INDEX_PLANS)
                new_rows = new_sequence_rows(reports)
                await driver.execute(_NEW_SEQUENCES, *_arrays(new_rows, _SEQUENCE_COLUMNS))
                locked = await driver.fetch(
                    _LOCK_SEQUENCES, [row["station_id"] for row in new_rows]
                )
                sequences = {row[0]: StationSequence(*row) for row in locked}
                pairs = sorted({(r.station_id, r.ocpp_message_id) for r in reports})
                stored = await driver.fetch(
                    _STORED_KEYS,
                    [station for station, _ in pairs],
                    [message for _, message in pairs],
                )
                writes = plan_notify_events(reports, sequences, {tuple(row) for row in stored})
                if writes.event_rows:
                    await driver.execute(
                        _INSERT_EVENTS, *_arrays(writes.event_rows, _EVENT_COLUMNS)
                    )
                if writes.gap_rows:
                    await driver.execute(_INSERT_GAPS, *_arrays(writes.gap_rows, _GAP_COLUMNS))
                if writes.sequences:
                    advanced = _fields(writes.sequences, _SEQUENCE_COLUMNS)
                    await driver.execute(_UPDATE_SEQUENCES, *advanced)
                return writes.gaps

        return await on_driver(self._engine, write)

    async def close(self) -> None:
        """Nothing of its own to close: connections are the engine's."""


def _arrays(rows: list[dict[str, Any]], columns: Iterable[str]) -> list[list[Any]]:
    """One array per key of the rows, JSON columns as text."""
    return [
        [json_text(row[name]) for row in rows]
        if name in _JSON_COLUMNS
        else [row[name] for row in rows]
        for name in columns
    ]


def _fields(items: Sequence[object], names: Iterable[str]) -> list[list[Any]]:
    """One array per attribute."""
    return [[getattr(item, name) for item in items] for name in names]


def _key(report: StatusReport) -> tuple[str, int, int, object]:
    return (report.station_id, report.evse_id, report.connector_id, report.status_at)
