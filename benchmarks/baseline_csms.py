"""The baseline: the central system a Python user would write directly on the `ocpp` package.

One process, one ChargePoint per socket, handlers that answer from memory; no broker, no
database, no validation beyond the package's own. Run: python -m benchmarks.baseline_csms PORT
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result


def _now() -> str:
    return datetime.now(UTC).isoformat()


class CentralChargePoint(ChargePoint):
    @on("BootNotification")
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        return call_result.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on("Heartbeat")
    async def on_heartbeat(self, **_: Any) -> Any:
        return call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    async def on_status(self, **_: Any) -> Any:
        return call_result.StatusNotification()

    @on("NotifyEvent")
    async def on_event(self, **_: Any) -> Any:
        return call_result.NotifyEvent()


async def _serve_station(connection: websockets.ServerConnection) -> None:
    if connection.subprotocol != "ocpp2.0.1":
        await connection.close()
        return
    assert connection.request is not None
    station = CentralChargePoint(connection.request.path.rsplit("/", 1)[-1], connection)
    try:
        await station.start()
    except websockets.ConnectionClosed:
        pass


async def main(port: int) -> None:
    async with websockets.serve(
        _serve_station, "127.0.0.1", port, subprotocols=["ocpp2.0.1"], max_size=65536
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
