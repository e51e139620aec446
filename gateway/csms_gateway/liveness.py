"""Liveness without a database write per message: traffic is noted in memory and reported
in one `station.seen` message per interval, which also proves the gateway alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import Seen
from csms.bus.message import BusError, BusMessage
from csms.timeutil import format_epoch, now_text

log = logging.getLogger(__name__)

# Keeps each beat message small even with many thousands of busy stations.
_MAX_STATIONS_PER_BEAT = 5000


class SeenTracker:
    def __init__(self, bus: Bus, gateway_id: str, interval: float) -> None:
        self._bus = bus
        self._gateway_id = gateway_id
        self._interval = interval
        self._seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, station_id: str) -> None:
        self._seen[station_id] = time.time()

    async def start(self) -> None:
        await self.flush()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(BusError):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except BusError:
                log.warning("liveness beat not published; retrying next interval", exc_info=True)

    async def flush(self) -> None:
        seen, self._seen = self._seen, {}
        items = list(seen.items())
        chunks = [
            items[i : i + _MAX_STATIONS_PER_BEAT]
            for i in range(0, len(items), _MAX_STATIONS_PER_BEAT)
        ] or [[]]
        for index, chunk in enumerate(chunks):
            beat: Seen = {
                "gatewayId": self._gateway_id,
                "beatAt": now_text(),
                "seen": {station: format_epoch(at) for station, at in chunk},
            }
            try:
                await self._bus.publish(
                    topology.EVENTS_EXCHANGE,
                    topology.STATION_SEEN,
                    BusMessage(body=dict(beat), type=topology.STATION_SEEN),
                )
            except BusError:
                # Keep what was not reported, unless newer traffic replaced it meanwhile.
                for chunk_left in chunks[index:]:
                    for station, at in chunk_left:
                        self._seen.setdefault(station, at)
                raise
