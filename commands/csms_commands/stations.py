"""`/stations`: reads of stored state, and the Reset and ChangeAvailability commands."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from csms.bus.message import BusError
from csms.db import commands as command_records
from csms.db import stations as station_records
from csms.db.commands import Outcome
from csms.db.models import ConnectorStatus, Station
from csms.ocpp.actions import CsmsAction
from csms.ocpp.errors import OcppError
from csms.ocpp.validation import validate_request
from csms_commands.dependencies import BusDep, SessionDep, SettingsDep
from csms_commands.schemas import (
    CallErrorOut,
    ChangeAvailabilityRequest,
    CommandOut,
    Connector,
    EventGapOut,
    EventOut,
    Evse,
    Page,
    ResetRequest,
    StationOut,
    StationResponse,
)
from csms_commands.service import CommandResult, StationNotFound, send_command

router = APIRouter(prefix="/stations", tags=["stations"])

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, description="items to skip")]
Timeout = Annotated[
    float | None,
    Query(gt=0, description="seconds to wait for the station's answer (default 30)"),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "station never seen"},
    409: {"description": "station not connected"},
    422: {"description": "body is not a valid OCPP request"},
    502: {"model": CallErrorOut, "description": "the station answered with a CALLERROR"},
    504: {"description": "the station did not answer in time"},
}


@router.get("", response_model=Page[StationOut])
async def list_stations(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> Any:
    """All stations ever seen, by id."""
    stations, total = await station_records.list_stations(session, limit=limit, offset=offset)
    connectors = await station_records.connectors_of(
        session, station_ids=[station.id for station in stations]
    )
    return Page[StationOut](
        items=[_station_out(station, connectors) for station in stations],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{station_id}", response_model=StationOut, responses={404: _ERRORS[404]})
async def get_station(station_id: str, session: SessionDep) -> Any:
    """One station: presence, boot data and every connector's current status."""
    station = await _station_or_404(session, station_id)
    connectors = await station_records.connectors_of(session, station_ids=[station_id])
    return _station_out(station, connectors)


@router.get("/{station_id}/commands", response_model=Page[CommandOut])
async def list_commands(
    station_id: str, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Commands sent to the station, newest first."""
    await _station_or_404(session, station_id)
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
    await _station_or_404(session, station_id)
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


@router.get("/{station_id}/event-gaps", response_model=Page[EventGapOut])
async def list_event_gaps(
    station_id: str, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """NotifyEvent parts that never arrived, newest first."""
    await _station_or_404(session, station_id)
    rows, total = await station_records.list_gaps(
        session, station_id=station_id, limit=limit, offset=offset
    )
    return Page[EventGapOut](
        items=[EventGapOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("/{station_id}/reset", response_model=StationResponse, responses=_ERRORS)
async def reset(
    station_id: str,
    body: ResetRequest,
    request: Request,
    bus: BusDep,
    settings: SettingsDep,
    timeout: Timeout = None,
) -> Any:
    """Send ResetRequest; answers with the station's ResetResponse."""
    return await _command(request, bus, settings, station_id, CsmsAction.RESET, body, timeout)


@router.post("/{station_id}/availability", response_model=StationResponse, responses=_ERRORS)
async def change_availability(
    station_id: str,
    body: ChangeAvailabilityRequest,
    request: Request,
    bus: BusDep,
    settings: SettingsDep,
    timeout: Timeout = None,
) -> Any:
    """Send ChangeAvailabilityRequest; answers with the station's ChangeAvailabilityResponse."""
    return await _command(
        request, bus, settings, station_id, CsmsAction.CHANGE_AVAILABILITY, body, timeout
    )


async def _command(
    request: Request,
    bus: BusDep,
    settings: SettingsDep,
    station_id: str,
    action: CsmsAction,
    body: BaseModel,
    timeout: float | None,
) -> Any:
    payload = body.model_dump(exclude_none=True)
    try:
        validate_request(action, payload)
    except OcppError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"not a valid {action}Request ({error.code}): {error.description}",
        ) from None
    wait = timeout if timeout is not None else settings.command_timeout
    if wait > settings.command_timeout_max:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"timeout may be at most {settings.command_timeout_max} seconds",
        )
    try:
        result = await send_command(
            request.app.state.sessions,
            bus,
            station_id=station_id,
            action=action,
            payload=payload,
            timeout=wait,
        )
    except StationNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"station {station_id} never seen") from None
    except BusError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "message bus unavailable, try again"
        ) from None
    return _command_response(station_id, result)


def _command_response(station_id: str, result: CommandResult) -> Any:
    if result.outcome == Outcome.ANSWERED:
        return JSONResponse(result.payload)
    if result.outcome == Outcome.NOT_CONNECTED:
        raise HTTPException(status.HTTP_409_CONFLICT, f"station {station_id} is not connected")
    if result.outcome == Outcome.CALL_ERROR:
        error = CallErrorOut(
            detail=f"station {station_id} answered with CALLERROR {result.error_code}",
            errorCode=result.error_code,
            errorDescription=result.error_description,
            errorDetails=result.error_details,
        )
        return JSONResponse(error.model_dump(), status_code=status.HTTP_502_BAD_GATEWAY)
    raise HTTPException(
        status.HTTP_504_GATEWAY_TIMEOUT, f"station {station_id} did not answer in time"
    )


async def _station_or_404(session: SessionDep, station_id: str) -> Station:
    station = await station_records.get_station(session, station_id=station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"station {station_id} never seen")
    return station


def _station_out(station: Station, connectors: list[ConnectorStatus]) -> StationOut:
    by_evse: dict[int, list[Connector]] = defaultdict(list)
    for connector in connectors:
        if connector.station_id == station.id:
            by_evse[connector.evse_id].append(
                Connector(
                    id=connector.connector_id,
                    status=connector.status,
                    status_at=connector.status_at,
                )
            )
    return StationOut(
        id=station.id,
        connected=station.connected,
        last_seen_at=station.last_seen_at,
        boot_status=station.boot_status,
        registration_status=station.registration_status,
        last_boot_at=station.last_boot_at,
        vendor_name=station.vendor_name,
        model=station.model,
        serial_number=station.serial_number,
        firmware_version=station.firmware_version,
        created_at=station.created_at,
        evses=[Evse(id=evse_id, connectors=items) for evse_id, items in sorted(by_evse.items())],
    )
