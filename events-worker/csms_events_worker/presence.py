"""Presence consumer: connections, disconnections and the gateways' liveness beats."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus import topology
from csms.bus.envelopes import Connected, ConnectedReply, Disconnected, Seen, Takeover
from csms.bus.message import Body, BusMessage
from csms.db.presence import (
    BeforeCommit,
    Connection,
    Disconnection,
    PresenceBatch,
    Replaced,
    close_silent_gateways,
    latest_times,
)
from csms.db.registration_writes import RegistrationWrites
from csms.timeutil import parse_datetime, utcnow

log = logging.getLogger(__name__)

_FORGET_GATEWAYS_AFTER = timedelta(hours=1)


async def handle_presence(
    writes: RegistrationWrites, messages: list[BusMessage], before_commit: BeforeCommit
) -> list[Body | None]:
    """A batch of presence events, in one transaction; the outcome does not depend on the
    order of connected and disconnected events (see docs/adr/0003). `before_commit` is given
    the connections on other gateways that new ones replaced. Returns the replies."""
    registrations = await writes.record_presence(presence_batch(messages), before_commit)
    replies: list[Body | None] = []
    for message in messages:
        if message.type == topology.STATION_CONNECTED:
            boot_status, profile = registrations.get(message.body["stationId"], (None, 0))
            reply: ConnectedReply = {"bootStatus": boot_status, "securityProfile": profile}
            replies.append(dict(reply))
            continue
        if message.type not in (topology.STATION_SEEN, topology.STATION_DISCONNECTED):
            log.warning("ignoring presence message of unknown type %r", message.type)
        replies.append(None)
    return replies


def presence_batch(messages: list[BusMessage]) -> PresenceBatch:
    return PresenceBatch(
        heard=_gateways_heard(messages),
        connections=[
            _connection(cast(Connected, m.body))
            for m in messages
            if m.type == topology.STATION_CONNECTED
        ],
        disconnections=[
            _disconnection(cast(Disconnected, m.body))
            for m in messages
            if m.type == topology.STATION_DISCONNECTED
        ],
        # Last-seen times only move forward: each station's latest of the batch does it all.
        seen=latest_times(
            (station, parse_datetime(at))
            for m in messages
            if m.type == topology.STATION_SEEN
            for station, at in cast(Seen, m.body)["seen"].items()
        ),
    )


def takeovers(replaced: list[Replaced]) -> dict[str, list[Takeover]]:
    """What each gateway must close: the replaced connections it holds."""
    by_gateway: dict[str, list[Takeover]] = {}
    for old in replaced:
        takeover: Takeover = {"stationId": old.station_id, "connectionId": old.connection_id}
        by_gateway.setdefault(old.gateway_id, []).append(takeover)
    return by_gateway


def _gateways_heard(messages: list[BusMessage]) -> dict[str, datetime]:
    """When each gateway that beat in the batch was last known alive, counted from when its
    beat is heard: a beat that waited behind a backlog still proves the gateway alive, rather
    than making it look dead. (Connections do not count: every connection batch would then
    queue on its gateway's row.)"""
    heard: dict[str, datetime] = {}
    now = utcnow()
    for message in messages:
        if message.type == topology.STATION_SEEN:
            beat = cast(Seen, message.body)
            heard[beat["gatewayId"]] = max(parse_datetime(beat["beatAt"]), now)
    return heard


def _connection(new: Connected) -> Connection:
    return Connection(
        connection_id=new["connectionId"],
        station_id=new["stationId"],
        gateway_id=new["gatewayId"],
        connected_at=parse_datetime(new["connectedAt"]),
    )


def _disconnection(gone: Disconnected) -> Disconnection:
    last_seen = gone.get("lastSeenAt")
    return Disconnection(
        connection_id=gone["connectionId"],
        station_id=gone["stationId"],
        gateway_id=gone["gatewayId"],
        disconnected_at=parse_datetime(gone["disconnectedAt"]),
        last_seen_at=parse_datetime(last_seen) if last_seen else None,
    )


def forget_gateways_after(gateway_timeout: float) -> timedelta:
    """How long a silent gateway's rows are kept: far past the point where reads show its
    stations offline, so that one only partitioned from the bus for a while comes back whole."""
    return max(_FORGET_GATEWAYS_AFTER, timedelta(seconds=10 * gateway_timeout))


async def forget_dead_gateways(session: AsyncSession, gateway_timeout: float) -> None:
    """Close the connections of gateways silent for good (see forget_gateways_after)."""
    dead = await close_silent_gateways(
        session, silent_since=utcnow() - forget_gateways_after(gateway_timeout)
    )
    if dead:
        log.warning("gateways %s stopped beating; their connections are closed", dead)
