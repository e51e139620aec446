"""Presence consumer: connections, disconnections and the gateways' liveness beats."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus import topology
from csms.bus.envelopes import Connected, ConnectedReply, Disconnected, Seen
from csms.bus.message import Body, BusMessage
from csms.db.presence import (
    Connection,
    close_silent_gateways,
    record_connections,
    record_disconnected,
    record_seen,
)
from csms.timeutil import parse_datetime, utcnow

log = logging.getLogger(__name__)


async def handle_presence(session: AsyncSession, messages: list[BusMessage]) -> list[Body | None]:
    """A batch of presence events; connections are recorded together. The outcome does not
    depend on the order of connected and disconnected events (see docs/adr/0003)."""
    connected = [m for m in messages if m.type == topology.STATION_CONNECTED]
    registered = await record_connections(
        session,
        [
            Connection(
                connection_id=body["connectionId"],
                station_id=body["stationId"],
                gateway_id=body["gatewayId"],
                connected_at=parse_datetime(body["connectedAt"]),
            )
            for body in (cast(Connected, m.body) for m in connected)
        ],
    )
    replies: list[Body | None] = []
    for message in messages:
        if message.type == topology.STATION_CONNECTED:
            boot_status, profile = registered.get(message.body["stationId"], (None, 0))
            reply: ConnectedReply = {"bootStatus": boot_status, "securityProfile": profile}
            replies.append(dict(reply))
            continue
        if message.type == topology.STATION_DISCONNECTED:
            await _disconnected(session, cast(Disconnected, message.body))
        elif message.type == topology.STATION_SEEN:
            await _seen(session, cast(Seen, message.body))
        else:
            log.warning("ignoring presence message of unknown type %r", message.type)
        replies.append(None)
    return replies


async def _disconnected(session: AsyncSession, gone: Disconnected) -> None:
    last_seen = gone.get("lastSeenAt")
    await record_disconnected(
        session,
        station_id=gone["stationId"],
        connection_id=gone["connectionId"],
        gateway_id=gone["gatewayId"],
        disconnected_at=parse_datetime(gone["disconnectedAt"]),
        last_seen_at=parse_datetime(last_seen) if last_seen else None,
    )


async def _seen(session: AsyncSession, seen: Seen) -> None:
    await record_seen(
        session,
        gateway_id=seen["gatewayId"],
        beat_at=parse_datetime(seen["beatAt"]),
        seen={station: parse_datetime(at) for station, at in seen["seen"].items()},
    )


async def close_dead_gateways(session: AsyncSession, gateway_timeout: float) -> None:
    """Stations of a gateway that stopped beating are offline: nobody holds their socket."""
    dead = await close_silent_gateways(
        session, silent_since=utcnow() - timedelta(seconds=gateway_timeout)
    )
    if dead:
        log.warning("gateways %s stopped beating; their stations are marked offline", dead)
