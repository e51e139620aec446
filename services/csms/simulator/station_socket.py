"""A station's WebSocket: websockets' Sans-I/O client protocol on an asyncio transport.

The simulator runs thousands of stations in one process and must not become the bottleneck of
the benchmark it drives. websockets' asyncio connection suits an application but costs a
station more than its OCPP work: a lock and an async context manager per send, a queue and
futures per message received, and `asyncio.timeout` around each wait. Here a send is a write
to the transport, the messages received wait in a deque, and a wait for the next one is one
future and one timer.

websockets still does the protocol: the handshake (subprotocol, permessage-deflate, status),
framing, UTF-8 checks, answering pings and the closing handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidMessage
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import CloseCode, Frame
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from csms.websocket_io import MessageAssembler, write_pending

# What a wait for a message ends with when its time is up.
_EXPIRED = object()


class StationSocket(asyncio.Protocol):
    """One client connection; `connect` opens it, `send`, `recv` and `close` use it."""

    def __init__(self, protocol: ClientProtocol, headers: dict[str, str]) -> None:
        self._protocol = protocol
        self._headers = headers
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._messages: deque[str | bytes] = deque()
        self._assembler = MessageAssembler()
        self._waiter: asyncio.Future[object] | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        subprotocols: Sequence[Subprotocol],
        compression: bool,
        open_timeout: float,
        headers: dict[str, str] | None = None,
        local_addr: tuple[str, int] | None = None,
    ) -> StationSocket:
        """Open the TCP (or TLS) connection and complete the WebSocket handshake.

        Raises OSError when the connection fails, websockets' InvalidHandshake when the server
        refuses the handshake (InvalidStatus carries its response) and TimeoutError after
        `open_timeout` seconds."""
        uri = parse_uri(url)
        extensions = enable_client_permessage_deflate(None) if compression else None
        protocol = ClientProtocol(uri, extensions=extensions, subprotocols=subprotocols)
        loop = asyncio.get_running_loop()
        socket: StationSocket | None = None

        def factory() -> StationSocket:
            nonlocal socket
            socket = cls(protocol, headers or {})
            return socket

        try:
            async with asyncio.timeout(open_timeout):
                await loop.create_connection(
                    factory,
                    uri.host,
                    uri.port,
                    ssl=ssl.create_default_context() if uri.secure else None,
                    local_addr=local_addr,
                )
                assert socket is not None
                await socket._opened
        except BaseException:
            if socket is not None:
                # Nobody waits for the handshake any more: no error for it to carry.
                socket._opened.cancel()
                socket.abort()
            raise
        return socket

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods without being its subclass.
        self._transport = cast(asyncio.Transport, transport)
        request = self._protocol.connect()
        for name, value in self._headers.items():
            request.headers[name] = value
        self._protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response) and not self._opened.done():
                error = self._protocol.handshake_exc
                if error is None:
                    self._opened.set_result(None)
                else:
                    self._opened.set_exception(error)
        self._flush()
        self._wake()

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._flush()
        # Let the transport close itself.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.receive_eof()
        if not self._opened.done():
            error = self._protocol.handshake_exc
            self._opened.set_exception(
                error or InvalidMessage("the connection closed during the handshake")
            )
        if not self._lost.done():
            self._lost.set_result(None)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._wake()

    # The application's side

    def send(self, message: str) -> None:
        """Send a text message; ConnectionClosed once the connection is closing or closed."""
        if self._protocol.state is not OPEN:
            raise self._protocol.close_exc
        self._protocol.send_text(message.encode())
        self._flush()

    async def recv(self, until: float) -> str | bytes | None:
        """The next message, or None if none came by the loop time `until`; ConnectionClosed
        once the connection is closed and every message received before was read."""
        while not self._messages:
            if self._lost.done():
                raise self._protocol.close_exc
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_at(until, _expire, waiter)
            try:
                woken_by = await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if woken_by is _EXPIRED and not self._messages:
                # The loop's timers may fire up to a millisecond early: that counts as due.
                return None
        return self._messages.popleft()

    async def close(self, timeout: float) -> None:
        """The closing handshake, then the TCP connection closed, at most `timeout` seconds."""
        if self._protocol.state is OPEN:
            self._protocol.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._lost)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # Internals

    def _frame(self, frame: Frame) -> None:
        message = self._assembler.message(frame, self._protocol)
        if message is not None:
            self._messages.append(message)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        write_pending(self._protocol, transport)
        if self._close_timer is None and self._protocol.close_expected():
            # The server closes the TCP connection first; if it does not, close it later.
            self._close_timer = self._loop.call_later(_CLOSE_GRACE, transport.close)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


# Seconds to wait for the server to close the TCP connection after the closing handshake.
_CLOSE_GRACE = 5.0


def _expire(waiter: asyncio.Future[object]) -> None:
    if not waiter.done():
        waiter.set_result(_EXPIRED)
