"""One station's connection: the OCPP-J call state machine (Part 4, section 4.1.1).

Station CALLs are answered one at a time, in order. At most one CSMS CALL is outstanding;
further commands wait their turn until their own deadline. A CALLRESULT or CALLERROR that
matches no outstanding call (a late answer after a timeout) is logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from csms.bus.envelopes import CommandReply
from csms.ocpp.errors import GenericError, InternalError, OcppError
from csms.ocpp.frames import (
    Call,
    CallError,
    CallResult,
    Frame,
    FrameError,
    call_error_for,
    encode,
    parse_frame,
)
from csms.ocpp.validation import validate_response
from csms_gateway.station_socket import StationSocket

log = logging.getLogger(__name__)

# RFC 6455: the peer broke a policy (here: sustained excess message rate).
CLOSE_POLICY_VIOLATION = 1008

# Station CALLs waiting to be answered; a station may have only one outstanding, so a few suffice.
_INBOUND_BACKLOG = 16
# How long a closed connection waits for its call handler to stop.
_WORKER_STOP_TIMEOUT = 5.0

CallHandler = Callable[["StationSession", Call], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float
    burst: int
    abuse_limit: int


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(eq=False)
class _OutstandingCall:
    message_id: str
    action: str
    answer: asyncio.Future[CommandReply] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class StationSession:
    # One per connected station: slots keep thousands of them small.
    __slots__ = (
        "_abuse_limit",
        "_answering",
        "_bucket",
        "_call_turn",
        "_calls_waiting",
        "_inbound",
        "_on_call",
        "_on_traffic",
        "_outstanding",
        "_refused_for_rate",
        "_triggered",
        "boot_status",
        "connected_at",
        "connection_id",
        "last_seen_at",
        "pinged_at",
        "pong",
        "refused",
        "registration",
        "station_id",
        "websocket",
    )

    def __init__(
        self,
        websocket: StationSocket,
        station_id: str,
        on_call: CallHandler,
        on_traffic: Callable[[str], None],
        rate_limit: RateLimit,
    ) -> None:
        self.websocket = websocket
        self.station_id = station_id
        self.connection_id = str(uuid.uuid4())
        self.connected_at = time.time()
        self.last_seen_at = self.connected_at
        # Keep-alive state (see keepalive.py): when the last ping went out, and its pong.
        self.pinged_at = 0.0
        self.pong: asyncio.Future[float] | None = None
        # The status the CSMS gave the station's boot; None until known.
        self.boot_status: str | None = None
        self.registration: asyncio.Future[str | None] | None = None
        # Set when the registry says the station may not use this endpoint.
        self.refused = False
        self._on_call = on_call
        self._on_traffic = on_traffic
        # Station CALLs not yet answered, and the task answering them: started when a CALL
        # arrives and gone once they are all answered, so an idle station costs no task.
        self._inbound: deque[Call] = deque()
        self._answering: asyncio.Task[None] | None = None
        self._outstanding: _OutstandingCall | None = None
        self._call_turn = asyncio.Lock()
        self._calls_waiting = 0
        # Station messages the CSMS asked for with TriggerMessage: action -> allowed until.
        self._triggered: dict[str, float] = {}
        self._bucket = TokenBucket(rate_limit.rate, rate_limit.burst)
        self._abuse_limit = rate_limit.abuse_limit
        self._refused_for_rate = 0

    def allow_trigger(self, action: str, seconds: float) -> None:
        self._triggered[action] = time.monotonic() + seconds

    def take_trigger(self, action: str) -> bool:
        """True once for a message the station sends because the CSMS triggered it."""
        until = self._triggered.pop(action, 0.0)
        return until > time.monotonic()

    def queue_full(self, bound: int) -> bool:
        """True when a new command would wait behind `bound` others and the one in flight."""
        return self._call_turn.locked() and self._calls_waiting >= bound

    async def run(self) -> None:
        """Serve the connection until it closes."""
        try:
            self.websocket.start(self._receive)
            await self.websocket.wait_closed()
        finally:
            answering = self._answering
            if answering is not None and not answering.done():
                answering.cancel()
                # Bounded: a handler that swallowed its cancellation must not keep the socket's
                # cleanup (and the station's presence) waiting forever.
                await asyncio.wait({answering}, timeout=_WORKER_STOP_TIMEOUT)
                if not answering.done():
                    log.error("station %s: call handler ignored cancellation", self.station_id)
            if self._outstanding is not None and not self._outstanding.answer.done():
                self._outstanding.answer.set_result({"outcome": "disconnected"})

    def _receive(self, raw: str | bytes) -> None:
        """Called by the socket for each message, as it arrives."""
        self.last_seen_at = time.time()
        self._on_traffic(self.station_id)
        try:
            frame: Frame = parse_frame(raw)
        except FrameError as exc:
            log.info("station %s sent a bad frame: %s", self.station_id, exc)
            if exc.reply:
                self.send(exc.to_call_error())
            return
        if isinstance(frame, Call):
            if not self._bucket.take():
                self._refuse_for_rate(frame)
                return
            if len(self._inbound) >= _INBOUND_BACKLOG:
                self.send(
                    call_error_for(frame.message_id, InternalError("too many CALLs in flight"))
                )
                return
            self._inbound.append(frame)
            if self._answering is None or self._answering.done():
                self._answering = asyncio.create_task(self._answer_calls())
        else:
            self._settle(frame)

    def _refuse_for_rate(self, call: Call) -> None:
        self._refused_for_rate += 1
        if self._refused_for_rate >= self._abuse_limit:
            log.warning("station %s exceeds its message rate; closing", self.station_id)
            self.websocket.start_close(CLOSE_POLICY_VIOLATION, "message rate exceeded")
            return
        self.send(call_error_for(call.message_id, GenericError("message rate exceeded")))

    async def _answer_calls(self) -> None:
        """Answer the waiting CALLs in order; return when none is left."""
        while self._inbound:
            call = self._inbound.popleft()
            try:
                payload = await self._on_call(self, call)
                reply: Frame = CallResult(call.message_id, payload)
            except OcppError as error:
                reply = call_error_for(call.message_id, error)
            except Exception:
                log.exception("station %s: %s failed", self.station_id, call.action)
                reply = call_error_for(call.message_id, InternalError("CSMS failed to process"))
            self.send(reply)
        self._answering = None

    def _settle(self, frame: CallResult | CallError) -> None:
        outstanding = self._outstanding
        if outstanding is None or outstanding.message_id != frame.message_id:
            log.info(
                "station %s answered unknown or expired call %s", self.station_id, frame.message_id
            )
            return
        if outstanding.answer.done():
            return
        if isinstance(frame, CallError):
            outstanding.answer.set_result(
                {
                    "outcome": "callError",
                    "errorCode": frame.error_code,
                    "errorDescription": frame.error_description,
                    "errorDetails": frame.error_details,
                }
            )
            return
        try:
            validate_response(outstanding.action, frame.payload)
        except OcppError as error:
            outstanding.answer.set_result(
                {
                    "outcome": "callError",
                    "errorCode": error.code,
                    "errorDescription": f"invalid response: {error.description}",
                    "errorDetails": {"response": frame.payload},
                }
            )
            return
        outstanding.answer.set_result({"outcome": "answered", "payload": frame.payload})

    async def call(self, action: str, payload: dict[str, Any], deadline: float) -> CommandReply:
        """Send a CSMS CALL once it is this command's turn, and wait for the answer."""
        self._calls_waiting += 1
        waiting = True
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                async with self._call_turn:
                    self._calls_waiting -= 1
                    waiting = False
                    outstanding = _OutstandingCall(str(uuid.uuid4()), action)
                    self._outstanding = outstanding
                    try:
                        if not self.send(Call(outstanding.message_id, action, payload)):
                            return {"outcome": "disconnected"}
                        return await outstanding.answer
                    finally:
                        self._outstanding = None
        except TimeoutError:
            return {"outcome": "timeout"}
        finally:
            if waiting:
                self._calls_waiting -= 1

    def send(self, frame: Frame) -> bool:
        """Send a frame; False if the connection is closing or closed."""
        return self.websocket.send(encode(frame))

    async def close(self, code: int, reason: str) -> None:
        await self.websocket.close(code, reason)
