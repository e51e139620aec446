"""Station presence: connections, gateways' liveness, last-seen times.

Connected and disconnected events may be processed in any order and more than once; each
connection has its own row, so the newest open connection decides, whatever the order.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import Gateway, Station, StationConnection


async def ensure_station(session: AsyncSession, *, station_id: str, seen_at: datetime) -> None:
    """Create the station row on first contact."""
    await session.execute(
        insert(session, Station)
        .values(id=station_id, connected=False, created_at=seen_at)
        .on_conflict_do_nothing(index_elements=["id"])
    )


async def record_connected(
    session: AsyncSession,
    *,
    station_id: str,
    connection_id: str,
    gateway_id: str,
    connected_at: datetime,
) -> Station:
    """Record a new connection; it becomes the station's current one unless already closed."""
    await ensure_station(session, station_id=station_id, seen_at=connected_at)
    await session.execute(
        insert(session, StationConnection)
        .values(
            id=connection_id,
            station_id=station_id,
            gateway_id=gateway_id,
            connected_at=connected_at,
        )
        .on_conflict_do_update(index_elements=["id"], set_={"connected_at": connected_at})
    )
    connection = await session.get(StationConnection, connection_id, populate_existing=True)
    assert connection is not None
    if connection.disconnected_at is None:
        await session.execute(
            update(Station)
            .where(
                Station.id == station_id,
                or_(Station.connected_at.is_(None), Station.connected_at <= connected_at),
            )
            .values(connected=True, connection_id=connection_id, connected_at=connected_at)
        )
    await _touch(session, {station_id: connected_at})
    station = await session.get(Station, station_id, populate_existing=True)
    assert station is not None
    return station


async def record_disconnected(
    session: AsyncSession,
    *,
    station_id: str,
    connection_id: str,
    gateway_id: str,
    disconnected_at: datetime,
    last_seen_at: datetime | None,
) -> None:
    """Close a connection; the station goes offline only if it was its current connection."""
    await ensure_station(session, station_id=station_id, seen_at=disconnected_at)
    await session.execute(
        insert(session, StationConnection)
        .values(
            id=connection_id,
            station_id=station_id,
            gateway_id=gateway_id,
            disconnected_at=disconnected_at,
        )
        .on_conflict_do_update(index_elements=["id"], set_={"disconnected_at": disconnected_at})
    )
    await session.execute(
        update(Station)
        .where(Station.id == station_id, Station.connection_id == connection_id)
        .values(connected=False)
    )
    if last_seen_at is not None:
        await _touch(session, {station_id: last_seen_at})


async def record_seen(
    session: AsyncSession, *, gateway_id: str, beat_at: datetime, seen: dict[str, datetime]
) -> None:
    """A gateway's periodic report: it is alive, and these stations sent traffic."""
    await session.execute(
        insert(session, Gateway)
        .values(id=gateway_id, last_beat_at=beat_at)
        .on_conflict_do_update(index_elements=["id"], set_={"last_beat_at": beat_at})
    )
    await _touch(session, seen)


async def _touch(session: AsyncSession, seen: dict[str, datetime]) -> None:
    if not seen:
        return
    table = Station.__table__
    assert isinstance(table, Table)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("station_id"),
            or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < bindparam("seen_at")),
        )
        .values(last_seen_at=bindparam("seen_at"))
    )
    rows = [{"station_id": sid, "seen_at": at} for sid, at in seen.items()]
    connection = await session.connection()
    await connection.execute(statement, rows)


async def close_silent_gateways(session: AsyncSession, *, silent_since: datetime) -> list[str]:
    """Presume gateways silent since `silent_since` dead: their stations are offline."""
    dead = list(
        (await session.scalars(select(Gateway.id).where(Gateway.last_beat_at < silent_since))).all()
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
    await session.execute(delete(Gateway).where(Gateway.id.in_(dead)))
    return dead
