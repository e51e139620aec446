"""The gateway process: OCPP server plus bus relay."""

from __future__ import annotations

import uuid

from csms.bus.base import Bus
from csms.config import Settings
from csms.ocpp.actions import CsmsAction, StationAction
from csms.ocpp.validation import compile_validators
from csms_gateway.admission import Admission
from csms_gateway.relay import Relay
from csms_gateway.server import OcppServer


class Gateway:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        # Unique per process, so a restarted gateway never inherits a dead one's queue.
        gateway_id = f"{settings.instance_id}.{uuid.uuid4().hex[:8]}"
        self.admission = Admission(bus, settings)
        self.relay = Relay(bus, settings, gateway_id, self.admission)
        self.server = OcppServer(self.relay, self.admission, settings)

    async def start(self) -> None:
        # Before the first station: the schemas of what stations send and of the answers to
        # what the CSMS sends them.
        compile_validators(requests=StationAction, responses=CsmsAction)
        await self.relay.start()
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        await self.relay.stop()
