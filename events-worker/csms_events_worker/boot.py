"""BootNotification consumer: records the boot and decides Accepted / Pending / Rejected."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import BootReply, StationMessage
from csms.db.boots import BootPolicy, record_boot
from csms.timeutil import parse_datetime


async def handle_boot_notification(
    session: AsyncSession, message: StationMessage, policy: BootPolicy
) -> BootReply:
    decision = await record_boot(
        session,
        station_id=message["stationId"],
        connection_id=message["connectionId"],
        ocpp_message_id=message["ocppMessageId"],
        payload=message["payload"],
        received_at=parse_datetime(message["receivedAt"]),
        policy=policy,
    )
    return {"status": decision.status, "interval": decision.interval}
