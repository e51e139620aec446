"""Boots and presence on Postgres, sent to the driver directly (postgres_driver.py) with whole
batches as arrays, a transaction per batch (ADR 0021). Through the engine, SQLAlchemy's
statement compilation and parameter processing was about 40% of the worker's CPU in a boot
storm. The rules are those of boots.py and presence.py, whose decisions are shared
(`plan_boots`, `newest_boots`, `newest_connections`, `replaced_by`, ...).

Row locks follow the engine path's order: gateways, then stations in id order. The batch's
station rows are locked before any update, so the set-based updates below (whose row order is
the planner's) cannot deadlock with other batches.

Every statement that joins the batch's arrays to a table also names the batch's keys with
`= ANY(...)`: without it, Postgres joined with a hash over a scan of the whole table (station,
command), so that each batch cost as much as the table was large.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.boots import (
    BOOT_FIELDS,
    BootDecision,
    BootPolicy,
    BootReport,
    Registration,
    boot_keys,
    boots_seen,
    first_contacts,
    newest_boots,
    plan_boots,
)
from csms.db.postgres_driver import INDEX_PLANS, on_driver
from csms.db.presence import (
    BeforeCommit,
    Connection,
    CurrentConnection,
    PresenceBatch,
    RecordedConnections,
    Registrations,
    in_disconnection_order,
    last_seen,
    new_stations,
    newest_connections,
    replaced_by,
)

_NEW_STATIONS = """
INSERT INTO station (id, connected, created_at)
SELECT id, false, created_at FROM unnest($1::varchar[], $2::timestamptz[]) AS n(id, created_at)
ON CONFLICT (id) DO NOTHING
"""

# Locked in id order (as boots.py), against concurrent batches and command answers.
_LOCK_BOOTING = """
SELECT id, registration_status, heartbeat_interval FROM station
WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE
"""

# Read once the stations are locked: a concurrent batch's boot of the same key is then seen.
_EARLIER_DECISIONS = """
SELECT b.station_id, b.connection_id, b.ocpp_message_id, b.status, b."interval"
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[])
    AS k(station_id, connection_id, ocpp_message_id)
JOIN boot_notification AS b USING (station_id, connection_id, ocpp_message_id)
"""

# boot_notification's columns as plan_boots names them, in the order of _RECORD_BOOTS.
_BOOT_COLUMNS = (
    "station_id",
    "connection_id",
    "ocpp_message_id",
    "reason",
    "status",
    "interval",
    "received_at",
    *BOOT_FIELDS,
)
# The station's, from its newest boot.
_STATION_BOOT_COLUMNS = ("station_id", "status", "received_at", *BOOT_FIELDS)

# The boots, the resets they complete, and each station's newest boot data, in one statement.
# Resets close as boots.py closes them boot by boot in batch order: each at the first boot of
# the batch at or after its creation.
_RECORD_BOOTS = """
WITH boots AS (
    INSERT INTO boot_notification (
        station_id, connection_id, ocpp_message_id, reason, status, "interval", received_at,
        vendor_name, model, serial_number, firmware_version, modem_iccid, modem_imsi
    )
    SELECT * FROM unnest(
        $1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::int[],
        $7::timestamptz[], $8::varchar[], $9::varchar[], $10::varchar[], $11::varchar[],
        $12::varchar[], $13::varchar[]
    )
),
closing AS (
    SELECT DISTINCT ON (c.id) c.id, b.received_at
    FROM unnest($1::varchar[], $7::timestamptz[]) WITH ORDINALITY AS b(station_id, received_at, n)
    JOIN command AS c ON c.station_id = b.station_id AND c.created_at <= b.received_at
    WHERE c.station_id = ANY($1::varchar[]) AND c.action = 'Reset' AND c.open
    ORDER BY c.id, b.n
),
closed AS (
    UPDATE command AS c SET open = false, closed_at = closing.received_at
    FROM closing WHERE c.station_id = ANY($1::varchar[]) AND c.id = closing.id
)
UPDATE station AS s
SET boot_status = n.status, last_boot_at = n.received_at, vendor_name = n.vendor_name,
    model = n.model, serial_number = n.serial_number, firmware_version = n.firmware_version,
    modem_iccid = n.modem_iccid, modem_imsi = n.modem_imsi
FROM unnest(
    $14::varchar[], $15::varchar[], $16::timestamptz[], $17::varchar[], $18::varchar[],
    $19::varchar[], $20::varchar[], $21::varchar[], $22::varchar[]
) AS n(station_id, status, received_at, vendor_name, model, serial_number, firmware_version,
    modem_iccid, modem_imsi)
WHERE s.id = ANY($14::varchar[]) AND s.id = n.station_id
    AND (s.last_boot_at IS NULL OR s.last_boot_at <= n.received_at)
"""

_TOUCH_LAST_SEEN = """
UPDATE station AS s SET last_seen_at = t.seen_at
FROM unnest($1::varchar[], $2::timestamptz[]) AS t(id, seen_at)
WHERE s.id = ANY($1::varchar[]) AND s.id = t.id
    AND (s.last_seen_at IS NULL OR s.last_seen_at < t.seen_at)
"""

# Gateway rows first, in id order, as in every presence transaction (presence.py).
_HEARD = """
INSERT INTO gateway AS g (id, last_beat_at)
SELECT * FROM unnest($1::varchar[], $2::timestamptz[])
ON CONFLICT (id) DO UPDATE SET last_beat_at = excluded.last_beat_at
WHERE g.last_beat_at < excluded.last_beat_at
"""

# The lock the updates below take anyway (their row order is the planner's), taken in id order.
_LOCK_STATIONS = """
SELECT id FROM station WHERE id = ANY($1::varchar[]) ORDER BY id FOR NO KEY UPDATE
"""

# The connections, recorded, each with whether it is closed already (its disconnection came
# first), its station's registration and the station's current connection if open. (The
# upsert changes no current connection's gateway: the join may read from before it.)
_CONNECT = """
WITH recorded AS (
    INSERT INTO station_connection AS c (id, station_id, gateway_id, connected_at)
    SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::timestamptz[])
    ON CONFLICT (id) DO UPDATE SET connected_at = excluded.connected_at
    RETURNING c.id, c.station_id, c.disconnected_at IS NOT NULL AS closed
)
SELECT r.id, r.closed, s.id, s.boot_status, s.security_profile, s.connection_id,
    s.connected_at, held.gateway_id
FROM recorded AS r
JOIN station AS s ON s.id = r.station_id AND s.id = ANY($2::varchar[])
LEFT JOIN station_connection AS held ON s.connected AND held.id = s.connection_id
"""

# Only a connection newer than the current one becomes current.
_MAKE_CURRENT = """
UPDATE station AS s
SET connected = true, connection_id = n.connection_id, connected_at = n.connected_at
FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[])
    AS n(station_id, connection_id, connected_at)
WHERE s.id = ANY($1::varchar[]) AND s.id = n.station_id
    AND (s.connected_at IS NULL OR s.connected_at <= n.connected_at)
"""

# A station goes offline only if the closed connection was its current one.
_DISCONNECT = """
WITH recorded AS (
    INSERT INTO station_connection AS c (id, station_id, gateway_id, disconnected_at)
    SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::timestamptz[])
    ON CONFLICT (id) DO UPDATE SET disconnected_at = excluded.disconnected_at
)
UPDATE station AS s SET connected = false
FROM unnest($2::varchar[], $1::varchar[]) AS d(station_id, connection_id)
WHERE s.id = ANY($2::varchar[]) AND s.id = d.station_id AND s.connection_id = d.connection_id
"""

# A connection's row as upserted: id, station, gateway, time.
_ConnectionRow = tuple[str, str, str, datetime]


class PostgresRegistrationWrites:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record_boots(
        self, reports: list[BootReport], policy: BootPolicy
    ) -> list[BootDecision]:
        """As boots.record_boots, in a transaction of its own."""
        if not reports:
            return []
        contacts = first_contacts(reports)

        async def write(driver: asyncpg.Connection) -> list[BootDecision]:
            async with driver.transaction():
                await driver.execute(INDEX_PLANS)
                await driver.execute(_NEW_STATIONS, *_columns(contacts))
                locked = await driver.fetch(_LOCK_BOOTING, [station for station, _ in contacts])
                earlier = await driver.fetch(_EARLIER_DECISIONS, *_columns(boot_keys(reports)))
                writes = plan_boots(
                    reports,
                    {row[0]: Registration(row[1], row[2]) for row in locked},
                    {(row[0], row[1], row[2]): BootDecision(row[3], row[4]) for row in earlier},
                    policy,
                )
                if writes.boots:
                    await driver.execute(
                        _RECORD_BOOTS,
                        *_arrays(writes.boots, _BOOT_COLUMNS),
                        *_arrays(newest_boots(writes.boots), _STATION_BOOT_COLUMNS),
                    )
                    await _touch_last_seen(driver, boots_seen(writes.boots))
                return writes.decisions

        return await on_driver(self._engine, write)

    async def record_presence(
        self, batch: PresenceBatch, before_commit: BeforeCommit
    ) -> Registrations:
        """As presence.record_presence, in a transaction of its own."""
        if batch.empty:
            return {}
        created = new_stations(batch)
        stations = sorted({station for station, _ in created} | batch.seen.keys())

        async def write(driver: asyncpg.Connection) -> Registrations:
            async with driver.transaction():
                await driver.execute(INDEX_PLANS)
                if batch.heard:
                    await driver.execute(_HEARD, *_columns(sorted(batch.heard.items())))
                if created:
                    await driver.execute(_NEW_STATIONS, *_columns(created))
                if stations:
                    await driver.execute(_LOCK_STATIONS, stations)
                recorded = await _connect(driver, batch.connections)
                await _disconnect(driver, batch)
                await _touch_last_seen(driver, last_seen(batch))
                if recorded.replaced:
                    await before_commit(recorded.replaced)
                return recorded.registrations

        return await on_driver(self._engine, write)

    async def close(self) -> None:
        """Nothing of its own to close: connections are the engine's."""


async def _connect(
    driver: asyncpg.Connection, connections: list[Connection]
) -> RecordedConnections:
    if not connections:
        return RecordedConnections({}, [])
    rows = _one_per_connection(
        [(c.connection_id, c.station_id, c.gateway_id, c.connected_at) for c in connections]
    )
    recorded = await driver.fetch(_CONNECT, *_columns(rows))
    closed = {row[0] for row in recorded if row[1]}
    current = {
        row[2]: CurrentConnection(row[2], row[5], row[6], row[7])
        for row in recorded
        if row[7] is not None
    }
    newest = newest_connections(c for c in connections if c.connection_id not in closed)
    if newest:
        made_current = [
            (c.station_id, c.connection_id, c.connected_at) for _, c in sorted(newest.items())
        ]
        await driver.execute(_MAKE_CURRENT, *_columns(made_current))
    return RecordedConnections(
        {row[2]: (row[3], row[4]) for row in recorded}, replaced_by(newest, current.values())
    )


async def _disconnect(driver: asyncpg.Connection, batch: PresenceBatch) -> None:
    if not batch.disconnections:
        return
    rows = _one_per_connection(
        [
            (d.connection_id, d.station_id, d.gateway_id, d.disconnected_at)
            for d in in_disconnection_order(batch.disconnections)
        ]
    )
    await driver.execute(_DISCONNECT, *_columns(rows))


async def _touch_last_seen(driver: asyncpg.Connection, seen: dict[str, datetime]) -> None:
    """Last-seen times only move forward."""
    if seen:
        await driver.execute(_TOUCH_LAST_SEEN, *_columns(sorted(seen.items())))


def _one_per_connection(rows: list[_ConnectionRow]) -> list[_ConnectionRow]:
    """One row per connection, in id order (an upsert may not touch a row twice), as
    upserting them one by one leaves it: the first row's station and gateway, the last's time."""
    merged: dict[str, _ConnectionRow] = {}
    for connection_id, station_id, gateway_id, at in rows:
        first = merged.get(connection_id, (connection_id, station_id, gateway_id, at))
        merged[connection_id] = (connection_id, first[1], first[2], at)
    return [merged[connection_id] for connection_id in sorted(merged)]


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """One array per column of the rows (which are not empty)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _arrays(rows: list[dict[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    """One array per key, in the order of `names`."""
    return [[row[name] for row in rows] for name in names]
