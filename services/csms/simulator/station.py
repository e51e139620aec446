"""One simulated charging station: a small OCPP-J state machine on a raw WebSocket.

connect -> BootNotification (again after `interval` while Pending/Rejected) -> one
StatusNotification per connector -> operate: heartbeats, optional StatusNotification and
NotifyEvent traffic, and answers to the CSMS's CALLs. A socket drop reconnects with
exponential back-off and jitter; an accepted Reset closes the socket and boots again.

Everything runs in one task per station: while idle or waiting for an answer the station
reads its socket itself, so a CSMS CALL is answered at once even in the middle of our own
CALL. Our own CALLs are strictly one at a time (Part 4, section 4.1.1), and what a CSMS CALL
asks for (a reboot, a status report) is done between them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import math
import random
import time
from collections.abc import Callable
from typing import Any, ClassVar

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from csms.ocpp.errors import NotImplementedAction, NotSupported, OcppError
from csms.ocpp.frames import (
    Call,
    CallError,
    CallResult,
    FrameError,
    call_error_for,
    encode,
    parse_frame,
)
from csms.ocpp.validation import known_actions
from csms.simulator.config import SimulationConfig
from csms.simulator.station_socket import StationSocket
from csms.simulator.stats import SimulationStats
from csms.timeutil import now_text

SUBPROTOCOL = Subprotocol("ocpp2.0.1")
ACCEPTED = "Accepted"
AVAILABLE, OCCUPIED, UNAVAILABLE = "Available", "Occupied", "Unavailable"
# Used when an Accepted boot carries no usable interval.
DEFAULT_HEARTBEAT_INTERVAL = 300.0
# Closing thousands of sockets at the end must not take long.
CLOSE_TIMEOUT = 2.0
# Seconds: uvloop's timers have millisecond resolution (see SimulatedStation._operate).
CLOCK_SLACK = 0.002

Answer = CallResult | CallError
Connector = tuple[int, int]


class _Reboot(Exception):
    """Leave the connection and boot again with `reason` (the station restarts)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(error: BaseException) -> str:
    if isinstance(error, InvalidStatus):
        return f"handshake HTTP {error.response.status_code}"
    if isinstance(error, OSError) and error.errno is not None:
        return f"{type(error).__name__} errno {error.errno}"
    return type(error).__name__


class SimulatedStation:
    __slots__ = (
        "_accepted",
        "_boot_requested",
        "_booted_before",
        "_config",
        "_connect_options",
        "_connected_before",
        "_event_ids",
        "_heartbeat_requested",
        "_identity",
        "_ids",
        "_interval",
        "_notify",
        "_random",
        "_ready_before",
        "_reset_pending",
        "_retry_after",
        "_stats",
        "_statuses",
        "_url",
        "station_id",
    )

    def __init__(
        self,
        number: int,
        config: SimulationConfig,
        stats: SimulationStats,
        rng: random.Random | None = None,
    ) -> None:
        self.station_id = config.station_id(number)
        self._url = config.station_url(number)
        self._config = config
        self._stats = stats
        self._random = rng or random.Random()
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._connect_options = self._options(config.source_address(number))
        self._identity = {
            "model": "SimStation",
            "vendorName": "CSMS-Simulator",
            "serialNumber": self.station_id[-25:],
            "firmwareVersion": "1.0",
        }
        self._statuses: dict[Connector, str] = {
            (evse, connector): AVAILABLE
            for evse in range(1, config.evses + 1)
            for connector in range(1, config.connectors + 1)
        }
        # The CSMS remembers an Accepted boot across reconnections; so does the station.
        self._accepted = False
        self._interval = DEFAULT_HEARTBEAT_INTERVAL
        self._connected_before = self._booted_before = self._ready_before = False
        # Seconds the CSMS asked to wait (Retry-After) after refusing the last attempt.
        self._retry_after = 0.0
        # Asked for by CSMS CALLs; done between our own CALLs.
        self._reset_pending = False
        self._boot_requested = False
        self._heartbeat_requested = False
        self._notify: dict[Connector, None] = {}

    def _options(self, source_address: str | None) -> dict[str, Any]:
        # The CSMS pings; the socket answers (it sends no pings of its own).
        options: dict[str, Any] = {
            "subprotocols": [SUBPROTOCOL],
            "compression": self._config.compression,
            "open_timeout": self._config.call_timeout,
        }
        if self._config.password is not None:
            secret = f"{self.station_id}:{self._config.password}".encode()
            options["headers"] = {"Authorization": f"Basic {base64.b64encode(secret).decode()}"}
        if source_address is not None:
            options["local_addr"] = (source_address, 0)
        return options

    # Connection lifecycle

    async def run(self) -> None:
        """Connect, boot and operate until cancelled; cancelling closes the socket cleanly."""
        boot_reason: str | None = "PowerUp"
        failures = 0
        while True:
            websocket = await self._connect()
            if websocket is None:
                failures += 1
                await asyncio.sleep(self._retry_after or self._backoff(failures))
                continue
            delay = 0.0
            try:
                await self._serve(websocket, boot_reason)
            except _Reboot as reboot:
                boot_reason, failures = reboot.reason, 0
            except ConnectionClosed as closed:
                self._stats.disconnects += 1
                code = closed.rcvd.code if closed.rcvd is not None else 1006
                self._stats.error(f"disconnected {code}")
                # Still booted as far as the CSMS knows: reconnect without a new boot.
                boot_reason = None if self._accepted else "PowerUp"
                failures += 1
                delay = self._backoff(failures)
            finally:
                self._stats.connected -= 1
                with contextlib.suppress(Exception):
                    await websocket.close(CLOSE_TIMEOUT)
            if delay:
                await asyncio.sleep(delay)

    async def _connect(self) -> StationSocket | None:
        self._stats.connecting += 1
        self._retry_after = 0.0
        try:
            websocket = await StationSocket.connect(self._url, **self._connect_options)
        except (OSError, InvalidHandshake, TimeoutError) as error:
            self._stats.connect_failures += 1
            self._stats.error(_describe(error))
            if isinstance(error, InvalidStatus):
                # A CSMS shedding load says when to come back; come back then, spread over
                # that second (Retry-After has whole seconds only).
                after = error.response.headers.get("Retry-After", "")
                if after.isdigit():
                    self._retry_after = float(after) + self._random.random()
            return None
        finally:
            self._stats.connecting -= 1
        self._stats.station_connected(first_time=not self._connected_before)
        self._connected_before = True
        return websocket

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with jitter, so that a fleet does not reconnect in lockstep."""
        config = self._config
        ceiling = min(config.reconnect_max, config.reconnect_min * 2 ** min(failures - 1, 30))
        return self._random.uniform(ceiling / 2, ceiling)

    async def _serve(self, websocket: StationSocket, boot_reason: str | None) -> None:
        self._reset_pending = False
        if boot_reason is not None or not self._accepted:
            await self._boot(websocket, boot_reason or "PowerUp")
            await self._send_statuses(websocket, list(self._statuses))
            if not self._ready_before:
                self._ready_before = True
                self._stats.station_ready()
        await self._operate(websocket)

    # Station -> CSMS

    async def _boot(self, websocket: StationSocket, reason: str) -> None:
        """BootNotification until Accepted, waiting the CSMS's interval in between."""
        self._accepted = False
        failures = 0
        while True:
            self._boot_requested = False
            payload = {"reason": reason, "chargingStation": self._identity}
            answer = await self._call(websocket, "BootNotification", payload)
            wait = 0.0
            if isinstance(answer, CallResult):
                interval = answer.payload.get("interval")
                interval = interval if isinstance(interval, int) and interval > 0 else 0
                status = answer.payload.get("status")
                if status == ACCEPTED:
                    self._accepted = True
                    self._interval = float(interval) or DEFAULT_HEARTBEAT_INTERVAL
                    self._stats.station_booted(first_time=not self._booted_before)
                    self._booted_before = True
                    return
                if status == "Pending":
                    self._stats.pending += 1
                else:
                    self._stats.rejected += 1
                wait = float(interval)
            if not wait:
                failures += 1
                wait = self._backoff(failures)
            await self._idle(websocket, asyncio.get_running_loop().time() + wait)
            self._check_reset()
            if self._boot_requested:
                reason = "Triggered"

    async def _operate(self, websocket: StationSocket) -> None:
        """Heartbeats and traffic at their rates; what the CSMS asked for comes first."""
        loop = asyncio.get_running_loop()
        rate = self._config.message_rate
        period = 1 / rate if rate > 0 else math.inf
        now = loop.time()
        next_heartbeat = now + self._heartbeat_interval()
        # A random phase spreads the fleet's traffic evenly over the period.
        next_message = now + self._random.uniform(0, period) if rate > 0 else math.inf
        while True:
            self._check_reset()
            if self._boot_requested:
                await self._boot(websocket, "Triggered")
                continue
            if self._notify:
                connectors, self._notify = list(self._notify), {}
                await self._send_statuses(websocket, connectors)
                continue
            now = loop.time()
            # Due within the event loop's timer resolution counts as due: a timer may fire
            # up to a millisecond before its time, and waiting out the rest would spin.
            due = now + CLOCK_SLACK
            if self._heartbeat_requested or due >= next_heartbeat:
                self._heartbeat_requested = False
                await self._call(websocket, "Heartbeat", {})
                next_heartbeat = now + self._heartbeat_interval()
            elif due >= next_message:
                await self._send_traffic(websocket)
                # Catch up after a slow answer, but with at most one second of backlog.
                next_message = max(next_message + period, now - 1.0)
            else:
                await self._idle(websocket, min(next_heartbeat, next_message))

    def _heartbeat_interval(self) -> float:
        return self._config.heartbeat_interval or self._interval

    async def _send_statuses(self, websocket: StationSocket, connectors: list[Connector]) -> None:
        for evse, connector in connectors:
            self._check_reset()
            await self._call(websocket, "StatusNotification", self._status(evse, connector))

    def _status(self, evse: int, connector: int) -> dict[str, Any]:
        return {
            "timestamp": now_text(),
            "connectorStatus": self._statuses[evse, connector],
            "evseId": evse,
            "connectorId": connector,
        }

    async def _send_traffic(self, websocket: StationSocket) -> None:
        """Half status changes (Available <-> Occupied), half single-part NotifyEvent reports."""
        if self._random.random() < 0.5:
            changeable = [key for key, status in self._statuses.items() if status != UNAVAILABLE]
            if changeable:
                key = self._random.choice(changeable)
                self._statuses[key] = OCCUPIED if self._statuses[key] == AVAILABLE else AVAILABLE
                await self._call(websocket, "StatusNotification", self._status(*key))
                return
        evse, connector = self._random.choice(list(self._statuses))
        now = now_text()
        event = {
            "eventId": next(self._event_ids),
            "timestamp": now,
            "trigger": "Delta",
            "actualValue": "true" if self._random.random() < 0.5 else "false",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "Connector", "evse": {"id": evse, "connectorId": connector}},
            "variable": {"name": "Problem"},
        }
        payload = {"generatedAt": now, "seqNo": 0, "tbc": False, "eventData": [event]}
        await self._call(websocket, "NotifyEvent", payload)

    async def _call(
        self, websocket: StationSocket, action: str, payload: dict[str, Any]
    ) -> Answer | None:
        """Send one CALL and wait for its answer (None after `call_timeout`), answering any
        CSMS CALL that arrives meanwhile. The latency is CALL sent -> answer received."""
        message_id = str(next(self._ids))
        started = time.perf_counter()
        websocket.send(encode(Call(message_id, action, payload)))
        self._stats.sent += 1
        self._stats.in_flight += 1
        deadline = asyncio.get_running_loop().time() + self._config.call_timeout
        try:
            answer = await self._receive(websocket, deadline, message_id)
        finally:
            self._stats.in_flight -= 1
        if answer is None:
            self._stats.timeouts += 1
            self._stats.error(f"timeout {action}")
            return None
        error_code = answer.error_code if isinstance(answer, CallError) else None
        self._stats.answered(action, time.perf_counter() - started, error_code)
        return answer

    async def _idle(self, websocket: StationSocket, until: float) -> None:
        """Serve the socket until `until`, or until a CSMS CALL asked for something."""
        await self._receive(websocket, until, None)

    async def _receive(
        self, websocket: StationSocket, until: float, expected: str | None
    ) -> Answer | None:
        while expected is not None or not self._has_work():
            raw = await websocket.recv(until)
            if raw is None:
                return None
            try:
                frame = parse_frame(raw)
            except FrameError as error:
                self._stats.bad_frames += 1
                if error.reply:
                    websocket.send(encode(error.to_call_error()))
                continue
            if isinstance(frame, Call):
                self._answer(websocket, frame)
            elif frame.message_id == expected:
                return frame
            else:
                self._stats.error("answer to no outstanding CALL")
        return None

    def _has_work(self) -> bool:
        return (
            self._reset_pending
            or self._boot_requested
            or (self._accepted and (self._heartbeat_requested or bool(self._notify)))
        )

    def _check_reset(self) -> None:
        if self._reset_pending:
            raise _Reboot("RemoteReset")

    # CSMS -> station

    def _answer(self, websocket: StationSocket, call: Call) -> None:
        self._stats.csms_calls += 1
        handler = self._handlers.get(call.action)
        try:
            if handler is None:
                if call.action in known_actions():
                    raise NotSupported(f"{call.action} is not supported by the simulator")
                raise NotImplementedAction(f"{call.action} is not an OCPP 2.0.1 action")
            reply: CallResult | CallError = CallResult(call.message_id, handler(self, call.payload))
        except OcppError as error:
            reply = call_error_for(call.message_id, error)
        websocket.send(encode(reply))

    def _on_reset(self, payload: dict[str, Any]) -> dict[str, Any]:
        evse = payload.get("evseId")
        if evse is not None:
            # Only that EVSE restarts: its connectors report their status again, the socket
            # and the boot stay.
            targets = [key for key in self._statuses if key[0] == evse]
            if not targets:
                return {"status": "Rejected"}
            self._stats.resets += 1
            self._notify.update(dict.fromkeys(targets))
            return {"status": ACCEPTED}
        self._stats.resets += 1
        self._reset_pending = True
        return {"status": ACCEPTED}

    def _on_change_availability(self, payload: dict[str, Any]) -> dict[str, Any]:
        targets = self._connectors(payload.get("evse"))
        if not targets:
            return {"status": "Rejected"}
        operative = payload.get("operationalStatus") == "Operative"
        for key in targets:
            status = self._statuses[key]
            if operative and status == UNAVAILABLE:
                self._statuses[key] = AVAILABLE
            elif not operative and status != UNAVAILABLE:
                self._statuses[key] = UNAVAILABLE
            else:
                continue
            self._notify[key] = None
        return {"status": ACCEPTED}

    def _on_trigger_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        requested = payload.get("requestedMessage")
        if requested == "BootNotification":
            self._boot_requested = True
        elif requested == "Heartbeat":
            self._heartbeat_requested = True
        elif requested == "StatusNotification":
            targets = self._connectors(payload.get("evse"))
            if not targets:
                return {"status": "Rejected"}
            self._notify.update(dict.fromkeys(targets))
        else:
            return {"status": "NotImplemented"}
        return {"status": ACCEPTED}

    def _connectors(self, evse: Any) -> list[Connector]:
        """The connectors an optional EVSEType addresses: all of them without one or id 0."""
        if not isinstance(evse, dict) or evse.get("id", 0) == 0:
            return list(self._statuses)
        connector = evse.get("connectorId")
        return [
            key
            for key in self._statuses
            if key[0] == evse["id"] and (connector is None or key[1] == connector)
        ]

    _handlers: ClassVar[dict[str, Callable[[SimulatedStation, dict[str, Any]], dict[str, Any]]]] = {
        "Reset": _on_reset,
        "ChangeAvailability": _on_change_availability,
        "TriggerMessage": _on_trigger_message,
    }
