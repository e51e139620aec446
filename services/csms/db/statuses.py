"""Connector status: the history of StatusNotifications and each connector's current status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.dialect import insert
from csms.db.models import ConnectorStatus, StatusNotification


async def record_status(
    session: AsyncSession,
    *,
    station_id: str,
    evse_id: int,
    connector_id: int,
    status: str,
    status_at: datetime,
    received_at: datetime,
) -> None:
    """Keep the notification in the history; make it current unless a newer one is stored.

    Ordering is by the station's own timestamp, so a late redelivery never overwrites newer
    state, and a repeated notification is stored once.
    """
    await session.execute(
        insert(session, StatusNotification)
        .values(
            station_id=station_id,
            evse_id=evse_id,
            connector_id=connector_id,
            status=status,
            status_at=status_at,
            received_at=received_at,
        )
        .on_conflict_do_nothing(
            index_elements=["station_id", "evse_id", "connector_id", "status_at", "status"]
        )
    )
    upsert = insert(session, ConnectorStatus).values(
        station_id=station_id,
        evse_id=evse_id,
        connector_id=connector_id,
        status=status,
        status_at=status_at,
        updated_at=received_at,
    )
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=["station_id", "evse_id", "connector_id"],
            set_={
                "status": upsert.excluded.status,
                "status_at": upsert.excluded.status_at,
                "updated_at": upsert.excluded.updated_at,
            },
            where=ConnectorStatus.__table__.c.status_at <= upsert.excluded.status_at,
        )
    )
