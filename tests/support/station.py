"""A test charging station built on the `ocpp` package's v2.0.1 ChargePoint."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import GenericError
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.client import ClientConnection

SUBPROTOCOL = "ocpp2.0.1"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Station(ChargePoint):
    """Answers Reset and ChangeAvailability as told, and reboots after an accepted Reset."""

    def __init__(self, station_id: str, connection: ClientConnection, url: str) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.url = url
        self.received: list[tuple[str, dict[str, Any]]] = []
        # "Accepted", "Rejected", "Scheduled", "error" (CALLERROR) or "silent" (late answer).
        self.answer = "Accepted"
        self.late_answer_delay = 3.0
        self.reboot_on_reset = True
        self.booted = asyncio.Event()
        self.rebooting: asyncio.Task[None] | None = None
        self.connect_options: dict[str, Any] = {}
        self.trigger_answer = "Accepted"
        self.boot_reasons: list[str] = []
        self.last_boot_status: str | None = None
        self._runner: asyncio.Task[None] | None = None

    def run(self) -> None:
        self._runner = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.start()

    async def stop(self) -> None:
        # A boot still in flight would otherwise wait out its response timeout after the test.
        background = self.rebooting
        if background is not None and background is not asyncio.current_task():
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await background
        await self._connection.close()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    async def _answer(self, action: str, payload: dict[str, Any]) -> str:
        self.received.append((action, payload))
        if self.answer == "error":
            raise GenericError(description=f"{action} refused by test station")
        if self.answer == "silent":
            await asyncio.sleep(self.late_answer_delay)
            return "Accepted"
        return self.answer

    @on("Reset")
    async def on_reset(self, type: str, evse_id: int | None = None, **extra: Any) -> Any:
        payload = {"type": type} | ({"evseId": evse_id} if evse_id is not None else {})
        return call_result.Reset(status=await self._answer("Reset", payload))

    @after("Reset")
    async def after_reset(self, type: str, **extra: Any) -> None:
        if self.reboot_on_reset and self.answer == "Accepted":
            self.rebooting = asyncio.create_task(self.reboot())

    @on("ChangeAvailability")
    async def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **extra: Any
    ) -> Any:
        payload: dict[str, Any] = {"operationalStatus": operational_status}
        if evse is not None:
            payload["evse"] = snake_to_camel_case(evse)
        return call_result.ChangeAvailability(
            status=await self._answer("ChangeAvailability", payload)
        )

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, **extra: Any) -> Any:
        self.received.append(("TriggerMessage", {"requestedMessage": requested_message}))
        return call_result.TriggerMessage(status=self.trigger_answer)

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str, **extra: Any) -> None:
        if requested_message == "BootNotification" and self.trigger_answer == "Accepted":
            self.rebooting = asyncio.create_task(self._boot_in_background("Triggered"))

    async def _boot_in_background(self, reason: str) -> None:
        await self.boot(reason=reason)

    async def reboot(self) -> None:
        """What a real station does after a Reset: drop the socket, reconnect, boot again."""
        await asyncio.sleep(0.2)
        await self.stop()
        self._connection = await websockets.connect(
            self.url, subprotocols=[SUBPROTOCOL], **self.connect_options
        )
        self.run()
        await self.boot(reason="RemoteReset")

    async def boot(self, reason: str = "PowerUp", **station: Any) -> Any:
        charging_station = {"model": "Model-T2", "vendor_name": "TestVendor"} | station
        self.boot_reasons.append(reason)
        response = await self.call(
            call.BootNotification(charging_station=charging_station, reason=reason),
            suppress=False,
        )
        self.last_boot_status = response.status
        self.booted.set()
        return response

    async def heartbeat(self) -> Any:
        return await self.call(call.Heartbeat(), suppress=False)

    async def status(
        self, evse_id: int, connector_id: int, status: str, timestamp: str | None = None
    ) -> Any:
        return await self.call(
            call.StatusNotification(
                timestamp=timestamp or now(),
                connector_status=status,
                evse_id=evse_id,
                connector_id=connector_id,
            ),
            suppress=False,
        )

    async def notify(self, seq_no: int, tbc: bool = False, event_id: int = 1, **item: Any) -> Any:
        event = {
            "event_id": event_id,
            "timestamp": now(),
            "trigger": "Alerting",
            "actual_value": "true",
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "ConnectorPlugRetentionLock", "evse": {"id": 1}},
            "variable": {"name": "Problem"},
        } | item
        return await self.call(
            call.NotifyEvent(generated_at=now(), seq_no=seq_no, tbc=tbc, event_data=[event]),
            suppress=False,
        )


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def connect_station(base_url: str, station_id: str, **connect: Any) -> Station:
    """Connect and serve; `connect` goes to websockets.connect (headers, ssl)."""
    url = f"{base_url}/{station_id}"
    connection = await websockets.connect(url, subprotocols=[SUBPROTOCOL], **connect)
    station = Station(station_id, connection, url)
    station.connect_options = connect
    station.run()
    return station
