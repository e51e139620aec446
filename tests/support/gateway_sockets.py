"""A listening socket whose connections are the gateway's StationSockets, for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.http11 import Request
from websockets.typing import Subprotocol

from csms_gateway.deflate import SmallPlainDeflateFactory
from csms_gateway.station_socket import SocketOptions, StationSocket

OCPP = Subprotocol("ocpp2.0.1")

# What the test does with a socket once its handshake is accepted.
OnOpen = Callable[[StationSocket, Request], Awaitable[None]]


def _ocpp_or_none(_protocol: object, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return OCPP if OCPP in offered else None


@dataclass
class Listening:
    port: int
    # Every socket's task, from its opening request on.
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, station_id: str = "CS1") -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{station_id}"


@asynccontextmanager
async def listening(on_open: OnOpen, **options: Any) -> AsyncIterator[Listening]:
    """Accept every handshake (as the gateway does, deflate included), then run `on_open`."""
    running: Listening | None = None

    async def opened(socket: StationSocket, request: Request) -> None:
        if socket.accept(request):
            await on_open(socket, request)

    def on_request(socket: StationSocket, request: Request) -> None:
        assert running is not None
        task = asyncio.create_task(opened(socket, request))
        running.tasks.add(task)
        task.add_done_callback(running.tasks.discard)

    settings: dict[str, Any] = {
        "on_request": on_request,
        "select_subprotocol": _ocpp_or_none,
        "extensions": [SmallPlainDeflateFactory()],
        "max_size": 65536,
        "open_timeout": 5.0,
    }
    socket_options = SocketOptions(**(settings | options))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StationSocket(socket_options), "127.0.0.1", 0)
    running = Listening(server.sockets[0].getsockname()[1])
    try:
        yield running
    finally:
        server.close()
        for task in running.tasks:
            task.cancel()
        await asyncio.gather(*running.tasks, return_exceptions=True)
