"""Registration state across reconnects and gateways (profile 0 endpoint, open API)."""

from __future__ import annotations

import contextlib

import httpx
import pytest
import websockets
from ocpp.exceptions import SecurityError

from tests.support.polling import eventually
from tests.support.processes import Deployment
from tests.support.raw import connect_raw, exchange
from tests.support.station import connect_station

pytestmark = pytest.mark.e2e


async def _value(value: object) -> object:
    return value


async def test_pending_holds_across_reconnects_and_gateways_until_approved(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    created = await api.post("/stations", json={"id": station_id, "registrationStatus": "Pending"})
    assert created.status_code == 201, created.text
    first = await connect_station(deployment.ocpp_urls[0], station_id)
    response = await first.boot()
    assert (response.status, response.interval) == ("Pending", 60)
    with pytest.raises(SecurityError):
        await first.status(1, 1, "Available")
    await first.stop()

    second = await connect_station(deployment.ocpp_urls[-1], station_id)
    try:
        with pytest.raises(SecurityError):
            await second.heartbeat()
        approved = await api.patch(
            f"/stations/{station_id}", json={"registrationStatus": "Accepted"}
        )
        assert approved.json()["registrationStatus"] == "Accepted"
        assert approved.json()["bootTriggered"] == "Accepted"
        await eventually(lambda: _value(second.last_boot_status), lambda s: s == "Accepted")
        assert second.boot_reasons == ["Triggered"]
        await second.status(1, 1, "Available")
        body = (await api.get(f"/stations/{station_id}")).json()
        assert (body["bootStatus"], body["registrationStatus"]) == ("Accepted", "Accepted")
    finally:
        await second.stop()


async def test_rejected_station_is_answered_rejected_and_sent_nothing(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    await api.post("/stations", json={"id": station_id, "registrationStatus": "Rejected"})
    station = await connect_station(deployment.ocpp_urls[-1], station_id)
    try:
        assert (await station.boot()).status == "Rejected"
        with pytest.raises(SecurityError):
            await station.heartbeat()
        for path, body in [
            ("reset", {"type": "OnIdle"}),
            ("availability", {"operationalStatus": "Operative"}),
            ("trigger-message", {"requestedMessage": "BootNotification"}),
        ]:
            response = await api.post(f"/stations/{station_id}/{path}", json=body)
            assert response.status_code == 409, (path, response.text)
        assert station.received == []
        commands = (await api.get(f"/stations/{station_id}/commands")).json()["items"]
        assert {c["outcome"] for c in commands} == {"notAllowed"}
    finally:
        await station.stop()


async def test_station_registered_for_a_stronger_profile_is_refused_by_a_profile_0_endpoint(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    created = await api.post(
        "/stations",
        json={"id": station_id, "securityProfile": 1, "password": "a-strong-password-16"},
    )
    assert created.status_code == 201
    connection = await connect_raw(deployment.ocpp_url, station_id)
    boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    with contextlib.suppress(websockets.ConnectionClosed):
        answer = await exchange(connection, [2, "b1", "BootNotification", boot])
        assert answer[:3] == [4, "b1", "SecurityError"]
    await connection.wait_closed()
    assert connection.close_code == 1008
    body = (await api.get(f"/stations/{station_id}")).json()
    assert body["bootStatus"] is None
