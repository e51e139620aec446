"""Boots and presence on SQLite (standalone mode): a batch is one transaction in one hand-off
to a connection of the writes' own (sqlite_writer.py), as sqlite_ingest_writes.py does for
statuses and NotifyEvents (ADR 0021).

The statements are those of boots.py and presence.py, run one by one in the same order, and
the decisions are shared (`plan_boots`, `newest_connections`, `replaced_by`, ...). The
transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE): what it reads cannot
change before it commits, as the rows Postgres locks cannot.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.boots import (
    BootDecision,
    BootKey,
    BootPolicy,
    BootReport,
    Registration,
    boot_keys,
    boots_seen,
    first_contacts,
    newest_boots,
    plan_boots,
)
from csms.db.presence import (
    BeforeCommit,
    Connection,
    CurrentConnection,
    Disconnection,
    PresenceBatch,
    RecordedConnections,
    Registrations,
    in_disconnection_order,
    last_seen,
    new_stations,
    newest_connections,
    replaced_by,
)
from csms.db.sqlite_writer import SqliteWriter, utc_from_text, utc_text

_NEW_STATION = """
INSERT INTO station (id, connected, created_at) VALUES (?, 0, ?) ON CONFLICT (id) DO NOTHING
"""

_REGISTRATION = "SELECT registration_status, heartbeat_interval FROM station WHERE id = ?"

_EARLIER_DECISION = """
SELECT status, interval FROM boot_notification
WHERE station_id = ? AND connection_id = ? AND ocpp_message_id = ?
"""

# Named as plan_boots names boot_notification's columns.
_INSERT_BOOT = """
INSERT INTO boot_notification (
    station_id, connection_id, ocpp_message_id, reason, status, interval, received_at,
    vendor_name, model, serial_number, firmware_version, modem_iccid, modem_imsi
) VALUES (
    :station_id, :connection_id, :ocpp_message_id, :reason, :status, :interval, :received_at,
    :vendor_name, :model, :serial_number, :firmware_version, :modem_iccid, :modem_imsi
)
"""

# Timestamps are stored as fixed-width text, so text order is time order.
_BOOT_DATA = """
UPDATE station
SET boot_status = :status, last_boot_at = :received_at, vendor_name = :vendor_name,
    model = :model, serial_number = :serial_number, firmware_version = :firmware_version,
    modem_iccid = :modem_iccid, modem_imsi = :modem_imsi
WHERE id = :station_id AND (last_boot_at IS NULL OR last_boot_at <= :received_at)
"""

_CLOSE_RESETS = """
UPDATE command SET open = 0, closed_at = :received_at
WHERE station_id = :station_id AND action = 'Reset' AND open = 1 AND created_at <= :received_at
"""

_TOUCH_LAST_SEEN = """
UPDATE station SET last_seen_at = :at
WHERE id = :id AND (last_seen_at IS NULL OR last_seen_at < :at)
"""

_HEARD = """
INSERT INTO gateway (id, last_beat_at) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET last_beat_at = excluded.last_beat_at
WHERE gateway.last_beat_at < excluded.last_beat_at
"""

_CONNECT = """
INSERT INTO station_connection (id, station_id, gateway_id, connected_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET connected_at = excluded.connected_at
"""

_CLOSED = "SELECT 1 FROM station_connection WHERE id = ? AND disconnected_at IS NOT NULL"

# A connecting station's registration, and its current connection if open.
_CONNECTING = """
SELECT s.boot_status, s.security_profile, s.connection_id, s.connected_at, held.gateway_id
FROM station AS s
LEFT JOIN station_connection AS held ON s.connected AND held.id = s.connection_id
WHERE s.id = ?
"""

# Only a connection newer than the current one becomes current.
_MAKE_CURRENT = """
UPDATE station SET connected = 1, connection_id = :connection_id, connected_at = :connected_at
WHERE id = :station_id AND (connected_at IS NULL OR connected_at <= :connected_at)
"""

_DISCONNECT = """
INSERT INTO station_connection (id, station_id, gateway_id, disconnected_at) VALUES (?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET disconnected_at = excluded.disconnected_at
"""

# A station goes offline only if the closed connection was its current one.
_GONE = "UPDATE station SET connected = 0 WHERE id = ? AND connection_id = ?"


class SqliteRegistrationWrites:
    def __init__(self, engine: AsyncEngine) -> None:
        self._writer = SqliteWriter(engine, "registration")

    async def record_boots(
        self, reports: list[BootReport], policy: BootPolicy
    ) -> list[BootDecision]:
        """As boots.record_boots, in a transaction of its own."""
        if not reports:
            return []
        return await self._writer.transaction(
            lambda connection: _record_boots(connection, reports, policy)
        )

    async def record_presence(
        self, batch: PresenceBatch, before_commit: BeforeCommit
    ) -> Registrations:
        """As presence.record_presence, in a transaction of its own; `before_commit` runs on
        the event loop while the writer's thread waits to commit."""
        if batch.empty:
            return {}
        loop = asyncio.get_running_loop()

        def write(connection: sqlite3.Connection) -> Registrations:
            recorded = _record_presence(connection, batch)
            if recorded.replaced:
                # An error there rolls the transaction back (SqliteWriter).
                asyncio.run_coroutine_threadsafe(before_commit(recorded.replaced), loop).result()
            return recorded.registrations

        return await self._writer.transaction(write)

    async def close(self) -> None:
        await self._writer.close()


def _record_boots(
    connection: sqlite3.Connection, reports: list[BootReport], policy: BootPolicy
) -> list[BootDecision]:
    contacts = first_contacts(reports)
    connection.executemany(_NEW_STATION, [(station, utc_text(at)) for station, at in contacts])
    stations = {
        station: Registration(*connection.execute(_REGISTRATION, (station,)).fetchone())
        for station, _ in contacts
    }
    decided: dict[BootKey, BootDecision] = {}
    for key in boot_keys(reports):
        row = connection.execute(_EARLIER_DECISION, key).fetchone()
        if row is not None:
            decided[key] = BootDecision(*row)
    writes = plan_boots(reports, stations, decided, policy)
    boots = [_values(boot) for boot in writes.boots]
    connection.executemany(_INSERT_BOOT, boots)
    connection.executemany(_BOOT_DATA, [_values(boot) for boot in newest_boots(writes.boots)])
    _touch_last_seen(connection, boots_seen(writes.boots))
    # Boot by boot, in batch order, as boots.py.
    connection.executemany(_CLOSE_RESETS, boots)
    return writes.decisions


def _record_presence(connection: sqlite3.Connection, batch: PresenceBatch) -> RecordedConnections:
    # Gateway rows first, in id order, as in every presence transaction (presence.py).
    connection.executemany(
        _HEARD, [(gateway, utc_text(at)) for gateway, at in sorted(batch.heard.items())]
    )
    connection.executemany(
        _NEW_STATION, [(station, utc_text(at)) for station, at in new_stations(batch)]
    )
    recorded = _connect(connection, batch.connections)
    _disconnect(connection, batch.disconnections)
    _touch_last_seen(connection, last_seen(batch))
    return recorded


def _connect(connection: sqlite3.Connection, connections: list[Connection]) -> RecordedConnections:
    connection.executemany(
        _CONNECT,
        [
            (c.connection_id, c.station_id, c.gateway_id, utc_text(c.connected_at))
            for c in connections
        ],
    )
    closed = {
        c.connection_id
        for c in connections
        if connection.execute(_CLOSED, (c.connection_id,)).fetchone() is not None
    }
    registrations: Registrations = {}
    current: list[CurrentConnection] = []
    for station in sorted({c.station_id for c in connections}):
        boot_status, profile, connection_id, connected_at, gateway_id = connection.execute(
            _CONNECTING, (station,)
        ).fetchone()
        registrations[station] = (boot_status, profile)
        if gateway_id is not None:
            at = None if connected_at is None else utc_from_text(connected_at)
            current.append(CurrentConnection(station, connection_id, at, gateway_id))
    newest = newest_connections(c for c in connections if c.connection_id not in closed)
    connection.executemany(
        _MAKE_CURRENT,
        [
            {
                "station_id": c.station_id,
                "connection_id": c.connection_id,
                "connected_at": utc_text(c.connected_at),
            }
            for _, c in sorted(newest.items())
        ],
    )
    return RecordedConnections(registrations, replaced_by(newest, current))


def _disconnect(connection: sqlite3.Connection, disconnections: list[Disconnection]) -> None:
    ordered = in_disconnection_order(disconnections)
    connection.executemany(
        _DISCONNECT,
        [
            (d.connection_id, d.station_id, d.gateway_id, utc_text(d.disconnected_at))
            for d in ordered
        ],
    )
    connection.executemany(_GONE, [(d.station_id, d.connection_id) for d in ordered])


def _touch_last_seen(connection: sqlite3.Connection, seen: dict[str, datetime]) -> None:
    """Last-seen times only move forward."""
    connection.executemany(
        _TOUCH_LAST_SEEN,
        [{"id": station, "at": utc_text(seen[station])} for station in sorted(seen)],
    )


def _values(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values as the engine's column types store them on SQLite."""
    return {
        name: utc_text(value) if isinstance(value, datetime) else value
        for name, value in row.items()
    }
