"""OCPP-J rules at the socket: handshake, identity, and a CALLERROR for every malformed frame."""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.support.processes import Deployment
from tests.support.raw import connect_raw, exchange
from tests.support.station import connect_station

pytestmark = pytest.mark.e2e

STATUS = {
    "timestamp": "2026-01-01T00:00:00Z",
    "connectorStatus": "Available",
    "evseId": 1,
    "connectorId": 1,
}


@pytest.fixture
async def booted_raw(deployment: Deployment, station_id: str):  # type: ignore[no-untyped-def]
    station = await connect_station(deployment.ocpp_url, station_id)
    await station.boot()
    await station.stop()
    connection = await connect_raw(deployment.ocpp_url, station_id)
    yield connection
    await connection.close()


@pytest.mark.parametrize(
    ("frame", "expected_id", "code"),
    [
        ("this is not json", "-1", "FormatViolation"),
        ('{"an": "object"}', "-1", "RpcFrameworkError"),
        ("[]", "-1", "RpcFrameworkError"),
        ([2, 17, "Heartbeat", {}], "-1", "RpcFrameworkError"),
        ([2, "x" * 37, "Heartbeat", {}], "x" * 37, "RpcFrameworkError"),
        ([2, "m1", "Heartbeat"], "m1", "RpcFrameworkError"),
        ([2, "m2", "Heartbeat", []], "m2", "FormatViolation"),
        ([7, "m3", "Heartbeat", {}], "m3", "MessageTypeNotSupported"),
        ([5, "m4", {}], "m4", "MessageTypeNotSupported"),
        (["2", "m5", "Heartbeat", {}], "m5", "RpcFrameworkError"),
        ([2, "m6", "FlyToTheMoon", {}], "m6", "NotImplemented"),
        ([2, "m7", "Authorize", {"idToken": {"idToken": "a", "type": "ISO14443"}}], "m7", "NotSupported"),
        ([2, "m8", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z"}], "m8", "OccurrenceConstraintViolation"),
        ([2, "m9", "StatusNotification", STATUS | {"evseId": "one"}], "m9", "TypeConstraintViolation"),
        ([2, "m10", "StatusNotification", STATUS | {"connectorStatus": "Sleepy"}], "m10", "PropertyConstraintViolation"),
        ([2, "m11", "StatusNotification", STATUS | {"colour": "red"}], "m11", "FormatViolation"),
        ([2, "m12", "NotifyEvent", {"generatedAt": "2026-01-01T00:00:00Z", "seqNo": 0, "eventData": []}], "m12", "OccurrenceConstraintViolation"),
    ],
)  # fmt: skip
async def test_malformed_frames_get_the_right_call_error_and_the_connection_survives(
    booted_raw: websockets.ClientConnection, frame: object, expected_id: str, code: str
) -> None:
    answer = await exchange(booted_raw, frame)  # type: ignore[arg-type]
    assert answer[:3] == [4, expected_id, code]
    assert isinstance(answer[3], str)
    assert isinstance(answer[4], dict)
    heartbeat = await exchange(booted_raw, [2, "after", "Heartbeat", {}])
    assert heartbeat[:2] == [3, "after"]
    assert heartbeat[2]["currentTime"].endswith("Z")


async def test_call_results_for_unknown_calls_are_ignored(
    booted_raw: websockets.ClientConnection,
) -> None:
    await booted_raw.send(json.dumps([3, "never-sent", {"status": "Accepted"}]))
    await booted_raw.send(json.dumps([4, "never-sent", "GenericError", "", {}]))
    answer = await exchange(booted_raw, [2, "hb", "Heartbeat", {}])
    assert answer[:2] == [3, "hb"]


async def test_before_boot_only_boot_notification_is_served(
    deployment: Deployment, station_id: str
) -> None:
    connection = await connect_raw(deployment.ocpp_url, station_id)
    try:
        answer = await exchange(connection, [2, "s1", "StatusNotification", STATUS])
        assert answer[:3] == [4, "s1", "SecurityError"]
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
        answer = await exchange(connection, [2, "b1", "BootNotification", boot])
        assert answer[0] == 3
        assert answer[2]["status"] == "Accepted"
        answer = await exchange(connection, [2, "s2", "StatusNotification", STATUS])
        assert answer == [3, "s2", {}]
    finally:
        await connection.close()


async def test_station_offering_no_supported_subprotocol_is_closed_after_handshake(
    deployment: Deployment, station_id: str
) -> None:
    connection = await websockets.connect(
        f"{deployment.ocpp_url}/{station_id}", subprotocols=["ocpp1.6"]
    )
    assert connection.subprotocol is None
    await connection.wait_closed()
    assert connection.close_code == 1002


async def test_subprotocol_is_negotiated_from_the_station_preferences(
    deployment: Deployment, station_id: str
) -> None:
    connection = await websockets.connect(
        f"{deployment.ocpp_url}/{station_id}", subprotocols=["ocpp2.1", "ocpp2.0.1", "ocpp1.6"]
    )
    try:
        assert connection.subprotocol == "ocpp2.0.1"
        assert "permessage-deflate" in connection.response.headers.get(
            "Sec-WebSocket-Extensions", ""
        )
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ocpp/" + "A" * 49, 400),
        ("/ocpp/bad:colon", 400),
        ("/ocpp/sp%20ace", 400),
        ("/elsewhere/CS1", 404),
        ("/ocpp/", 404),
    ],
)
async def test_bad_identity_or_path_is_refused_before_the_upgrade(
    deployment: Deployment, path: str, status: int
) -> None:
    base = deployment.ocpp_url.removesuffix("/ocpp")
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"{base}{path}", subprotocols=["ocpp2.0.1"])
    assert refused.value.response.status_code == status


async def test_percent_encoded_identity_is_decoded(deployment: Deployment, station_id: str) -> None:
    station = await connect_station(deployment.ocpp_url, f"{station_id}%2Ax")
    try:
        assert (await station.boot()).status == "Accepted"
    finally:
        await station.stop()


async def test_frame_over_the_size_limit_closes_with_1009(
    booted_raw: websockets.ClientConnection,
) -> None:
    await booted_raw.send(json.dumps([2, "big", "Heartbeat", {"pad": "x" * 70_000}]))
    await booted_raw.wait_closed()
    assert booted_raw.close_code == 1009
