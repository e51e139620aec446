"""Reads for the operator API: stations, connectors, events and gaps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.models import ConnectorStatus, EventData, EventGap, Station

Row = TypeVar("Row")


async def get_station(session: AsyncSession, *, station_id: str) -> Station | None:
    """One station, or None if it was never seen."""
    return await session.get(Station, station_id)


async def list_stations(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[Station], int]:
    """Stations ordered by id, and how many there are."""
    return await _page(session, select(Station).order_by(Station.id), limit, offset)


async def connectors_of(
    session: AsyncSession, *, station_ids: Sequence[str]
) -> list[ConnectorStatus]:
    """Current connector statuses of these stations, ordered by EVSE and connector."""
    if not station_ids:
        return []
    rows = await session.scalars(
        select(ConnectorStatus)
        .where(ConnectorStatus.station_id.in_(station_ids))
        .order_by(ConnectorStatus.station_id, ConnectorStatus.evse_id, ConnectorStatus.connector_id)
    )
    return list(rows.all())


async def list_events(
    session: AsyncSession, *, station_id: str, limit: int, offset: int
) -> tuple[list[EventData], int]:
    """A station's eventData items, newest first."""
    query = (
        select(EventData).where(EventData.station_id == station_id).order_by(EventData.id.desc())
    )
    return await _page(session, query, limit, offset)


async def list_gaps(
    session: AsyncSession, *, station_id: str, limit: int, offset: int
) -> tuple[list[EventGap], int]:
    """A station's detected NotifyEvent gaps, newest first."""
    query = select(EventGap).where(EventGap.station_id == station_id).order_by(EventGap.id.desc())
    return await _page(session, query, limit, offset)


async def _page(
    session: AsyncSession, query: Select[Any], limit: int, offset: int
) -> tuple[list[Any], int]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await session.scalars(query.limit(limit).offset(offset))
    return list(rows.all()), total or 0
