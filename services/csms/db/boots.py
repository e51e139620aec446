"""BootNotification records and the boot decision (Accepted / Pending / Rejected)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.models import BootNotification, Command, Station
from csms.db.presence import ensure_station


@dataclass(frozen=True, slots=True)
class BootPolicy:
    """How boots are answered where the operator has not decided for the station."""

    unknown_station_status: str
    heartbeat_interval: int
    retry_interval: int


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: str
    interval: int


async def record_boot(
    session: AsyncSession,
    *,
    station_id: str,
    connection_id: str,
    ocpp_message_id: str,
    payload: dict[str, Any],
    received_at: datetime,
    policy: BootPolicy,
) -> BootDecision:
    """Store a boot, decide its answer, and close the resets it completes.

    A redelivered or retransmitted boot (same connection and message id) gets the answer
    recorded the first time and changes nothing.
    """
    await ensure_station(session, station_id=station_id, seen_at=received_at)
    # The row lock orders this boot against a concurrent command answer for the same station.
    station = (
        await session.scalars(select(Station).where(Station.id == station_id).with_for_update())
    ).one()
    earlier = await session.scalar(
        select(BootNotification).where(
            BootNotification.station_id == station_id,
            BootNotification.connection_id == connection_id,
            BootNotification.ocpp_message_id == ocpp_message_id,
        )
    )
    if earlier is not None:
        return BootDecision(earlier.status, earlier.interval)

    status = station.registration_status or policy.unknown_station_status
    if status == "Accepted":
        interval = station.heartbeat_interval or policy.heartbeat_interval
    else:
        interval = policy.retry_interval
    charging_station: dict[str, Any] = payload["chargingStation"]
    modem: dict[str, Any] = charging_station.get("modem", {})
    boot_data = {
        "vendor_name": charging_station["vendorName"],
        "model": charging_station["model"],
        "serial_number": charging_station.get("serialNumber"),
        "firmware_version": charging_station.get("firmwareVersion"),
        "modem_iccid": modem.get("iccid"),
        "modem_imsi": modem.get("imsi"),
    }
    session.add(
        BootNotification(
            station_id=station_id,
            connection_id=connection_id,
            ocpp_message_id=ocpp_message_id,
            reason=payload["reason"],
            status=status,
            interval=interval,
            received_at=received_at,
            **boot_data,
        )
    )
    if station.last_boot_at is None or station.last_boot_at <= received_at:
        for key, value in boot_data.items():
            setattr(station, key, value)
        station.boot_status = status
        station.last_boot_at = received_at
    if station.last_seen_at is None or station.last_seen_at < received_at:
        station.last_seen_at = received_at
    # The station booted again: the resets it acknowledged are done.
    await session.execute(
        update(Command)
        .where(
            Command.station_id == station_id,
            Command.action == "Reset",
            Command.open.is_(True),
            Command.created_at <= received_at,
        )
        .values(open=False, closed_at=received_at)
    )
    return BootDecision(status, interval)


async def boot_after(session: AsyncSession, *, station_id: str, since: datetime) -> datetime | None:
    """When the station first booted after `since`, if it did."""
    result: datetime | None = await session.scalar(
        select(BootNotification.received_at)
        .where(BootNotification.station_id == station_id, BootNotification.received_at >= since)
        .order_by(BootNotification.received_at)
        .limit(1)
    )
    return result
