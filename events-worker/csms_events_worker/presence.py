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
    close_silent_gateways,
    record_connected,
    record_disconnected,
    record_seen,
)
from csms.timeutil import parse_datetime, utcnow

log = logging.getLogger(__name__)


async def handle_presence(session: AsyncSession, message: BusMessage) -> Body | None:
    if message.type == topology.STATION_CONNECTED:
        connected = cast(Connected, message.body)
        station = await record_connected(
            session,
            station_id=connected["stationId"],
            connection_id=connected["connectionId"],
            gateway_id=connected["gatewayId"],
            connected_at=parse_datetime(connected["connectedAt"]),
        )
        reply: ConnectedReply = {"bootStatus": station.boot_status}
        return dict(reply)
    if message.type == topology.STATION_DISCONNECTED:
        gone = cast(Disconnected, message.body)
        last_seen = gone.get("lastSeenAt")
        await record_disconnected(
            session,
            station_id=gone["stationId"],
            connection_id=gone["connectionId"],
            gateway_id=gone["gatewayId"],
            disconnected_at=parse_datetime(gone["disconnectedAt"]),
            last_seen_at=parse_datetime(last_seen) if last_seen else None,
        )
        return None
    if message.type == topology.STATION_SEEN:
        seen = cast(Seen, message.body)
        await record_seen(
            session,
            gateway_id=seen["gatewayId"],
            beat_at=parse_datetime(seen["beatAt"]),
            seen={station: parse_datetime(at) for station, at in seen["seen"].items()},
        )
        return None
    log.warning("ignoring presence message of unknown type %r", message.type)
    return None


async def close_dead_gateways(session: AsyncSession, gateway_timeout: float) -> None:
    """Stations of a gateway that stopped beating are offline: nobody holds their socket."""
    dead = await close_silent_gateways(
        session, silent_since=utcnow() - timedelta(seconds=gateway_timeout)
    )
    if dead:
        log.warning("gateways %s stopped beating; their stations are marked offline", dead)
