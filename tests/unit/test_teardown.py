"""A closed station connection is freed by reference counting, without a garbage collection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.typing import Subprotocol

from csms_gateway.deflate import SmallPlainDeflateFactory
from csms_gateway.teardown import forget_handshake, free_when_closed

OCPP = Subprotocol("ocpp2.0.1")


@pytest.fixture
def no_collections() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Server:
    """Echoes; keeps weak references to each server-side connection and its protocol."""

    def __init__(self, free: bool) -> None:
        self.free = free
        self.refs: list[weakref.ref[Any]] = []
        self.port = 0

    def process_request(self, connection: ServerConnection, _request: Request) -> None:
        if self.free:
            free_when_closed(connection)

    async def handle(self, websocket: ServerConnection) -> None:
        self.refs += [weakref.ref(websocket), weakref.ref(websocket.protocol)]
        # As the gateway's sessions do, a dropped connection ends the handler quietly (a logged
        # traceback would hold the connection).
        with contextlib.suppress(ConnectionClosed):
            async for message in websocket:
                await websocket.send(message)

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.refs)


@asynccontextmanager
async def _running(free: bool) -> AsyncIterator[_Server]:
    server = _Server(free)
    # As the gateway serves: a subprotocol chooser (a closure in websockets) and deflate.
    async with serve(
        server.handle,
        "127.0.0.1",
        0,
        process_request=server.process_request,
        select_subprotocol=lambda _, offered: OCPP if OCPP in offered else None,
        compression=None,
        extensions=[SmallPlainDeflateFactory()],
        ping_interval=None,
    ) as listening:
        server.port = listening.sockets[0].getsockname()[1]
        yield server


async def _closed(server: _Server, end: Callable[[ClientConnection], Any]) -> None:
    client = await connect(f"ws://127.0.0.1:{server.port}/ocpp/S1", subprotocols=[OCPP])
    await client.send("ping")
    assert await client.recv() == "ping"
    ended = end(client)
    if ended is not None:
        await ended
    for _ in range(100):
        if server.alive() == 0:
            return
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("no_collections")
@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda client: client.close(), id="closing handshake"),
        pytest.param(lambda client: client.transport.abort(), id="connection dropped"),
    ],
)
async def test_a_closed_connection_is_freed_at_once(end: Callable[[ClientConnection], Any]) -> None:
    async with _running(free=True) as server:
        await _closed(server, end)

        assert server.refs
        assert server.alive() == 0


@pytest.mark.usefixtures("no_collections")
async def test_without_it_websockets_keeps_a_closed_connection_for_the_collector() -> None:
    # The reason for teardown.py; if a websockets release frees connections by itself, this
    # fails and the module can go.
    async with _running(free=False) as server:
        await _closed(server, lambda client: client.close())

        assert server.alive() == 2


async def test_a_connection_whose_handshake_is_forgotten_still_talks_both_ways() -> None:
    seen: list[tuple[str, int, object]] = []

    async def handle(websocket: ServerConnection) -> None:
        forget_handshake(websocket)
        assert websocket.request is not None
        seen.append((websocket.request.path, len(websocket.request.headers), websocket.response))
        with contextlib.suppress(ConnectionClosed):
            async for message in websocket:
                await websocket.send(message)

    async with serve(handle, "127.0.0.1", 0, compression=None) as listening:
        port = listening.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/ocpp/S1") as client:
            for text in ("one", "two"):
                await client.send(text)
                assert await client.recv() == text

    assert seen == [("/ocpp/S1", 0, None)]
