"""Operator side, end to end: Reset and ChangeAvailability round trips and every HTTP error."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.polling import eventually
from tests.support.processes import Deployment
from tests.support.station import Station, connect_station

pytestmark = pytest.mark.e2e


async def _booted(url: str, station_id: str) -> Station:
    station = await connect_station(url, station_id)
    await station.boot()
    return station


async def test_reset_round_trip_stays_open_until_the_station_boots_again(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    try:
        response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "Accepted"}
        assert station.received[0] == ("Reset", {"type": "OnIdle"})

        # The station reboots (reason RemoteReset); that boot closes the command.
        closed = await eventually(
            lambda: api.get(f"/stations/{station_id}/commands"),
            lambda r: r.json()["items"][0]["closedAt"] is not None,
        )
        command = closed.json()["items"][0]
        assert command["action"] == "Reset"
        assert command["request"] == {"type": "OnIdle"}
        assert command["outcome"] == "answered"
        assert command["response"] == {"status": "Accepted"}
        assert command["open"] is False
        assert command["answeredAt"] is not None
    finally:
        await station.stop()


async def test_reset_scheduled_stays_open(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    station.answer = "Scheduled"
    try:
        response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
        assert response.json() == {"status": "Scheduled"}
        command = (await api.get(f"/stations/{station_id}/commands")).json()["items"][0]
        assert (command["open"], command["closedAt"]) == (True, None)
        await station.boot(reason="ScheduledReset")
        await eventually(
            lambda: api.get(f"/stations/{station_id}/commands"),
            lambda r: r.json()["items"][0]["open"] is False,
        )
    finally:
        await station.stop()


async def test_reset_of_one_evse_reboots_no_station_so_it_is_not_left_open(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    station.reboot_on_reset = False
    try:
        response = await api.post(
            f"/stations/{station_id}/reset", json={"type": "Immediate", "evseId": 1}
        )
        assert response.json() == {"status": "Accepted"}
        assert station.received[0] == ("Reset", {"type": "Immediate", "evseId": 1})
        command = (await api.get(f"/stations/{station_id}/commands")).json()["items"][0]
        assert (command["open"], command["outcome"]) == (False, "answered")
    finally:
        await station.stop()


@pytest.mark.parametrize(
    "body",
    [
        {"operationalStatus": "Inoperative"},
        {"operationalStatus": "Operative", "evse": {"id": 1}},
        {"operationalStatus": "Inoperative", "evse": {"id": 2, "connectorId": 1}},
    ],
    ids=["station", "evse", "connector"],
)
async def test_change_availability_reaches_the_station(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str, body: dict[str, object]
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    station.answer = "Rejected"
    try:
        response = await api.post(f"/stations/{station_id}/availability", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "Rejected"}
        assert station.received == [("ChangeAvailability", body)]
    finally:
        await station.stop()


async def test_commands_reach_stations_on_every_gateway(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    stations = [
        await _booted(url, f"{station_id}-gw{number}")
        for number, url in enumerate(deployment.ocpp_urls)
    ]
    try:
        for station in stations:
            response = await api.post(
                f"/stations/{station.id}/availability", json={"operationalStatus": "Operative"}
            )
            assert response.json() == {"status": "Accepted"}
            assert len(station.received) == 1
    finally:
        for station in stations:
            await station.stop()


async def test_station_moving_to_another_gateway_keeps_one_live_socket(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    old = await _booted(deployment.ocpp_urls[0], station_id)
    new = await connect_station(deployment.ocpp_urls[-1], station_id)
    try:
        # The newest connection wins: the old socket is closed by the gateway holding it.
        await asyncio.wait_for(old._connection.wait_closed(), timeout=10)
        await new.heartbeat()
        response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
        assert response.json() == {"status": "Accepted"}
        assert len(new.received) == 1
        assert old.received == []
        await eventually(
            lambda: api.get(f"/stations/{station_id}"), lambda r: r.json()["connected"] is True
        )
    finally:
        await new.stop()
        await old.stop()


async def test_unknown_station_is_404(api: httpx.AsyncClient, station_id: str) -> None:
    response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
    assert response.status_code == 404
    assert station_id in response.json()["detail"]
    assert (await api.get(f"/stations/{station_id}")).status_code == 404
    assert (await api.get(f"/stations/{station_id}/events")).status_code == 404


async def test_known_but_disconnected_station_is_409_at_once(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    await station.stop()
    await eventually(
        lambda: api.get(f"/stations/{station_id}"), lambda r: r.json()["connected"] is False
    )
    started = asyncio.get_running_loop().time()
    response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
    assert response.status_code == 409
    assert asyncio.get_running_loop().time() - started < 2
    commands = (await api.get(f"/stations/{station_id}/commands")).json()["items"]
    assert commands[0]["outcome"] == "notConnected"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("reset", {"type": "Sometimes"}),
        ("reset", {}),
        ("reset", {"type": "OnIdle", "evseId": "1"}),
        ("reset", {"type": "OnIdle", "colour": "red"}),
        ("availability", {"operationalStatus": "Broken"}),
        ("availability", {"operationalStatus": "Operative", "evse": {"connectorId": 1}}),
    ],
)
async def test_invalid_body_is_422(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str, path: str, body: object
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    try:
        response = await api.post(f"/stations/{station_id}/{path}", json=body)
        assert response.status_code == 422, response.text
        assert station.received == []
    finally:
        await station.stop()


async def test_station_call_error_is_502_with_its_code(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    station.answer = "error"
    try:
        response = await api.post(f"/stations/{station_id}/reset", json={"type": "OnIdle"})
        assert response.status_code == 502
        body = response.json()
        assert body["errorCode"] == "GenericError"
        assert body["errorDescription"] == "Reset refused by test station"
        command = (await api.get(f"/stations/{station_id}/commands")).json()["items"][0]
        assert (command["outcome"], command["errorCode"]) == ("callError", "GenericError")
    finally:
        await station.stop()


async def test_no_answer_is_504_and_a_late_answer_never_confuses_the_next_command(
    deployment: Deployment, api: httpx.AsyncClient, station_id: str
) -> None:
    station = await _booted(deployment.ocpp_url, station_id)
    station.answer = "silent"
    station.late_answer_delay = 2.0
    try:
        response = await api.post(
            f"/stations/{station_id}/availability",
            json={"operationalStatus": "Inoperative"},
            params={"timeout": 1},
        )
        assert response.status_code == 504
        station.answer = "Rejected"
        # The late "Accepted" for the first command arrives meanwhile and must be ignored.
        response = await api.post(
            f"/stations/{station_id}/availability", json={"operationalStatus": "Operative"}
        )
        assert response.status_code == 200
        assert response.json() == {"status": "Rejected"}
        commands = (await api.get(f"/stations/{station_id}/commands")).json()["items"]
        assert [c["outcome"] for c in commands] == ["answered", "timeout"]
    finally:
        await station.stop()


async def test_bad_timeout_is_422(api: httpx.AsyncClient, station_id: str) -> None:
    for timeout in ("0", "-1", "soon", "100000"):
        response = await api.post(
            f"/stations/{station_id}/reset", json={"type": "OnIdle"}, params={"timeout": timeout}
        )
        assert response.status_code == 422, (timeout, response.text)
