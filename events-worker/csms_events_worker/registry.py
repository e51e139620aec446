"""Registry consumer: answers the gateways' credential look-ups."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import CredentialsReply
from csms.bus.message import Body, BusMessage
from csms.db.registry import credentials_of_many


async def handle_credentials(
    session: AsyncSession, messages: list[BusMessage]
) -> list[Body | None]:
    """A batch of look-ups in one query."""
    station_ids = [str(message.body.get("stationId")) for message in messages]
    found = await credentials_of_many(session, station_ids=station_ids)
    replies: list[Body | None] = []
    for station_id in station_ids:
        credentials = found[station_id]
        reply: CredentialsReply = {
            "registered": credentials.registered,
            "securityProfile": credentials.security_profile,
            "passwordHash": credentials.password_hash,
            "registrationStatus": credentials.registration_status,
        }
        replies.append(dict(reply))
    return replies
