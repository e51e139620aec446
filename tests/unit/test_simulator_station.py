"""One simulated station against a scripted in-process CSMS: boot retries, CSMS CALLs, Reset."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request
from websockets.typing import Subprotocol

from csms.ocpp.frames import Call, CallError, CallResult, Frame, encode, parse_frame
from csms.simulator.config import SimulationConfig
from csms.simulator.station import SimulatedStation
from csms.simulator.station_socket import StationSocket
from csms.simulator.stats import SimulationStats

WAIT = 5.0


@dataclass
class FakeCsms:
    """Puts every frame a station sends into `inbox`; the test answers and calls by hand."""

    url: str = ""
    inbox: asyncio.Queue[tuple[ServerConnection, Frame]] = field(default_factory=asyncio.Queue)
    requests: list[Request] = field(default_factory=list)
    closed: asyncio.Queue[ServerConnection] = field(default_factory=asyncio.Queue)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def handle(self, websocket: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for raw in websocket:
                await self.inbox.put((websocket, parse_frame(raw)))
        await self.closed.put(websocket)

    def note(self, connection: ServerConnection, request: Request) -> None:
        self.requests.append(request)

    async def expect(self, action: str) -> tuple[ServerConnection, Call]:
        websocket, frame = await asyncio.wait_for(self.inbox.get(), WAIT)
        assert isinstance(frame, Call), frame
        assert frame.action == action, frame
        return websocket, frame

    async def answer(
        self, websocket: ServerConnection, call: Call, payload: dict[str, Any]
    ) -> None:
        await websocket.send(encode(CallResult(call.message_id, payload)))

    async def call(
        self, websocket: ServerConnection, action: str, payload: dict[str, Any]
    ) -> CallResult | CallError:
        message_id = f"csms-{next(self._ids)}"
        await websocket.send(encode(Call(message_id, action, payload)))
        _, frame = await asyncio.wait_for(self.inbox.get(), WAIT)
        assert isinstance(frame, CallResult | CallError), frame
        assert frame.message_id == message_id
        return frame

    async def boot(self, status: str = "Accepted", interval: int = 300) -> Call:
        websocket, call = await self.expect("BootNotification")
        now = "2024-01-01T00:00:00.000Z"
        await self.answer(
            websocket, call, {"currentTime": now, "interval": interval, "status": status}
        )
        return call

    async def statuses(self, count: int) -> list[dict[str, Any]]:
        payloads = []
        for _ in range(count):
            websocket, call = await self.expect("StatusNotification")
            await self.answer(websocket, call, {})
            payloads.append(call.payload)
        return payloads


@pytest.fixture
async def csms() -> AsyncIterator[FakeCsms]:
    fake = FakeCsms()
    async with serve(
        fake.handle,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("ocpp2.0.1")],
        process_request=fake.note,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ocpp"
        yield fake


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(station: SimulatedStation) -> AsyncIterator[None]:
    task = asyncio.create_task(station.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def config(csms: FakeCsms, **overrides: Any) -> SimulationConfig:
    settings: dict[str, Any] = {"url": csms.url, "reconnect_min": 0.05, "reconnect_max": 0.1}
    return SimulationConfig(**(settings | overrides))


async def test_boots_again_while_pending_then_reports_every_connector(csms: FakeCsms) -> None:
    stats = SimulationStats(1)
    station = SimulatedStation(1, config(csms, evses=2, connectors=2, password="s3cret"), stats)
    async with running(station):
        first = await csms.boot("Pending", interval=0)
        assert first.payload["reason"] == "PowerUp"
        assert first.payload["chargingStation"]["model"] == "SimStation"
        await csms.boot("Rejected", interval=0)
        await csms.boot()
        payloads = await csms.statuses(4)
        assert [(p["evseId"], p["connectorId"]) for p in payloads] == [
            (1, 1),
            (1, 2),
            (2, 1),
            (2, 2),
        ]
        assert {p["connectorStatus"] for p in payloads} == {"Available"}
        await eventually(lambda: stats.ready_once == 1)
    request = csms.requests[0]
    assert request.path == "/ocpp/SIM1"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"SIM1:s3cret").decode()
    assert (stats.pending, stats.rejected, stats.accepted, stats.ready_once) == (1, 1, 1, 1)
    assert (stats.sent, stats.results, stats.latency.count) == (7, 7, 7)


async def test_answers_csms_calls(csms: FakeCsms) -> None:
    stats = SimulationStats(1)
    station = SimulatedStation(1, config(csms), stats)
    async with running(station):
        await csms.boot()
        websocket, _ = await csms.expect("StatusNotification")  # left unanswered: the
        # station waits for it and answers the CSMS's CALLs meanwhile.

        answer = await csms.call(
            websocket, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 2}}
        )
        assert isinstance(answer, CallResult)
        assert answer.payload == {"status": "Accepted"}

        missing = await csms.call(
            websocket, "ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 9}}
        )
        assert isinstance(missing, CallResult)
        assert missing.payload == {"status": "Rejected"}

        unsupported = await csms.call(websocket, "GetVariables", {"getVariableData": []})
        assert isinstance(unsupported, CallError)
        assert unsupported.error_code == "NotSupported"

        unknown = await csms.call(websocket, "MakeCoffee", {})
        assert isinstance(unknown, CallError)
        assert unknown.error_code == "NotImplemented"

        trigger = await csms.call(websocket, "TriggerMessage", {"requestedMessage": "MeterValues"})
        assert isinstance(trigger, CallResult)
        assert trigger.payload == {"status": "NotImplemented"}
        assert (stats.sent, stats.results, stats.in_flight) == (2, 1, 1)
    assert (stats.csms_calls, stats.in_flight) == (5, 0)


async def test_change_availability_and_trigger_message_are_acted_upon(csms: FakeCsms) -> None:
    station = SimulatedStation(1, config(csms), SimulationStats(1))
    async with running(station):
        await csms.boot()
        # The CSMS CALL arrives while the station waits for its own CALL's answer.
        websocket, pending = await csms.expect("StatusNotification")
        answer = await csms.call(
            websocket, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 2}}
        )
        assert isinstance(answer, CallResult)
        await csms.answer(websocket, pending, {})
        await csms.statuses(1)
        (unavailable,) = await csms.statuses(1)
        assert (unavailable["evseId"], unavailable["connectorStatus"]) == (2, "Unavailable")

        answer = await csms.call(websocket, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert isinstance(answer, CallResult)
        websocket, heartbeat = await csms.expect("Heartbeat")
        await csms.answer(websocket, heartbeat, {"currentTime": "2024-01-01T00:00:00.000Z"})

        answer = await csms.call(
            websocket, "TriggerMessage", {"requestedMessage": "BootNotification"}
        )
        assert isinstance(answer, CallResult)
        assert answer.payload == {"status": "Accepted"}
        triggered = await csms.boot()
        assert triggered.payload["reason"] == "Triggered"


async def test_reset_reconnects_and_boots_with_remote_reset(csms: FakeCsms) -> None:
    stats = SimulationStats(1)
    station = SimulatedStation(1, config(csms, heartbeat_interval=0.05), stats)
    async with running(station):
        await csms.boot()
        await csms.statuses(2)
        websocket, heartbeat = await csms.expect("Heartbeat")
        await csms.answer(websocket, heartbeat, {"currentTime": "2024-01-01T00:00:00.000Z"})

        answer = await csms.call(websocket, "Reset", {"type": "Immediate"})
        assert isinstance(answer, CallResult)
        assert answer.payload == {"status": "Accepted"}
        assert await asyncio.wait_for(csms.closed.get(), WAIT) is websocket
        rebooted = await csms.boot()
        assert rebooted.payload["reason"] == "RemoteReset"
        await csms.statuses(2)
    assert (stats.resets, stats.reconnects, stats.disconnects) == (1, 1, 0)
    assert (stats.connected_once, stats.booted_once, stats.accepted) == (1, 1, 2)


async def test_an_evse_reset_reports_that_evse_again_without_rebooting(csms: FakeCsms) -> None:
    stats = SimulationStats(1)
    station = SimulatedStation(1, config(csms), stats)
    async with running(station):
        await csms.boot()
        await csms.statuses(1)
        websocket, last = await csms.expect("StatusNotification")
        await csms.answer(websocket, last, {})

        answer = await csms.call(websocket, "Reset", {"type": "OnIdle", "evseId": 2})
        assert isinstance(answer, CallResult)
        assert answer.payload == {"status": "Accepted"}
        (again,) = await csms.statuses(1)
        assert again["evseId"] == 2

        missing = await csms.call(websocket, "Reset", {"type": "OnIdle", "evseId": 9})
        assert isinstance(missing, CallResult)
        assert missing.payload == {"status": "Rejected"}
    assert (stats.resets, stats.reconnects, stats.disconnects) == (1, 0, 0)


async def test_a_dropped_socket_reconnects_without_booting_again(csms: FakeCsms) -> None:
    stats = SimulationStats(1)
    station = SimulatedStation(1, config(csms, heartbeat_interval=0.05), stats)
    async with running(station):
        await csms.boot()
        websocket, _ = await csms.inbox.get()
        await websocket.close()
        # Still Accepted as far as the CSMS knows: the next message is a heartbeat.
        websocket, heartbeat = await csms.expect("Heartbeat")
        await csms.answer(websocket, heartbeat, {"currentTime": "2024-01-01T00:00:00.000Z"})
    assert (stats.disconnects, stats.reconnects, stats.accepted) == (1, 1, 1)
    assert stats.ready_once == 0  # the first StatusNotification was never answered


async def test_an_unanswered_call_times_out(csms: FakeCsms) -> None:
    stats = SimulationStats(1)
    station = SimulatedStation(1, config(csms, call_timeout=0.1), stats)
    async with running(station):
        await csms.expect("BootNotification")
        second = await csms.boot()
        assert second.payload["reason"] == "PowerUp"
    assert stats.timeouts == 1
    assert stats.errors["timeout BootNotification"] == 1


async def test_connection_refused_is_counted_and_retried() -> None:
    stats = SimulationStats(1)
    refused = SimulationConfig(url="ws://127.0.0.1:9/ocpp", reconnect_min=0.01, reconnect_max=0.02)
    station = SimulatedStation(1, refused, stats)
    async with running(station):
        await asyncio.sleep(0.2)
    assert stats.connect_failures >= 2
    assert any(kind.startswith("ConnectionRefusedError") for kind in stats.errors)


class CountingStation(SimulatedStation):
    __slots__ = ("idle_waits",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.idle_waits = 0

    async def _idle(self, websocket: StationSocket, until: float) -> None:
        self.idle_waits += 1
        await super()._idle(websocket, until)


def test_a_paced_station_waits_once_per_message_on_uvloop() -> None:
    """uvloop's timers fire up to a millisecond early: a station must send then, not spin
    through idle waits until its clock reaches the exact time (it did, eight times a message)."""

    async def scenario() -> tuple[int, int]:
        fake = FakeCsms()
        async with serve(
            fake.handle, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]
        ) as server:
            fake.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocpp"
            stats = SimulationStats(1)
            station = CountingStation(1, config(fake, message_rate=50.0), stats)
            async with running(station):
                await fake.boot()
                deadline = asyncio.get_running_loop().time() + 1.0
                while asyncio.get_running_loop().time() < deadline:
                    websocket, call = await fake.inbox.get()
                    assert isinstance(call, Call)
                    await fake.answer(websocket, call, {})
        return station.idle_waits, stats.sent

    idle_waits, sent = uvloop.run(scenario())
    assert sent > 30
    assert idle_waits <= sent + 2
