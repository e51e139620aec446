"""Turns station CALLs into bus messages and bus commands into CSMS CALLs.

Nothing is answered before it is safe: a station's CALLRESULT goes out only after the broker
confirmed the message carrying it; if the publish fails, the station gets InternalError and
will send again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import (
    BootReply,
    CommandReply,
    CommandRequest,
    Connected,
    ConnectedReply,
    Disconnected,
    RegistryChanged,
    StationMessage,
    Takeover,
    unpack_batch,
)
from csms.bus.message import Body, BusError, BusMessage, RequestTimeout
from csms.config import Settings
from csms.ocpp.actions import StationAction, check_station_action
from csms.ocpp.errors import InternalError, SecurityError
from csms.ocpp.frames import Call
from csms.ocpp.validation import validate_request
from csms.timeutil import format_epoch, now_text
from csms_gateway.admission import Admission
from csms_gateway.liveness import SeenTracker
from csms_gateway.outbox import Outbox
from csms_gateway.session import StationSession

log = logging.getLogger(__name__)

ACCEPTED = "Accepted"
PENDING = "Pending"
# What the CSMS may send a station whose boot is Pending (B02); a Rejected one gets nothing.
PENDING_COMMANDS = frozenset(
    {"GetVariables", "SetVariables", "GetBaseReport", "GetReport", "TriggerMessage"}
)
# A station answering TriggerMessage Accepted may send the triggered message for this long.
_TRIGGER_WINDOW = 60.0
# RFC 6455 policy violation: the station may not use this endpoint.
CLOSE_POLICY_VIOLATION = 1008
# Close code for a socket whose station was removed or rejected by an operator.
CLOSE_DEREGISTERED = 4001
# WebSocket close code for a socket replaced by the station's newer connection.
CLOSE_REPLACED = 4000
# Station messages per bus message at most (each at most one 64 KiB frame).
_MAX_PUBLISH_BATCH = 100


async def _registered(registration: asyncio.Future[str | None]) -> str | None:
    """The boot status the registration found, or InternalError if it could not be had.

    Shielded: one waiter giving up does not cancel the look-up for the others. The caller's own
    cancellation (its socket closed) still propagates, or the session could never finish.
    """
    try:
        return await asyncio.shield(registration)
    except BusError as exc:
        raise InternalError("registration state unavailable, try again") from exc
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if registration.cancelled() and (task is None or task.cancelling() == 0):
            raise InternalError("registration abandoned") from exc
        raise


class Relay:
    def __init__(self, bus: Bus, settings: Settings, gateway_id: str, admission: Admission) -> None:
        self._bus = bus
        self._admission = admission
        self._settings = settings
        self.gateway_id = gateway_id
        self.sessions: dict[str, StationSession] = {}
        self.seen = SeenTracker(bus, gateway_id, settings.seen_flush_interval)
        linger = settings.publish_linger
        self._outboxes: dict[StationAction, Outbox] = {
            action: Outbox(bus, topology.ocpp_key(action), _MAX_PUBLISH_BATCH, linger=linger)
            for action in StationAction
            if action not in (StationAction.BOOT_NOTIFICATION, StationAction.HEARTBEAT)
        }
        # Boots and registrations are requests; in a reconnect storm they too go out in batches.
        self._boots = Outbox(
            bus,
            topology.ocpp_key(StationAction.BOOT_NOTIFICATION),
            _MAX_PUBLISH_BATCH,
            linger=linger,
            reply_timeout=settings.boot_decision_timeout,
        )
        self._connections = Outbox(
            bus,
            topology.STATION_CONNECTED,
            _MAX_PUBLISH_BATCH,
            linger=linger,
            reply_timeout=settings.presence_timeout,
        )
        self._disconnections = Outbox(
            bus, topology.STATION_DISCONNECTED, _MAX_PUBLISH_BATCH, linger=linger
        )

    async def start(self) -> None:
        await self._bus.open_inbox(topology.gateway_queue(self.gateway_id), self._on_command)
        await self.seen.start()

    async def stop(self) -> None:
        await self.seen.stop()
        outboxes = (*self._outboxes.values(), self._boots, self._connections, self._disconnections)
        for outbox in outboxes:
            await outbox.close()

    # Connection lifecycle

    async def attach(self, session: StationSession) -> None:
        """Make `session` the station's one live socket, cluster-wide."""
        station_id = session.station_id
        previous = self.sessions.get(station_id)
        self.sessions[station_id] = session
        if previous is not None:
            await previous.close(CLOSE_REPLACED, "replaced by a newer connection")
        # A socket of the station on another gateway is closed when the worker records this
        # connection (ADR 0010).
        connected: Connected = {
            "stationId": station_id,
            "connectionId": session.connection_id,
            "gatewayId": self.gateway_id,
            "connectedAt": format_epoch(session.connected_at),
        }
        session.registration = asyncio.ensure_future(self._registration(session, connected))

    async def _registration(self, session: StationSession, connected: Connected) -> str | None:
        reply = cast(ConnectedReply, await self._connections.request(connected))
        registered_profile = reply.get("securityProfile", 0)
        if registered_profile > self._settings.security_profile:
            # A profile-0 endpoint admits without a look-up (see Admission); a station
            # registered for a stronger profile is refused here, before any message is served.
            self._admission.refuse_after_upgrade(
                session.station_id, f"registered for security profile {registered_profile}"
            )
            session.refused = True
            await session.close(CLOSE_POLICY_VIOLATION, "security profile too low")
        return reply.get("bootStatus")

    async def detach(self, session: StationSession) -> None:
        """Clean up after a closed socket without disturbing a newer one for the same station."""
        station_id = session.station_id
        if session.registration is not None and not session.registration.done():
            session.registration.cancel()
        if self.sessions.get(station_id) is session:
            del self.sessions[station_id]
        disconnected: Disconnected = {
            "stationId": station_id,
            "connectionId": session.connection_id,
            "gatewayId": self.gateway_id,
            "disconnectedAt": now_text(),
            "lastSeenAt": format_epoch(session.last_seen_at),
        }
        try:
            await self._disconnections.put(disconnected)
        except BusError:
            # The worker's dead-gateway sweep and the next connection settle presence instead.
            log.warning("could not publish disconnection of %s", station_id, exc_info=True)

    # Station -> CSMS

    async def on_call(self, session: StationSession, call: Call) -> dict[str, Any]:
        """Answer one station CALL, or raise the OcppError to answer it with."""
        action = check_station_action(call.action)
        if (
            action is not StationAction.BOOT_NOTIFICATION
            and not await self._accepted(session)
            and not session.take_trigger(action)
        ):
            raise SecurityError(f"{action} refused: the station's boot is not Accepted")
        validate_request(action, call.payload)
        if action is StationAction.HEARTBEAT:
            return {"currentTime": now_text()}
        message = self._station_message(session, call)
        if action is StationAction.BOOT_NOTIFICATION:
            return await self._boot(session, message)
        await self._publish(action, message)
        return {}

    async def _accepted(self, session: StationSession) -> bool:
        return await self._boot_status(session) == ACCEPTED

    async def _boot_status(self, session: StationSession) -> str | None:
        if session.boot_status is None and session.registration is not None:
            session.boot_status = await _registered(session.registration)
        return None if session.refused else session.boot_status

    def _station_message(self, session: StationSession, call: Call) -> StationMessage:
        return {
            "stationId": session.station_id,
            "connectionId": session.connection_id,
            "gatewayId": self.gateway_id,
            "ocppMessageId": call.message_id,
            "action": call.action,
            "payload": call.payload,
            "receivedAt": now_text(),
        }

    async def _publish(self, action: StationAction, message: StationMessage) -> None:
        try:
            await self._outboxes[action].put(message)
        except BusError as exc:
            log.warning("station %s: %s not stored: %s", message["stationId"], action, exc)
            raise InternalError("message could not be stored, send it again") from exc

    async def _boot(self, session: StationSession, message: StationMessage) -> dict[str, Any]:
        # The connection is recorded before the station hears it is accepted, so that whoever
        # reads the station after its boot sees it connected.
        if session.registration is not None:
            with contextlib.suppress(InternalError):
                await _registered(session.registration)
        if session.refused:
            raise SecurityError("connection refused: security profile too low")
        try:
            decision = cast(BootReply, await self._boots.request(message))
        except RequestTimeout:
            # Stored, but undecided in time: never guess Accepted; the station boots again soon.
            log.warning("no boot decision for %s in time; answering Pending", session.station_id)
            decision = {"status": "Pending", "interval": self._settings.boot_fallback_interval}
        except BusError as exc:
            raise InternalError("boot could not be stored, send it again") from exc
        session.boot_status = decision["status"]
        return {
            "currentTime": now_text(),
            "interval": decision["interval"],
            "status": decision["status"],
        }

    # CSMS -> station

    async def _on_command(self, message: BusMessage) -> Body | None:
        if message.type == topology.TAKEOVER:
            for takeover in unpack_batch(message.body):
                await self._on_takeover(cast(Takeover, takeover))
            return None
        if message.type == topology.REGISTRY_CHANGED:
            await self._on_registry_changed(cast(RegistryChanged, message.body))
            return None
        request = cast(CommandRequest, message.body)
        station_id = request["stationId"]
        session = self.sessions.get(station_id)
        if session is None:
            reply: CommandReply = {"outcome": "notConnected"}
            return dict(reply)
        refusal = await self._command_refusal(session, request["action"])
        if refusal is not None:
            return dict(refusal)
        answer = await session.call(request["action"], request["payload"], request["deadline"])
        if (
            request["action"] == "TriggerMessage"
            and answer.get("payload", {}).get("status") == ACCEPTED
        ):
            session.allow_trigger(request["payload"]["requestedMessage"], _TRIGGER_WINDOW)
        return dict(answer)

    async def _command_refusal(self, session: StationSession, action: str) -> CommandReply | None:
        try:
            status = await self._boot_status(session)
        except InternalError:
            return {"outcome": "notAllowed", "reason": "registration state unavailable"}
        if session.queue_full(self._settings.max_queued_commands):
            return {"outcome": "busy", "reason": "too many commands queued for the station"}
        if status == ACCEPTED or (status == PENDING and action in PENDING_COMMANDS):
            return None
        shown = "not booted" if status is None else status
        return {"outcome": "notAllowed", "reason": f"{action} not allowed: station is {shown}"}

    async def _on_registry_changed(self, change: RegistryChanged) -> None:
        station_id = change["stationId"]
        self._admission.forget(station_id)
        session = self.sessions.get(station_id)
        if session is None:
            return
        if change["removed"] or change["registrationStatus"] == "Rejected":
            log.info("station %s deregistered or rejected; closing its socket", station_id)
            await session.close(CLOSE_DEREGISTERED, "registration withdrawn")

    async def _on_takeover(self, takeover: Takeover) -> None:
        station_id = takeover["stationId"]
        session = self.sessions.get(station_id)
        if session is None or session.connection_id != takeover["connectionId"]:
            return
        log.info("station %s reconnected elsewhere; closing its socket here", station_id)
        del self.sessions[station_id]
        await session.close(CLOSE_REPLACED, "replaced by a newer connection")
