"""One keep-alive for all sockets: silent ones are pinged, dead ones closed, busy ones left be."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.http11 import Request

from csms_gateway.keepalive import Keepalive
from csms_gateway.session import RateLimit, StationSession
from csms_gateway.station_socket import StationSocket
from tests.support.gateway_sockets import listening

INTERVAL = 0.2
TIMEOUT = 0.3


class _Gateway:
    """A WebSocket server whose sockets are StationSessions, kept alive by a Keepalive."""

    def __init__(self) -> None:
        self.sessions: dict[str, StationSession] = {}
        # Station id -> the close code the gateway sent.
        self.closed: dict[str, int | None] = {}
        self.keepalive = Keepalive(self.sessions, INTERVAL, TIMEOUT)
        self.port = 0

    async def handle(self, socket: StationSocket, request: Request) -> None:
        station_id = request.path.rsplit("/", 1)[1]

        async def on_call(session: StationSession, call: Any) -> dict[str, Any]:
            return {}

        session = StationSession(
            socket, station_id, on_call, lambda _: None, RateLimit(100, 100, 1000)
        )
        self.sessions[station_id] = session
        try:
            await session.run()
        finally:
            del self.sessions[station_id]
            self.closed[station_id] = socket.close_code


@pytest.fixture
async def gateway() -> AsyncIterator[_Gateway]:
    under_test = _Gateway()
    async with listening(under_test.handle) as server:
        under_test.port = server.port
        under_test.keepalive.start()
        try:
            yield under_test
        finally:
            await under_test.keepalive.stop()


async def _silent_peer(port: int, station_id: str) -> asyncio.StreamWriter:
    """A socket that completes the handshake and then never reads again (never pongs)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ocpp/{station_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return writer


async def test_a_peer_that_never_answers_pings_is_closed_with_1011(gateway: _Gateway) -> None:
    writer = await _silent_peer(gateway.port, "DEAD")
    try:
        async with asyncio.timeout(INTERVAL + TIMEOUT + 3):
            while "DEAD" not in gateway.closed:
                await asyncio.sleep(0.05)
        assert gateway.closed["DEAD"] == 1011
    finally:
        writer.close()


async def test_a_live_silent_peer_answers_pings_and_stays(gateway: _Gateway) -> None:
    async with connect(f"ws://127.0.0.1:{gateway.port}/ocpp/LIVE", ping_interval=None):
        await asyncio.sleep(INTERVAL * 2)
        session = gateway.sessions["LIVE"]
        assert session.pinged_at > 0, "a silent socket is pinged"
        await asyncio.sleep(INTERVAL + TIMEOUT * 2)
        assert "LIVE" in gateway.sessions


async def test_a_busy_peer_is_not_pinged(gateway: _Gateway) -> None:
    async with connect(f"ws://127.0.0.1:{gateway.port}/ocpp/BUSY", ping_interval=None) as ws:
        deadline = time.monotonic() + INTERVAL * 4
        while time.monotonic() < deadline:
            await ws.send('[3, "unknown", {}]')  # traffic; answers nothing
            await asyncio.sleep(INTERVAL / 4)
        assert gateway.sessions["BUSY"].pinged_at == 0.0
