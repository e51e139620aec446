"""Station side, end to end: boot, heartbeat, status, events, registration state, presence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from ocpp.exceptions import SecurityError

from tests.support.polling import eventually
from tests.support.processes import Deployment
from tests.support.station import connect_station, now

pytestmark = pytest.mark.e2e


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_boot_is_accepted_and_stored(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await connect_station(deployment.ocpp_url, station_id)
    try:
        response = await station.boot(
            serial_number="SN-1", firmware_version="1.2.3", model="AC-22", vendor_name="Acme"
        )
        assert response.status == "Accepted"
        assert response.interval == 300
        assert abs(_parse(response.current_time) - datetime.now(UTC)) < timedelta(seconds=5)
        assert response.current_time.endswith("Z")

        body = (await api.get(f"/stations/{station_id}")).json()
        assert body["id"] == station_id
        assert body["bootStatus"] == "Accepted"
        assert (body["vendorName"], body["model"]) == ("Acme", "AC-22")
        assert (body["serialNumber"], body["firmwareVersion"]) == ("SN-1", "1.2.3")
        assert body["connected"] is True
        assert body["lastSeenAt"] is not None
    finally:
        await station.stop()
    gone = await eventually(
        lambda: api.get(f"/stations/{station_id}"), lambda r: r.json()["connected"] is False
    )
    assert gone.status_code == 200


async def test_heartbeat_answers_current_time_and_counts_as_liveness(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await connect_station(deployment.ocpp_url, station_id)
    try:
        await station.boot()
        booted = (await api.get(f"/stations/{station_id}")).json()["lastSeenAt"]
        response = await station.heartbeat()
        assert abs(_parse(response.current_time) - datetime.now(UTC)) < timedelta(seconds=5)
        later = await eventually(
            lambda: api.get(f"/stations/{station_id}"),
            lambda r: _parse(r.json()["lastSeenAt"]) > _parse(booted),
        )
        assert later.json()["connected"] is True
    finally:
        await station.stop()


async def test_status_notifications_keep_the_newest_state_per_connector(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await connect_station(deployment.ocpp_url, station_id)
    base = datetime.now(UTC)
    stamp = lambda seconds: (base + timedelta(seconds=seconds)).isoformat()  # noqa: E731
    try:
        await station.boot()
        await station.status(1, 1, "Available", stamp(0))
        await station.status(1, 2, "Occupied", stamp(1))
        await station.status(2, 1, "Faulted", stamp(2))
        await station.status(1, 1, "Reserved", stamp(3))
        # Older than what is stored: kept in history, never made current.
        await station.status(1, 1, "Unavailable", stamp(-10))
        body = (
            await eventually(
                lambda: api.get(f"/stations/{station_id}"),
                lambda r: (
                    len(r.json()["evses"]) == 2
                    and r.json()["evses"][0]["connectors"][0]["status"] == "Reserved"
                ),
            )
        ).json()
        evses = {e["id"]: {c["id"]: c["status"] for c in e["connectors"]} for e in body["evses"]}
        assert evses == {1: {1: "Reserved", 2: "Occupied"}, 2: {1: "Faulted"}}
        connector = body["evses"][0]["connectors"][0]
        assert _parse(connector["statusAt"]) == base + timedelta(seconds=3)
    finally:
        await station.stop()


async def test_notify_event_items_are_stored_and_gaps_detected(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await connect_station(deployment.ocpp_url, station_id)
    try:
        await station.boot()
        await station.notify(seq_no=0, tbc=True, event_id=10, tech_code="E42")
        await station.notify(seq_no=2, tbc=False, event_id=12, cleared=True)  # 1 is lost
        await station.notify(seq_no=0, tbc=False, event_id=13)
        events = (
            await eventually(
                lambda: api.get(f"/stations/{station_id}/events"),
                lambda r: r.json()["total"] == 3,
            )
        ).json()["items"]
        by_id = {event["eventId"]: event for event in events}
        assert by_id[10]["techCode"] == "E42"
        assert by_id[10]["trigger"] == "Alerting"
        assert by_id[10]["actualValue"] == "true"
        assert by_id[10]["component"] == {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1}}
        assert by_id[10]["variable"] == {"name": "Problem"}
        assert "timestamp" in by_id[10]
        assert "cleared" not in by_id[10]
        assert by_id[12]["cleared"] is True
        assert (by_id[12]["seqNo"], by_id[12]["tbc"]) == (2, False)

        gaps = (
            await eventually(
                lambda: api.get(f"/stations/{station_id}/event-gaps"),
                lambda r: r.json()["total"] >= 1,
            )
        ).json()["items"]
        assert [(g["expectedSeqNo"], g["receivedSeqNo"]) for g in gaps] == [(1, 2)]
        assert gaps[0]["detectedAt"]
    finally:
        await station.stop()


async def test_unfinished_report_is_a_gap_when_a_new_report_starts(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await connect_station(deployment.ocpp_url, station_id)
    try:
        await station.boot()
        await station.notify(seq_no=0, tbc=True)
        await station.notify(seq_no=1, tbc=True)
        await station.notify(seq_no=0, tbc=False)  # the report of parts 0-1 never finished
        gaps = (
            await eventually(
                lambda: api.get(f"/stations/{station_id}/event-gaps"),
                lambda r: r.json()["total"] >= 1,
            )
        ).json()["items"]
        assert [(g["expectedSeqNo"], g["receivedSeqNo"]) for g in gaps] == [(2, 0)]
    finally:
        await station.stop()


async def test_station_never_accepted_gets_security_error(
    deployment: Deployment, station_id: str
) -> None:
    station = await connect_station(deployment.ocpp_url, station_id)
    try:
        with pytest.raises(SecurityError):
            await station.status(1, 1, "Available")
        with pytest.raises(SecurityError):
            await station.heartbeat()
        assert (await station.boot()).status == "Accepted"
        await station.status(1, 1, "Available")
    finally:
        await station.stop()


async def test_registration_survives_reconnect_without_new_boot(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    first = await connect_station(deployment.ocpp_url, station_id)
    await first.boot()
    await first.stop()
    # Reconnect, possibly through the other gateway, and send without booting again.
    second = await connect_station(deployment.ocpp_urls[-1], station_id)
    try:
        await second.status(1, 1, "Occupied", now())
        await second.heartbeat()
        await eventually(
            lambda: api.get(f"/stations/{station_id}"),
            lambda r: r.json()["connected"] and bool(r.json()["evses"]),
        )
    finally:
        await second.stop()


async def test_a_newer_connection_replaces_the_open_one_which_is_closed_with_4000(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    first = await connect_station(deployment.ocpp_url, station_id)
    second = None
    try:
        await first.boot()
        # The same station again, through the other gateway where there are two.
        second = await connect_station(deployment.ocpp_urls[-1], station_id)
        async with asyncio.timeout(15):
            await first._connection.wait_closed()
        assert first._connection.close_code == 4000
        await second.heartbeat()
        await second.status(1, 1, "Available", now())
        status = await eventually(
            lambda: api.get(f"/stations/{station_id}"),
            lambda r: r.json()["connected"] and bool(r.json()["evses"]),
        )
        assert status.json()["connected"] is True
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
