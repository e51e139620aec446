"""The gateway's station socket against websockets' own client: messages both ways, messages
before the session starts, limits, pings, both ways of closing, timeouts, and a closed
connection freed without a garbage collection."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request

from csms_gateway.station_socket import StationSocket
from tests.support.gateway_sockets import OCPP, listening

WAIT = 5.0


async def echo(socket: StationSocket, _request: Request) -> None:
    def answer(message: str | bytes) -> None:
        socket.send(message if isinstance(message, str) else message.decode())

    socket.start(answer)
    await socket.wait_closed()


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_messages_go_both_ways(compression: str | None) -> None:
    async with listening(echo) as server:
        async with connect(server.url(), subprotocols=[OCPP], compression=compression) as client:
            assert client.subprotocol == OCPP
            for text in ('[2,"1","Heartbeat",{}]', "é" * 5000):
                await client.send(text)
                assert await asyncio.wait_for(client.recv(), WAIT) == text


async def test_a_fragmented_message_arrives_whole() -> None:
    async with listening(echo) as server:
        async with connect(server.url(), subprotocols=[OCPP]) as client:
            await client.send(iter(["[2,", '"1",', '"Heartbeat",{}]']))
            assert await asyncio.wait_for(client.recv(), WAIT) == '[2,"1","Heartbeat",{}]'


async def test_messages_sent_before_the_session_starts_wait_for_it_in_order() -> None:
    started = asyncio.Event()

    async def late(socket: StationSocket, request: Request) -> None:
        await started.wait()
        await echo(socket, request)

    async with listening(late) as server:
        async with connect(server.url(), subprotocols=[OCPP]) as client:
            texts = [f"message {number}" for number in range(40)]
            for text in texts:
                await client.send(text)
            await asyncio.sleep(0.1)
            started.set()
            assert [await asyncio.wait_for(client.recv(), WAIT) for _ in texts] == texts


async def test_a_socket_never_started_still_completes_its_closing_handshake() -> None:
    took: list[float] = []

    async def refuse_late(socket: StationSocket, _request: Request) -> None:
        await asyncio.sleep(0.2)  # enough messages meanwhile to pause reading
        started = asyncio.get_running_loop().time()
        await socket.close(1002, "subprotocol ocpp2.0.1 required")
        took.append(asyncio.get_running_loop().time() - started)

    async with listening(refuse_late) as server:
        async with connect(server.url(), subprotocols=[OCPP]) as client:
            for number in range(40):
                await client.send(f"message {number}")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), WAIT)
        assert _code_received(closed.value) == 1002
        async with asyncio.timeout(WAIT):
            while not took:
                await asyncio.sleep(0.01)
    # The station's close frame was read, not waited out for the close timeout (10 s).
    assert took[0] < 2.0


async def test_the_request_and_subprotocol_reach_the_gateway() -> None:
    seen: list[tuple[str, str | None, Any]] = []

    async def note(socket: StationSocket, request: Request) -> None:
        seen.append((request.path, request.headers.get("Authorization"), socket.subprotocol))
        await socket.close(1000)

    async with listening(note) as server:
        headers = {"Authorization": "Basic eDp5"}
        async with connect(server.url("CS9"), additional_headers=headers) as client:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), WAIT)
    # No subprotocol offered: the handshake completes without one.
    assert seen == [("/ocpp/CS9", "Basic eDp5", None)]


async def test_a_refusal_is_sent_with_its_status_and_headers() -> None:
    refused: list[bool] = []

    async def refuse(socket: StationSocket, request: Request) -> None:
        refused.append(True)

    async def unreachable(socket: StationSocket, request: Request) -> None:
        raise AssertionError("accepted")

    def on_request(socket: StationSocket, request: Request) -> None:
        response = socket.reject(503, "busy, retry later\n")
        response.headers["Retry-After"] = "7"
        socket.respond(response)

    async with listening(unreachable, on_request=on_request) as server:
        with pytest.raises(InvalidStatus) as raised:
            async with connect(server.url(), subprotocols=[OCPP]):
                pass
    response = raised.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.body == b"busy, retry later\n"


async def test_invalid_utf8_fails_the_connection_with_1007() -> None:
    async with listening(echo) as server:
        async with connect(server.url(), subprotocols=[OCPP], compression=None) as client:
            await client.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), WAIT)
    assert _code_received(closed.value) == 1007


async def test_a_message_over_the_size_limit_fails_the_connection_with_1009() -> None:
    async with listening(echo, max_size=1000) as server:
        async with connect(server.url(), subprotocols=[OCPP], compression=None) as client:
            await client.send("x" * 2000)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), WAIT)
    assert _code_received(closed.value) == 1009


async def test_a_handler_error_closes_with_1011() -> None:
    async def failing(socket: StationSocket, _request: Request) -> None:
        def fail(message: str | bytes) -> None:
            raise RuntimeError("bug")

        socket.start(fail)
        await socket.wait_closed()

    async with listening(failing) as server:
        async with connect(server.url(), subprotocols=[OCPP]) as client:
            await client.send("anything")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), WAIT)
    assert _code_received(closed.value) == 1011


async def test_a_ping_resolves_with_the_latency_when_the_pong_comes() -> None:
    latencies: list[float] = []

    async def ping(socket: StationSocket, _request: Request) -> None:
        socket.start(lambda _: None)
        pong = socket.ping()
        assert pong is not None
        latencies.append(await asyncio.wait_for(pong, WAIT))
        await socket.close(1000)

    async with listening(ping) as server:
        async with connect(server.url(), subprotocols=[OCPP]) as client:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), WAIT)
    (latency,) = latencies
    assert 0 <= latency < WAIT


async def test_our_close_reaches_the_station_with_its_code_and_reason() -> None:
    codes: list[int | None] = []

    async def close(socket: StationSocket, _request: Request) -> None:
        await socket.close(4000, "replaced")
        codes.append(socket.close_code)

    async with listening(close) as server:
        async with connect(server.url(), subprotocols=[OCPP]) as client:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), WAIT)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "replaced")
        for _ in range(100):
            if codes:
                break
            await asyncio.sleep(0.01)
    assert codes == [4000]


async def test_a_station_that_never_finishes_the_closing_handshake_is_dropped() -> None:
    ended: list[float] = []

    async def close(socket: StationSocket, _request: Request) -> None:
        started = asyncio.get_running_loop().time()
        await socket.close(1000)
        ended.append(asyncio.get_running_loop().time() - started)

    async with listening(close, close_timeout=0.3) as server:
        writer = await _raw_handshake(server.port)
        try:
            async with asyncio.timeout(WAIT):
                while not ended:
                    await asyncio.sleep(0.05)
        finally:
            writer.close()
    assert 0.2 < ended[0] < 2.0


async def test_a_silent_connection_is_dropped_after_the_handshake_timeout() -> None:
    async with listening(echo, open_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
        finally:
            writer.close()


async def test_a_station_that_stops_reading_is_dropped() -> None:
    sent: list[bool] = []
    cap = 100_000  # messages of 1 KB: far more than the kernel's socket buffers take

    async def flood(socket: StationSocket, _request: Request) -> None:
        socket.start(lambda _: None)
        for _ in range(cap):
            if not socket.send("x" * 1000):
                return
            sent.append(True)
            await asyncio.sleep(0)

    async with listening(flood, max_unsent=100_000) as server:
        writer = await _raw_handshake(server.port)
        try:
            async with asyncio.timeout(WAIT * 4):
                while server.tasks:
                    await asyncio.sleep(0.05)
        finally:
            writer.close()
    assert 0 < len(sent) < cap


async def _raw_handshake(port: int) -> asyncio.StreamWriter:
    """A peer that completes the handshake and then never reads or answers again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 10)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ocpp/RAW HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    return writer


def _code_received(closed: ConnectionClosed) -> int | None:
    """The close code the gateway sent."""
    return None if closed.rcvd is None else closed.rcvd.code


@pytest.fixture
def no_collections() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_collections")
@pytest.mark.parametrize("end", ["closing handshake", "connection dropped"])
async def test_a_closed_connection_is_freed_at_once(end: str) -> None:
    refs: list[weakref.ref[Any]] = []

    async def keep(socket: StationSocket, request: Request) -> None:
        # The socket holds its protocol: the protocol freed, the socket was too.
        refs.append(weakref.ref(socket._protocol))
        await echo(socket, request)

    async with listening(keep) as server:
        client = await connect(server.url(), subprotocols=[OCPP])
        await client.send("ping")
        assert await asyncio.wait_for(client.recv(), WAIT) == "ping"
        if end == "closing handshake":
            await client.close()
        else:
            client.transport.abort()
        for _ in range(100):
            if not server.tasks:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
    assert refs
    assert [ref() for ref in refs] == [None]
