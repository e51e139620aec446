"""BootNotification consumer: records boots and decides Accepted / Pending / Rejected."""

from __future__ import annotations

from csms.bus.envelopes import BootReply, StationMessage
from csms.db.boots import BootPolicy, BootReport
from csms.db.registration_writes import RegistrationWrites
from csms.timeutil import parse_datetime


async def handle_boot_notifications(
    writes: RegistrationWrites, messages: list[StationMessage], policy: BootPolicy
) -> list[BootReply]:
    """A batch of boots; one reply (the decision) per message, in order."""
    decisions = await writes.record_boots(
        [
            BootReport(
                station_id=message["stationId"],
                connection_id=message["connectionId"],
                ocpp_message_id=message["ocppMessageId"],
                payload=message["payload"],
                received_at=parse_datetime(message["receivedAt"]),
            )
            for message in messages
        ],
        policy,
    )
    return [{"status": d.status, "interval": d.interval} for d in decisions]
