"""Turning stored rows into API answers."""

from __future__ import annotations

from collections import defaultdict

from csms.db.models import ConnectorStatus, Station, StationConnector
from csms_commands.schemas import Connector, Evse, StationOut


def station_out(
    station: Station,
    statuses: list[ConnectorStatus],
    layout: list[StationConnector],
    online: set[str],
) -> StationOut:
    """The station with its EVSEs: registered connectors and reported ones, merged.

    `online`: the stations connected through a live gateway (see presence.online_stations).
    """
    connectors: dict[int, dict[int, Connector]] = defaultdict(dict)
    for item in layout:
        if item.station_id == station.id:
            connectors[item.evse_id][item.connector_id] = Connector(
                id=item.connector_id, status=None, status_at=None, type=item.connector_type
            )
    for reported in statuses:
        if reported.station_id == station.id:
            known = connectors[reported.evse_id].get(reported.connector_id)
            connectors[reported.evse_id][reported.connector_id] = Connector(
                id=reported.connector_id,
                status=reported.status,
                status_at=reported.status_at,
                type=known.type if known else None,
            )
    return StationOut(
        id=station.id,
        connected=station.id in online,
        last_seen_at=station.last_seen_at,
        boot_status=station.boot_status,
        registration_status=station.registration_status,
        security_profile=station.security_profile,
        heartbeat_interval=station.heartbeat_interval,
        last_boot_at=station.last_boot_at,
        vendor_name=station.vendor_name,
        model=station.model,
        serial_number=station.serial_number,
        firmware_version=station.firmware_version,
        created_at=station.created_at,
        evses=[
            Evse(id=evse_id, connectors=[by_id[key] for key in sorted(by_id)])
            for evse_id, by_id in sorted(connectors.items())
        ],
    )
