"""A bare OCPP-J socket, for sending frames the `ocpp` package would never send."""

from __future__ import annotations

import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.station import SUBPROTOCOL


async def connect_raw(base_url: str, station_id: str, **connect: Any) -> ClientConnection:
    return await websockets.connect(
        f"{base_url}/{station_id}", subprotocols=[SUBPROTOCOL], **connect
    )


async def exchange(connection: ClientConnection, frame: str | list[Any]) -> list[Any]:
    """Send one frame (text as is, a list as JSON) and return the decoded answer."""
    await connection.send(frame if isinstance(frame, str) else json.dumps(frame))
    answer = json.loads(await connection.recv(decode=True))
    assert isinstance(answer, list)
    return answer
