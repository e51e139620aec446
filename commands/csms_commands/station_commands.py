"""`/stations/{id}/…` commands: Reset, ChangeAvailability, TriggerMessage sent to the station."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from csms.bus.message import BusError
from csms.db.commands import Outcome
from csms.ocpp.actions import CsmsAction
from csms.ocpp.errors import OcppError
from csms.ocpp.validation import validate_request
from csms_commands.dependencies import CommandContext, CommandContextDep
from csms_commands.plain_commands import PLAIN_COMMANDS, PlainCommand
from csms_commands.schemas import (
    CallErrorOut,
    ChangeAvailabilityRequest,
    ResetRequest,
    StationResponse,
    TriggerMessageRequest,
)
from csms_commands.service import CommandResult, StationNotFound, send_command

# Write access is checked by CommandContextDep, each endpoint's one dependency; plain requests
# take a shorter way to the same checks (plain_commands.py).
router = APIRouter(prefix="/stations", tags=["commands"])

Timeout = Annotated[
    float | None,
    Query(gt=0, description="seconds to wait for the station's answer (default 30)"),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "station never seen"},
    409: {"description": "station not connected, or its boot is not Accepted"},
    422: {"description": "body is not a valid OCPP request"},
    429: {"description": "too many commands queued for the station"},
    502: {"model": CallErrorOut, "description": "the station answered with a CALLERROR"},
    504: {"description": "the station did not answer in time"},
}


@router.post("/{station_id}/reset", response_model=StationResponse, responses=_ERRORS)
async def reset(
    station_id: str,
    body: ResetRequest,
    context: CommandContextDep,
    timeout: Timeout = None,
) -> Any:
    """Send ResetRequest; answers with the station's ResetResponse."""
    return await _command(context, station_id, CsmsAction.RESET, body, timeout)


@router.post("/{station_id}/availability", response_model=StationResponse, responses=_ERRORS)
async def change_availability(
    station_id: str,
    body: ChangeAvailabilityRequest,
    context: CommandContextDep,
    timeout: Timeout = None,
) -> Any:
    """Send ChangeAvailabilityRequest; answers with the station's ChangeAvailabilityResponse."""
    return await _command(context, station_id, CsmsAction.CHANGE_AVAILABILITY, body, timeout)


@router.post("/{station_id}/trigger-message", response_model=StationResponse, responses=_ERRORS)
async def trigger_message(
    station_id: str,
    body: TriggerMessageRequest,
    context: CommandContextDep,
    timeout: Timeout = None,
) -> Any:
    """Send TriggerMessageRequest (also allowed while the station is Pending)."""
    return await _command(context, station_id, CsmsAction.TRIGGER_MESSAGE, body, timeout)


async def _command(
    context: CommandContext,
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
    settings = context.settings
    wait = timeout if timeout is not None else settings.command_timeout
    if wait > settings.command_timeout_max:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"timeout may be at most {settings.command_timeout_max} seconds",
        )
    try:
        result = await send_command(
            context.journal,
            context.bus,
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
    return command_response(station_id, result)


PLAIN_COMMANDS.update(
    {
        reset: PlainCommand(CsmsAction.RESET, ResetRequest, _command),
        change_availability: PlainCommand(
            CsmsAction.CHANGE_AVAILABILITY, ChangeAvailabilityRequest, _command
        ),
        trigger_message: PlainCommand(CsmsAction.TRIGGER_MESSAGE, TriggerMessageRequest, _command),
    }
)


def command_response(station_id: str, result: CommandResult) -> Any:
    """The HTTP answer for a command's outcome (see docs/adr/0006-command-outcomes.md)."""
    if result.outcome == Outcome.ANSWERED:
        return JSONResponse(result.payload)
    if result.outcome == Outcome.NOT_CONNECTED:
        raise HTTPException(status.HTTP_409_CONFLICT, f"station {station_id} is not connected")
    if result.outcome == Outcome.NOT_ALLOWED:
        raise HTTPException(status.HTTP_409_CONFLICT, result.error_description)
    if result.outcome == Outcome.BUSY:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, result.error_description)
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
