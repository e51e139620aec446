"""`/stations` reads: state, commands, events and gaps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy.ext.asyncio import AsyncSession

from csms.config import Settings
from csms.db import commands as command_records
from csms.db import presence, registry
from csms.db import stations as station_records
from csms.db.models import Station
from csms.timeutil import utcnow
from csms_commands.auth import read_access
from csms_commands.dependencies import SessionDep, SettingsDep
from csms_commands.presenters import station_out
from csms_commands.schemas import CommandOut, EventGapOut, EventOut, Page, StationOut

router = APIRouter(prefix="/stations", tags=["stations"], dependencies=[Depends(read_access)])

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]

_EVENT_COLUMNS = (
    "event_id",
    "trigger",
    "actual_value",
    "component",
    "variable",
    "event_notification_type",
    "cause",
    "tech_code",
    "tech_info",
    "cleared",
    "transaction_id",
    "variable_monitoring_id",
    "generated_at",
    "seq_no",
    "tbc",
    "received_at",
)


@router.get("", response_model=Page[StationOut])
async def list_stations(
    session: SessionDep, settings: SettingsDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """All stations ever seen or registered, by id."""
    stations, total = await station_records.list_stations(session, limit=limit, offset=offset)
    ids = [station.id for station in stations]
    statuses = await station_records.connectors_of(session, station_ids=ids)
    layout = await registry.layout_of(session, station_ids=ids)
    online = await presence.online_stations(
        session, ids, alive_since=gateways_alive_since(settings)
    )
    return Page[StationOut](
        items=[station_out(station, statuses, layout, online) for station in stations],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{station_id}", response_model=StationOut, responses={404: {}})
async def get_station(station_id: str, session: SessionDep, settings: SettingsDep) -> Any:
    """One station: presence, boot data, registration and every connector's current status."""
    return await load_station_out(session, await station_or_404(session, station_id), settings)


@router.get("/{station_id}/commands", response_model=Page[CommandOut])
async def list_commands(
    station_id: str, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Commands sent to the station, newest first."""
    await station_or_404(session, station_id)
    rows, total = await command_records.list_commands(
        session, station_id=station_id, limit=limit, offset=offset
    )
    return Page[CommandOut](
        items=[CommandOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{station_id}/events", response_model=Page[EventOut], response_model_exclude_none=True)
async def list_events(
    station_id: str, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Stored NotifyEvent eventData items, newest first."""
    await station_or_404(session, station_id)
    rows, total = await station_records.list_events(
        session, station_id=station_id, limit=limit, offset=offset
    )
    items = [
        EventOut.model_validate(
            {**{c: getattr(row, c) for c in _EVENT_COLUMNS}, "timestamp": row.occurred_at}
        )
        for row in rows
    ]
    return Page[EventOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/{station_id}/event-gaps", response_model=Page[EventGapOut])
async def list_event_gaps(
    station_id: str, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """NotifyEvent parts that never arrived, newest first."""
    await station_or_404(session, station_id)
    rows, total = await station_records.list_gaps(
        session, station_id=station_id, limit=limit, offset=offset
    )
    return Page[EventGapOut](
        items=[EventGapOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


async def station_or_404(session: AsyncSession, station_id: str) -> Station:
    station = await station_records.get_station(session, station_id=station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"station {station_id} never seen")
    return station


async def load_station_out(
    session: AsyncSession, station: Station, settings: Settings
) -> StationOut:
    statuses = await station_records.connectors_of(session, station_ids=[station.id])
    layout = await registry.layout_of(session, station_ids=[station.id])
    online = await presence.online_stations(
        session, [station.id], alive_since=gateways_alive_since(settings)
    )
    return station_out(station, statuses, layout, online)


def gateways_alive_since(settings: Settings) -> datetime:
    """Gateways not heard from since then are presumed dead (and their stations offline)."""
    return utcnow() - timedelta(seconds=settings.gateway_timeout)
