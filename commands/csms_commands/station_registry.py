"""`/stations` registry: register, change and remove stations (operators' decisions)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response, status

from csms import registry
from csms.bus.base import Bus
from csms.bus.message import BusError
from csms.db import registry as registry_records
from csms.db.command_journal import CommandJournal
from csms.db.commands import Outcome
from csms.db.registry import AlreadyRegistered, ConnectorLayout
from csms.ocpp.actions import CsmsAction
from csms.ocpp.identity import BadIdentity
from csms_commands.auth import write_access
from csms_commands.dependencies import BusDep, JournalDep, SessionDep, SettingsDep
from csms_commands.schemas import (
    EvseLayoutIn,
    RegisteredStation,
    StationChange,
    StationRegistration,
)
from csms_commands.service import StationNotFound, send_command
from csms_commands.stations import load_station_out, station_or_404

log = logging.getLogger(__name__)

router = APIRouter(prefix="/stations", tags=["registry"], dependencies=[Depends(write_access)])

# How long approving a connected Pending station waits for its TriggerMessage answer.
_TRIGGER_TIMEOUT = 10.0


@router.post(
    "",
    response_model=RegisteredStation,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "already registered"}},
)
async def register_station(
    body: StationRegistration, session: SessionDep, bus: BusDep, settings: SettingsDep
) -> Any:
    """Register a station. For Basic auth (profiles 1, 2) without a password, the CSMS generates
    one and returns it here, once."""
    try:
        registration = await registry.register(
            session,
            station_id=body.id,
            security_profile=(
                body.securityProfile
                if body.securityProfile is not None
                else settings.security_profile
            ),
            password=body.password,
            generate=body.generatePassword,
            registration_status=body.registrationStatus,
            heartbeat_interval=body.heartbeatInterval,
            layout=_layout(body.evses or []),
        )
        await session.commit()
    except AlreadyRegistered:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"station {body.id} is registered already"
        ) from None
    except (BadIdentity, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    await registry.announce(bus, station_id=body.id, status=body.registrationStatus, removed=False)
    out = await load_station_out(session, registration.station, settings)
    return RegisteredStation(**out.model_dump(), password=registration.generated_password)


@router.patch("/{station_id}", response_model=RegisteredStation)
async def change_station(
    station_id: str,
    body: StationChange,
    journal: JournalDep,
    session: SessionDep,
    bus: BusDep,
    settings: SettingsDep,
) -> Any:
    """Change registration status, heartbeat interval, security profile, password or layout.

    Approving a connected Pending station (registrationStatus Accepted) also sends it
    TriggerMessage(BootNotification), so it need not wait out its interval."""
    station = await station_or_404(session, station_id)
    was_pending = station.boot_status == "Pending"
    try:
        registration = await registry.update(
            session,
            station,
            registration_status=body.registrationStatus,
            security_profile=body.securityProfile,
            password=body.password,
            generate=body.generatePassword,
            heartbeat_interval=body.heartbeatInterval,
            layout=_layout(body.evses) if body.evses is not None else None,
        )
        await session.commit()
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    await registry.announce(
        bus, station_id=station_id, status=station.registration_status, removed=False
    )
    triggered = None
    if body.registrationStatus == "Accepted" and was_pending and station.connected:
        triggered = await _trigger_boot(journal, bus, station_id)
    out = await load_station_out(session, registration.station, settings)
    return RegisteredStation(
        **out.model_dump(), password=registration.generated_password, boot_triggered=triggered
    )


@router.delete("/{station_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
async def remove_station(station_id: str, session: SessionDep, bus: BusDep) -> Response:
    """Forget the station's registration (its history stays); a connected socket is closed."""
    removed = await registry_records.remove_station(session, station_id=station_id)
    if not removed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"station {station_id} never seen")
    await session.commit()
    await registry.announce(bus, station_id=station_id, status=None, removed=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _trigger_boot(journal: CommandJournal, bus: Bus, station_id: str) -> str | None:
    try:
        result = await send_command(
            journal,
            bus,
            station_id=station_id,
            action=CsmsAction.TRIGGER_MESSAGE,
            payload={"requestedMessage": "BootNotification"},
            timeout=_TRIGGER_TIMEOUT,
        )
    except (StationNotFound, BusError):
        return None
    if result.outcome != Outcome.ANSWERED:
        log.info("TriggerMessage to approved station %s: %s", station_id, result.outcome)
        return None
    status_value = result.payload.get("status")
    return str(status_value) if status_value is not None else None


def _layout(evses: list[EvseLayoutIn]) -> list[ConnectorLayout]:
    return [
        ConnectorLayout(evse.id, connector.id, connector.type)
        for evse in evses
        for connector in evse.connectors
    ]
