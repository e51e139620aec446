"""Registering, changing and removing stations: shared by the HTTP API and the CLI.

Passwords are hashed here and never stored or logged in clear; a generated password is
returned once to the caller. Every change is announced to the gateways, which drop what they
cached about the station (and close its socket if it was removed or rejected).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import RegistryChanged
from csms.bus.message import BusError, BusMessage
from csms.db import registry
from csms.db.models import Station
from csms.db.registry import ConnectorLayout
from csms.ocpp.identity import check_identity
from csms.security.passwords import generate_password, hash_password
from csms.timeutil import utcnow

log = logging.getLogger(__name__)

REGISTRATION_STATUSES = ("Accepted", "Pending", "Rejected")
# Profiles 1 and 2 authenticate with Basic auth and need a password.
PASSWORD_PROFILES = (1, 2)


class RegistryError(ValueError):
    """The request contradicts the OCPP rules (e.g. profile 1 without a password)."""


@dataclass(frozen=True, slots=True)
class Registration:
    station: Station
    # Set only when the CSMS generated the password: shown once, never again.
    generated_password: str | None


async def register(
    session: AsyncSession,
    *,
    station_id: str,
    security_profile: int,
    password: str | None,
    generate: bool,
    registration_status: str,
    heartbeat_interval: int | None,
    layout: list[ConnectorLayout],
) -> Registration:
    """Register a station (raises AlreadyRegistered, RegistryError, BadIdentity)."""
    check_identity(station_id)
    if registration_status not in REGISTRATION_STATUSES:
        raise RegistryError(f"registrationStatus must be one of {REGISTRATION_STATUSES}")
    generated, password_hash = _password(security_profile, password, generate, None)
    station = await registry.register_station(
        session,
        station_id=station_id,
        security_profile=security_profile,
        password_hash=password_hash,
        registration_status=registration_status,
        heartbeat_interval=heartbeat_interval,
        layout=layout,
        at=utcnow(),
    )
    return Registration(station, generated)


async def update(
    session: AsyncSession,
    station: Station,
    *,
    registration_status: str | None = None,
    security_profile: int | None = None,
    password: str | None = None,
    generate: bool = False,
    heartbeat_interval: int | None = None,
    layout: list[ConnectorLayout] | None = None,
) -> Registration:
    """Change what is given; a station only seen so far becomes registered."""
    if registration_status is not None:
        if registration_status not in REGISTRATION_STATUSES:
            raise RegistryError(f"registrationStatus must be one of {REGISTRATION_STATUSES}")
        station.registration_status = registration_status
    elif station.registration_status is None:
        station.registration_status = "Accepted"
    if station.registered_at is None:
        station.registered_at = utcnow()
    if security_profile is not None:
        station.security_profile = security_profile
    generated, password_hash = _password(
        station.security_profile, password, generate, station.password_hash
    )
    station.password_hash = password_hash
    if heartbeat_interval is not None:
        station.heartbeat_interval = heartbeat_interval
    if layout is not None:
        await registry.replace_layout(session, station_id=station.id, layout=layout)
    return Registration(station, generated)


def _password(
    profile: int, password: str | None, generate: bool, current_hash: str | None
) -> tuple[str | None, str | None]:
    """(generated password or None, hash to store)."""
    if password is not None and generate:
        raise RegistryError("give a password or ask for one to be generated, not both")
    if password is not None:
        return None, hash_password(password)
    if generate or (profile in PASSWORD_PROFILES and current_hash is None):
        generated = generate_password()
        return generated, hash_password(generated)
    return None, current_hash


async def announce(bus: Bus, *, station_id: str, status: str | None, removed: bool) -> None:
    """Tell every gateway; a gateway that misses it re-reads the registry within its cache TTL."""
    change: RegistryChanged = {
        "stationId": station_id,
        "registrationStatus": status,
        "removed": removed,
    }
    try:
        await bus.publish(
            topology.CONTROL_EXCHANGE,
            "",
            BusMessage(body=dict(change), type=topology.REGISTRY_CHANGED),
        )
    except BusError:
        log.warning("registry change of %s not announced to gateways", station_id, exc_info=True)
