"""The station registry (operators' decisions) and the API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.models import ApiToken, Station, StationConnector


class AlreadyRegistered(Exception):
    """The station is registered already; change it instead."""


@dataclass(frozen=True, slots=True)
class ConnectorLayout:
    evse_id: int
    connector_id: int
    connector_type: str | None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a gateway needs to admit a connection."""

    registered: bool
    security_profile: int
    password_hash: str | None
    registration_status: str | None


async def register_station(
    session: AsyncSession,
    *,
    station_id: str,
    security_profile: int,
    password_hash: str | None,
    registration_status: str,
    heartbeat_interval: int | None,
    layout: list[ConnectorLayout],
    at: datetime,
) -> Station:
    """Register a station; one only seen so far (never registered) becomes registered."""
    station = await session.get(Station, station_id, with_for_update=True)
    if station is not None and station.registration_status is not None:
        raise AlreadyRegistered(station_id)
    if station is None:
        station = Station(id=station_id, connected=False, created_at=at)
        session.add(station)
    station.registration_status = registration_status
    station.security_profile = security_profile
    station.password_hash = password_hash
    station.heartbeat_interval = heartbeat_interval
    station.registered_at = at
    await replace_layout(session, station_id=station_id, layout=layout)
    return station


async def replace_layout(
    session: AsyncSession, *, station_id: str, layout: list[ConnectorLayout]
) -> None:
    await session.execute(delete(StationConnector).where(StationConnector.station_id == station_id))
    session.add_all(
        StationConnector(
            station_id=station_id,
            evse_id=item.evse_id,
            connector_id=item.connector_id,
            connector_type=item.connector_type,
        )
        for item in layout
    )


async def layout_of(session: AsyncSession, *, station_ids: list[str]) -> list[StationConnector]:
    if not station_ids:
        return []
    rows = await session.scalars(
        select(StationConnector).where(StationConnector.station_id.in_(station_ids))
    )
    return list(rows.all())


async def remove_station(session: AsyncSession, *, station_id: str) -> bool:
    """Forget the station's registration and layout; its history stays. False if unknown."""
    station = await session.get(Station, station_id)
    if station is None:
        return False
    await session.execute(delete(StationConnector).where(StationConnector.station_id == station_id))
    await session.delete(station)
    return True


async def credentials_of(session: AsyncSession, *, station_id: str) -> Credentials:
    return (await credentials_of_many(session, station_ids=[station_id]))[station_id]


async def credentials_of_many(
    session: AsyncSession, *, station_ids: list[str]
) -> dict[str, Credentials]:
    """Credentials of each station id (unregistered ones included), in one query."""
    rows = await session.execute(
        select(
            Station.id,
            Station.registration_status,
            Station.security_profile,
            Station.password_hash,
        ).where(Station.id.in_(sorted(set(station_ids))))
    )
    found = {row[0]: Credentials(row[1] is not None, row[2], row[3], row[1]) for row in rows}
    unknown = Credentials(False, 0, None, None)
    return {station_id: found.get(station_id, unknown) for station_id in station_ids}


async def add_api_token(
    session: AsyncSession, *, token_id: str, name: str, token_hash: str, scope: str, at: datetime
) -> ApiToken:
    token = ApiToken(id=token_id, name=name, token_hash=token_hash, scope=scope, created_at=at)
    session.add(token)
    return token


async def find_api_token(session: AsyncSession, *, token_hash: str) -> ApiToken | None:
    token: ApiToken | None = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    )
    return token


async def any_api_token(session: AsyncSession) -> bool:
    found = await session.scalar(select(ApiToken.id).where(ApiToken.revoked_at.is_(None)).limit(1))
    return found is not None


async def list_api_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.scalars(select(ApiToken).order_by(ApiToken.created_at))).all())


async def revoke_api_token(session: AsyncSession, *, token_id: str, at: datetime) -> bool:
    token = await session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = at
    return True
