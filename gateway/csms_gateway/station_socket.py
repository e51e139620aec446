"""A station's WebSocket on the gateway: websockets' Sans-I/O server protocol on an asyncio
transport (ADR 0022).

websockets' asyncio connection costs a gateway more per message than the OCPP work itself: a
lock and an async context manager per send, and per message received a queue, futures and a
task switch to the reader. Here a message received is handed to its session's callback from
`data_received`, and a send is a write to the transport.

websockets still does the protocol: parsing the opening handshake and answering it
(subprotocol, permessage-deflate, refusals), framing, size limits, UTF-8 checks, answering
pings and the closing handshake. The gateway does the rest, as websockets' server did:

- the opening handshake must end within `open_timeout` seconds, admission included;
- a closing handshake the station does not finish ends after `close_timeout` seconds;
- a station that stops reading is cut off once `max_unsent` bytes wait to be sent to it,
  rather than buffered without bound;
- messages arriving before the session takes them are kept, and reading pauses after a few.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any, cast

from websockets.extensions.base import ServerExtensionFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from csms.websocket_io import MessageAssembler, write_pending

log = logging.getLogger(__name__)

MessageHandler = Callable[[str | bytes], None]
# Called once the opening request has arrived: the gateway answers it (see server.py).
RequestHandler = Callable[["StationSocket", Request], None]
SubprotocolChooser = Callable[[Any, Sequence[Subprotocol]], Subprotocol | None]

# Messages kept for a session not started yet; beyond this, reading pauses until it starts.
_EARLY_MESSAGES = 16


class SocketOptions:
    """What every socket of one endpoint shares (one object, not a copy per socket)."""

    __slots__ = (
        "close_timeout",
        "extensions",
        "max_size",
        "max_unsent",
        "on_request",
        "open_timeout",
        "select_subprotocol",
    )

    def __init__(
        self,
        *,
        on_request: RequestHandler,
        select_subprotocol: SubprotocolChooser,
        extensions: Sequence[ServerExtensionFactory],
        max_size: int,
        open_timeout: float,
        close_timeout: float = 10.0,
        max_unsent: int = 1 << 20,
    ) -> None:
        self.on_request = on_request
        self.select_subprotocol = select_subprotocol
        self.extensions = extensions
        self.max_size = max_size
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.max_unsent = max_unsent


class StationSocket(asyncio.Protocol):
    # One per connected station: slots keep thousands of them small.
    __slots__ = (
        "_assembler",
        "_early",
        "_lost",
        "_on_message",
        "_options",
        "_ping_data",
        "_ping_sent_at",
        "_pong",
        "_protocol",
        "_started",
        "_timer",
        "_transport",
    )

    def __init__(self, options: SocketOptions) -> None:
        self._options = options
        self._protocol = ServerProtocol(
            extensions=options.extensions,
            select_subprotocol=options.select_subprotocol,
            max_size=options.max_size,
        )
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The opening handshake's deadline, later the closing handshake's.
        self._timer: asyncio.TimerHandle | None = None
        self._on_message: MessageHandler | None = None
        self._started = False
        # Messages received before the session started (made only if some come).
        self._early: deque[str | bytes] | None = None
        self._assembler = MessageAssembler()
        self._ping_data = b""
        self._ping_sent_at = 0.0
        self._pong: asyncio.Future[float] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods without being its subclass.
        self._transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._options.open_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request):
                self._options.on_request(self, event)
        if protocol.state is State.CONNECTING and protocol.close_expected():
            # A request websockets could not parse: it answered it; the connection ends here.
            self._close_transport()

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._flush()
        # Let the transport close itself.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self._protocol
        protocol.receive_eof()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lost.done():
            self._lost.set_result(None)
        if self._pong is not None and not self._pong.done():
            self._pong.cancel()
        self._on_message = None
        self._early = None
        self._started = True
        # Reference cycles websockets leaves in a closed protocol, so that reference counting
        # frees the connection at once, not the next full collection (ADR 0011): the chooser
        # bound to the protocol, the parser generator suspended in it, and its exception.
        vars(protocol).pop("select_subprotocol", None)
        protocol.parser = None  # type: ignore[assignment]
        protocol.parser_exc = None

    # The opening handshake (answered by the gateway, see on_request)

    def respond(self, response: Response) -> None:
        """Refuse the upgrade with `response` (or answer a plain HTTP request) and close."""
        if self._lost.done():
            return
        self._protocol.send_response(response)
        self._flush()
        self._close_transport()

    def reject(self, status: int, text: str) -> Response:
        """A plain-text refusal to send with `respond` (headers may be added first)."""
        return self._protocol.reject(status, text)

    def accept(self, request: Request) -> bool:
        """Complete the handshake; False if the request is no valid upgrade (answered with a
        4xx and closed) or the connection is gone."""
        if self._lost.done():
            return False
        protocol = self._protocol
        response = protocol.accept(request)
        # The chooser's job is done; bound to the protocol, it would hold it in a cycle.
        vars(protocol).pop("select_subprotocol", None)
        if response.status_code != 101:
            self.respond(response)
            return False
        protocol.send_response(response)
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return True

    @property
    def subprotocol(self) -> Subprotocol | None:
        return self._protocol.subprotocol

    @property
    def close_code(self) -> int | None:
        """The code of the close frame sent to the station, if one was."""
        sent = self._protocol.close_sent
        return None if sent is None else sent.code

    def peer_certificate(self) -> Any:
        return None if self._transport is None else self._transport.get_extra_info("peercert")

    # The session's side

    @property
    def is_open(self) -> bool:
        return self._protocol.state is OPEN

    def start(self, on_message: MessageHandler) -> None:
        """Hand every message, those already received first, to `on_message`."""
        early = self._stop_keeping()
        if self._lost.done():
            return
        self._on_message = on_message
        for message in early:
            self._deliver(on_message, message)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    def send(self, message: str) -> bool:
        """Send a text message; False if the connection is closing or closed."""
        transport = self._transport
        if self._protocol.state is not OPEN or transport is None or transport.is_closing():
            return False
        self._protocol.send_text(message.encode())
        self._flush()
        if transport.get_write_buffer_size() > self._options.max_unsent:
            log.warning("a station stopped reading its socket; dropping the connection")
            transport.abort()
            return False
        return True

    def ping(self) -> asyncio.Future[float] | None:
        """Send a ping; the future resolves with the latency when its pong arrives. None if the
        connection is not open."""
        if self._protocol.state is not OPEN:
            return None
        if self._pong is not None and not self._pong.done():
            self._pong.cancel()
        loop = asyncio.get_running_loop()
        self._pong = loop.create_future()
        self._ping_data = os.urandom(4)
        self._ping_sent_at = loop.time()
        self._protocol.send_ping(self._ping_data)
        self._flush()
        return self._pong

    async def close(self, code: int, reason: str = "") -> None:
        """The closing handshake, at most `close_timeout` seconds; then the connection ends."""
        self.start_close(code, reason)
        await self.wait_closed()

    def start_close(self, code: int, reason: str = "") -> None:
        """Begin the closing handshake (or end a connection still in its opening one)."""
        if self._protocol.state is OPEN:
            # Never started, the session takes no message now; the station's answer to the
            # close must be read even so.
            self._stop_keeping()
            self._protocol.send_close(code, reason)
            self._flush()
        elif self._protocol.state is State.CONNECTING:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # Internals

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PONG:
            pong = self._pong
            if pong is not None and not pong.done() and bytes(frame.data) == self._ping_data:
                pong.set_result(asyncio.get_running_loop().time() - self._ping_sent_at)
            return
        message = self._assembler.message(frame, self._protocol)
        if message is None:
            self._flush()  # a 1007 close, if the message was no UTF-8
            return
        if self._on_message is not None:
            self._deliver(self._on_message, message)
        elif not self._started:
            if self._early is None:
                self._early = deque()
            self._early.append(message)
            if len(self._early) == _EARLY_MESSAGES and self._transport is not None:
                self._transport.pause_reading()

    def _stop_keeping(self) -> Collection[str | bytes]:
        """Stop keeping messages for a session yet to start; those kept so far."""
        early: Collection[str | bytes] = self._early if self._early is not None else ()
        self._early = None
        self._started = True
        if len(early) >= _EARLY_MESSAGES and self._transport is not None:
            self._transport.resume_reading()
        return early

    def _deliver(self, on_message: MessageHandler, message: str | bytes) -> None:
        try:
            on_message(message)
        except Exception:
            log.exception("a station's message could not be handled; closing")
            if self._protocol.state is OPEN:
                self._protocol.fail(CloseCode.INTERNAL_ERROR, "CSMS failed to process")
                self._flush()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        write_pending(self._protocol, transport)
        if self._protocol.state is State.CLOSING and self._timer is None:
            # The closing handshake has begun: the station gets close_timeout to finish it.
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._options.close_timeout, transport.abort)

    def _close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._protocol.state is State.CONNECTING:
            self.abort()
