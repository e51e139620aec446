"""A connection the gateway could not attach (the bus failed half-way) leaves nothing behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from csms.bus.message import BusError
from csms.config import Settings
from csms_gateway.admission import Admission
from csms_gateway.relay import Relay
from csms_gateway.server import OcppServer
from csms_gateway.session import StationSession


@dataclass
class _WebSocket:
    subprotocol: str = "ocpp2.0.1"
    closed: list[tuple[int, str]] = field(default_factory=list)

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


class _Seen:
    def note(self, station_id: str) -> None:
        pass


@dataclass
class _FailingRelay:
    failure: Exception
    sessions: dict[str, StationSession] = field(default_factory=dict)
    detached: list[StationSession] = field(default_factory=list)
    seen: _Seen = field(default_factory=_Seen)

    async def on_call(self, session: StationSession, call: Any) -> dict[str, Any]:
        return {}

    async def attach(self, session: StationSession) -> None:
        self.sessions[session.station_id] = session  # as the real one does, before the bus
        raise self.failure

    async def detach(self, session: StationSession) -> None:
        self.detached.append(session)
        if self.sessions.get(session.station_id) is session:
            del self.sessions[session.station_id]


class _Admission:
    def refuse_tls(self, error: Exception) -> None:
        pass


async def _serve_with(failure: Exception) -> tuple[_FailingRelay, _WebSocket]:
    relay = _FailingRelay(failure)
    server = OcppServer(cast(Relay, relay), cast(Admission, _Admission()), Settings(amqp_url=None))
    websocket = _WebSocket()
    await server._serve(cast(Any, websocket), "/ocpp/CS-half", None)
    return relay, websocket


async def test_a_bus_failure_while_attaching_closes_and_detaches() -> None:
    relay, websocket = await _serve_with(BusError("publish not confirmed in time"))

    assert websocket.closed == [(1011, "CSMS unavailable")]
    assert [session.station_id for session in relay.detached] == ["CS-half"]
    assert relay.sessions == {}


async def test_an_unexpected_failure_while_attaching_is_cleaned_up_too() -> None:
    relay, websocket = await _serve_with(RuntimeError("bug"))

    assert websocket.closed == [(1011, "CSMS unavailable")]
    assert relay.sessions == {}
