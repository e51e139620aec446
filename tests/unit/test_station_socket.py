"""The simulator's station socket against websockets' own server: handshake, messages in both
directions, fragments, pings, refusals, timeouts and both ways of closing."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.simulator.station_socket import StationSocket

OCPP = Subprotocol("ocpp2.0.1")
WAIT = 5.0

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, **options: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, subprotocols=[OCPP], **options) as running:
        yield f"ws://127.0.0.1:{running.sockets[0].getsockname()[1]}/ocpp/CS1"


async def open_socket(url: str, **options: Any) -> StationSocket:
    settings: dict[str, Any] = {
        "subprotocols": [OCPP],
        "compression": True,
        "open_timeout": WAIT,
    }
    return await StationSocket.connect(url, **(settings | options))


def soon() -> float:
    return asyncio.get_running_loop().time() + WAIT


async def echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


@pytest.mark.parametrize("compression", [True, False])
async def test_messages_go_both_ways(compression: bool) -> None:
    async with server(echo) as url:
        socket = await open_socket(url, compression=compression)
        for text in ('[2,"1","Heartbeat",{}]', "é" * 5000):
            socket.send(text)
            assert await socket.recv(soon()) == text
        await socket.close(WAIT)


async def test_the_handshake_carries_the_subprotocol_headers_and_deflate() -> None:
    seen: list[Request] = []

    async def handler(websocket: ServerConnection) -> None:
        await websocket.send(websocket.subprotocol or "")
        await websocket.wait_closed()

    def note(connection: ServerConnection, request: Request) -> None:
        seen.append(request)

    async with server(handler, process_request=note) as url:
        socket = await open_socket(url, headers={"Authorization": "Basic eDp5"})
        assert await socket.recv(soon()) == "ocpp2.0.1"
        await socket.close(WAIT)
    (request,) = seen
    assert request.path == "/ocpp/CS1"
    assert request.headers["Authorization"] == "Basic eDp5"
    assert "permessage-deflate" in request.headers["Sec-WebSocket-Extensions"]
    assert base64.b64decode(request.headers["Sec-WebSocket-Key"])


async def test_a_fragmented_message_arrives_whole() -> None:
    async def handler(websocket: ServerConnection) -> None:
        await websocket.send(["[3,", '"7",', "{}]"])
        await websocket.wait_closed()

    async with server(handler) as url:
        socket = await open_socket(url)
        assert await socket.recv(soon()) == '[3,"7",{}]'
        await socket.close(WAIT)


async def test_recv_returns_none_when_its_time_is_up() -> None:
    async def handler(websocket: ServerConnection) -> None:
        await websocket.wait_closed()

    async with server(handler) as url:
        socket = await open_socket(url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await socket.recv(started + 0.05) is None
        assert loop.time() - started >= 0.04
        await socket.close(WAIT)


async def test_pings_are_answered() -> None:
    async def handler(websocket: ServerConnection) -> None:
        pong = await websocket.ping(b"are you there")
        await asyncio.wait_for(pong, WAIT)
        await websocket.send("answered")
        await websocket.wait_closed()

    async with server(handler, ping_interval=None) as url:
        socket = await open_socket(url)
        assert await socket.recv(soon()) == "answered"
        await socket.close(WAIT)


async def test_a_server_close_ends_recv_and_send_with_its_code() -> None:
    async def handler(websocket: ServerConnection) -> None:
        await websocket.send("last words")
        await websocket.close(4000, "going away")

    async with server(handler) as url:
        socket = await open_socket(url)
        # What arrived before the close is still read first.
        assert await socket.recv(soon()) == "last words"
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv(soon())
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4000
        with pytest.raises(ConnectionClosed):
            socket.send("too late")
        await socket.close(WAIT)


async def test_invalid_utf8_in_a_text_message_fails_the_connection_with_1007() -> None:
    async def handler(websocket: ServerConnection) -> None:
        # websockets checks nothing it sends as bytes with text=True.
        await websocket.send(b"\xff\xfe", text=True)
        await websocket.wait_closed()

    async with server(handler) as url:
        socket = await open_socket(url, compression=False)
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv(soon())
        assert closed.value.sent is not None
        assert closed.value.sent.code == 1007


async def test_our_close_completes_the_closing_handshake() -> None:
    codes: list[int | None] = []

    async def handler(websocket: ServerConnection) -> None:
        await websocket.wait_closed()
        codes.append(websocket.close_code)

    async with server(handler) as url:
        socket = await open_socket(url)
        await socket.close(WAIT)
        async with asyncio.timeout(WAIT):
            while not codes:
                await asyncio.sleep(0.01)
    assert codes == [1000]


async def test_a_refused_handshake_raises_invalid_status_with_the_response() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return Response(503, "Service Unavailable", Headers({"Retry-After": "7"}), b"busy\n")

    async with server(echo, process_request=refuse) as url:
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(url)
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"] == "7"


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        with pytest.raises(TimeoutError):
            await open_socket(f"ws://127.0.0.1:{port}/ocpp/CS1", open_timeout=0.1)


async def test_a_refused_connection_raises_connection_refused() -> None:
    with pytest.raises(ConnectionRefusedError):
        await open_socket("ws://127.0.0.1:9/ocpp/CS1")
