"""Station presence: connections, gateways' liveness, last-seen times.

Connected and disconnected events may be processed in any order and more than once; each
connection has its own row, so the newest open connection decides, whatever the order.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import Gateway, Station, StationConnection, table_of


async def ensure_station(session: AsyncSession, *, station_id: str, seen_at: datetime) -> None:
    """Create the station row on first contact."""
    await session.execute(
        insert(session, Station)
        .values(id=station_id, connected=False, created_at=seen_at)
        .on_conflict_do_nothing(index_elements=["id"])
    )


@dataclass(frozen=True, slots=True)
class Connection:
    connection_id: str
    station_id: str
    gateway_id: str
    connected_at: datetime


async def record_connected(
    session: AsyncSession,
    *,
    station_id: str,
    connection_id: str,
    gateway_id: str,
    connected_at: datetime,
) -> Station:
    """Record a new connection; it becomes the station's current one unless already closed."""
    await record_connections(
        session, [Connection(connection_id, station_id, gateway_id, connected_at)]
    )
    station = await session.get(Station, station_id, populate_existing=True)
    assert station is not None
    return station


@dataclass(frozen=True, slots=True)
class Replaced:
    """A station's open connection that a newer one, on another gateway, replaced."""

    station_id: str
    connection_id: str
    gateway_id: str


# Per station: the status its last boot got, and the security profile it is registered for.
Registrations = dict[str, tuple[str | None, int]]


@dataclass(frozen=True, slots=True)
class RecordedConnections:
    registrations: Registrations
    replaced: list[Replaced]


async def record_connections(
    session: AsyncSession, connections: list[Connection]
) -> RecordedConnections:
    """Record new connections in a few statements; returns each station's registration and
    the connections on other gateways they replaced."""
    if not connections:
        return RecordedConnections({}, [])
    # executemany of cached statements (see statuses.record_statuses).
    await _ensure_stations(session, _connecting_stations(connections))
    await _upsert_connections(
        session,
        "connected_at",
        [(c.connection_id, c.station_id, c.gateway_id, c.connected_at) for c in connections],
    )
    closed = set(
        (
            await session.scalars(
                select(StationConnection.id).where(
                    StationConnection.id.in_([c.connection_id for c in connections]),
                    StationConnection.disconnected_at.is_not(None),
                )
            )
        ).all()
    )
    newest = newest_connections([c for c in connections if c.connection_id not in closed])
    replaced = await _replaced(session, newest)
    if newest:
        table = table_of(Station)
        connection = await session.connection()
        # Only a connection newer than the current one becomes current.
        await connection.execute(
            update(table)
            .where(
                table.c.id == bindparam("sid"),
                or_(table.c.connected_at.is_(None), table.c.connected_at <= bindparam("at")),
            )
            .values(connected=True, connection_id=bindparam("cid"), connected_at=bindparam("at")),
            [
                {"sid": c.station_id, "cid": c.connection_id, "at": c.connected_at}
                for _, c in sorted(newest.items())
            ],
        )
    await touch_last_seen(session, _connections_seen(connections))
    rows = await session.execute(
        select(Station.id, Station.boot_status, Station.security_profile).where(
            Station.id.in_(sorted({c.station_id for c in connections}))
        )
    )
    return RecordedConnections({row[0]: (row[1], row[2]) for row in rows}, replaced)


def newest_connections(connections: Iterable[Connection]) -> dict[str, Connection]:
    """Each station's newest connection (the last of equally new ones): the one that becomes
    current, unless the current one is newer; applying them one by one leaves the same."""
    newest: dict[str, Connection] = {}
    for c in connections:
        if c.station_id not in newest or newest[c.station_id].connected_at <= c.connected_at:
            newest[c.station_id] = c
    return newest


@dataclass(frozen=True, slots=True)
class CurrentConnection:
    """A station's current connection, open, and the gateway holding it."""

    station_id: str
    connection_id: str | None
    connected_at: datetime | None
    gateway_id: str


def replaced_by(
    newest: dict[str, Connection], current: Iterable[CurrentConnection]
) -> list[Replaced]:
    """The current connections on other gateways that the stations' newest connections
    replace (only a connection newer than the current one becomes current); in station order."""
    replaced: list[Replaced] = []
    for held in sorted(current, key=lambda held: held.station_id):
        new = newest.get(held.station_id)
        if (
            new is not None
            and held.connection_id is not None
            and held.connection_id != new.connection_id
            and held.gateway_id != new.gateway_id
            and (held.connected_at is None or held.connected_at <= new.connected_at)
        ):
            replaced.append(Replaced(held.station_id, held.connection_id, held.gateway_id))
    return replaced


async def _replaced(session: AsyncSession, newest: dict[str, Connection]) -> list[Replaced]:
    if not newest:
        return []
    current = await session.execute(
        select(
            Station.id, Station.connection_id, Station.connected_at, StationConnection.gateway_id
        )
        .join(StationConnection, StationConnection.id == Station.connection_id)
        .where(Station.id.in_(sorted(newest)), Station.connected.is_(True))
    )
    return replaced_by(newest, [CurrentConnection(*row) for row in current])


def _connecting_stations(connections: list[Connection]) -> list[tuple[str, datetime]]:
    """Station rows to create on first contact, in id order: a station's earliest is inserted."""
    return sorted({(c.station_id, c.connected_at) for c in connections})


def _connections_seen(connections: list[Connection]) -> dict[str, datetime]:
    return latest_times((c.station_id, c.connected_at) for c in connections)


@dataclass(frozen=True, slots=True)
class Disconnection:
    connection_id: str
    station_id: str
    gateway_id: str
    disconnected_at: datetime
    last_seen_at: datetime | None = None


async def record_disconnected(
    session: AsyncSession,
    *,
    station_id: str,
    connection_id: str,
    gateway_id: str,
    disconnected_at: datetime,
    last_seen_at: datetime | None,
) -> None:
    """Close a connection (see record_disconnections)."""
    await record_disconnections(
        session,
        [Disconnection(connection_id, station_id, gateway_id, disconnected_at, last_seen_at)],
    )


async def record_disconnections(
    session: AsyncSession, disconnections: Sequence[Disconnection]
) -> None:
    """Close connections; a station goes offline only if the closed one was its current
    connection. Three statements for any number (a fleet leaving at once is thousands)."""
    if not disconnections:
        return
    ordered = in_disconnection_order(disconnections)
    await _ensure_stations(session, _disconnecting_stations(ordered))
    await _upsert_connections(
        session,
        "disconnected_at",
        [(d.connection_id, d.station_id, d.gateway_id, d.disconnected_at) for d in ordered],
    )
    table = table_of(Station)
    connection = await session.connection()
    await connection.execute(
        update(table)
        .where(table.c.id == bindparam("sid"), table.c.connection_id == bindparam("cid"))
        .values(connected=False),
        [{"sid": d.station_id, "cid": d.connection_id} for d in ordered],
    )
    await touch_last_seen(session, _disconnections_seen(ordered))


def in_disconnection_order(disconnections: Iterable[Disconnection]) -> list[Disconnection]:
    return sorted(disconnections, key=lambda d: (d.station_id, d.connection_id))


def _disconnecting_stations(ordered: list[Disconnection]) -> list[tuple[str, datetime]]:
    """Station rows to create on first contact, one per station."""
    return list({d.station_id: d.disconnected_at for d in ordered}.items())


def _disconnections_seen(disconnections: Iterable[Disconnection]) -> dict[str, datetime]:
    return latest_times(
        (d.station_id, d.last_seen_at) for d in disconnections if d.last_seen_at is not None
    )


async def _ensure_stations(session: AsyncSession, rows: list[tuple[str, datetime]]) -> None:
    await session.execute(
        insert(session, Station).on_conflict_do_nothing(index_elements=["id"]),
        [{"id": station_id, "connected": False, "created_at": at} for station_id, at in rows],
    )


async def _upsert_connections(
    session: AsyncSession, column: str, rows: list[tuple[str, str, str, datetime]]
) -> None:
    """Each connection's row, created or with `column` (connected_at or disconnected_at) set."""
    upsert = insert(session, StationConnection)
    await session.execute(
        upsert.on_conflict_do_update(index_elements=["id"], set_={column: upsert.excluded[column]}),
        [
            {"id": cid, "station_id": sid, "gateway_id": gateway_id, column: at}
            for cid, sid, gateway_id, at in rows
        ],
    )


async def record_seen(session: AsyncSession, seen: dict[str, datetime]) -> None:
    """Stations that sent traffic, and when; last-seen times only move forward. (The beat
    carrying them proves its gateway alive: see record_gateways_heard.)"""
    await touch_last_seen(session, seen)


async def record_gateways_heard(session: AsyncSession, heard: dict[str, datetime]) -> None:
    """Each gateway was alive at the time given; a gateway's last beat only moves forward.

    Gateway rows are locked in id order and before any station row in every presence
    transaction (see record_presence), so that concurrent batches do not deadlock.
    """
    for gateway_id in sorted(heard):
        await _heard_from(session, gateway_id, heard[gateway_id])


async def _heard_from(session: AsyncSession, gateway_id: str, at: datetime) -> None:
    upsert = insert(session, Gateway).values(id=gateway_id, last_beat_at=at)
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=["id"],
            set_={"last_beat_at": upsert.excluded.last_beat_at},
            where=Gateway.last_beat_at < upsert.excluded.last_beat_at,
        )
    )


# Called with the connections a batch's new ones replaced, before its transaction commits.
BeforeCommit = Callable[[list[Replaced]], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class PresenceBatch:
    """A batch of presence events, recorded in one transaction."""

    # Per gateway, when it was last known alive.
    heard: dict[str, datetime]
    connections: list[Connection]
    disconnections: list[Disconnection]
    # Per station, when it last sent traffic.
    seen: dict[str, datetime]

    @property
    def empty(self) -> bool:
        return not (self.heard or self.connections or self.disconnections or self.seen)


async def record_presence(session: AsyncSession, batch: PresenceBatch) -> RecordedConnections:
    """A batch, in the session's transaction: gateway rows first (see record_gateways_heard),
    then connections, disconnections and last-seen times."""
    await record_gateways_heard(session, batch.heard)
    recorded = await record_connections(session, batch.connections)
    await record_disconnections(session, batch.disconnections)
    await record_seen(session, batch.seen)
    return recorded


def new_stations(batch: PresenceBatch) -> list[tuple[str, datetime]]:
    """The station rows a batch creates where none exists, one per station in id order, each
    with the time record_presence's inserts would give it (the first insert of a station wins)."""
    first: dict[str, datetime] = {}
    inserted = _connecting_stations(batch.connections) + _disconnecting_stations(
        in_disconnection_order(batch.disconnections)
    )
    for station_id, at in inserted:
        first.setdefault(station_id, at)
    return sorted(first.items())


def last_seen(batch: PresenceBatch) -> dict[str, datetime]:
    """The last-seen times a batch records, one per station: the latest of what
    record_presence touches it with (last-seen times only move forward)."""
    return latest_times(
        [
            *_connections_seen(batch.connections).items(),
            *_disconnections_seen(batch.disconnections).items(),
            *batch.seen.items(),
        ]
    )


def latest_times(times: Iterable[tuple[str, datetime]]) -> dict[str, datetime]:
    """The latest time of each key."""
    latest: dict[str, datetime] = {}
    for key, at in times:
        if key not in latest or latest[key] < at:
            latest[key] = at
    return latest


async def online_stations(
    session: AsyncSession, station_ids: Sequence[str], *, alive_since: datetime
) -> set[str]:
    """Those of `station_ids` whose current connection is open on a gateway heard from since
    `alive_since`. Judged when read: a gateway that dies takes its stations offline at once,
    and one only slow to report (a backlog, a restarted worker) brings them back by itself."""
    if not station_ids:
        return set()
    rows = await session.scalars(
        select(Station.id)
        .join(StationConnection, StationConnection.id == Station.connection_id)
        .join(Gateway, Gateway.id == StationConnection.gateway_id)
        .where(
            Station.id.in_(station_ids),
            Station.connected.is_(True),
            Gateway.last_beat_at >= alive_since,
        )
    )
    return set(rows.all())


async def touch_last_seen(session: AsyncSession, seen: dict[str, datetime]) -> None:
    """Stations were seen at these times; last-seen times only move forward."""
    if not seen:
        return
    table = table_of(Station)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("station_id"),
            or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < bindparam("seen_at")),
        )
        .values(last_seen_at=bindparam("seen_at"))
    )
    rows = [{"station_id": sid, "seen_at": seen[sid]} for sid in sorted(seen)]
    connection = await session.connection()
    await connection.execute(statement, rows)


async def close_silent_gateways(session: AsyncSession, *, silent_since: datetime) -> list[str]:
    """Forget gateways silent since `silent_since`: their connections are closed and their
    stations' flags cleared. (Reads already show those stations offline; see online_stations.)"""
    # Gateway rows first, as in every presence transaction (see record_connections).
    dead = list(
        (
            await session.scalars(
                delete(Gateway).where(Gateway.last_beat_at < silent_since).returning(Gateway.id)
            )
        ).all()
    )
    if not dead:
        return []
    open_connections = select(StationConnection.id).where(
        StationConnection.gateway_id.in_(dead), StationConnection.disconnected_at.is_(None)
    )
    await session.execute(
        update(Station)
        .where(and_(Station.connected.is_(True), Station.connection_id.in_(open_connections)))
        .values(connected=False)
    )
    await session.execute(
        update(StationConnection)
        .where(StationConnection.gateway_id.in_(dead), StationConnection.disconnected_at.is_(None))
        .values(disconnected_at=silent_since)
    )
    return dead
