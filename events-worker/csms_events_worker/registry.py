"""Registry consumer: answers the gateways' credential look-ups."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from csms.bus.envelopes import CredentialsReply
from csms.bus.message import Body, BusMessage
from csms.db.registry import credentials_of


async def handle_credentials(session: AsyncSession, message: BusMessage) -> Body:
    station_id: Any = message.body.get("stationId")
    credentials = await credentials_of(session, station_id=str(station_id))
    reply: CredentialsReply = {
        "registered": credentials.registered,
        "securityProfile": credentials.security_profile,
        "passwordHash": credentials.password_hash,
        "registrationStatus": credentials.registration_status,
    }
    return dict(reply)
