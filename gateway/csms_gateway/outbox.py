"""Station messages for one routing key, published together.

Every CALLRESULT still waits until the bus confirmed the message carrying its CALL, but the
CALLs that arrive while a publish is in flight share the next one: one broker message, one
confirm and one worker delivery for many stations. Under light load a message goes out alone
at once; under heavy load a batch holds what arrived during one confirm, so it grows with the
load and bounds the broker's work per station message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import StationMessage, pack_station_messages
from csms.bus.message import BusError, BusMessage

log = logging.getLogger(__name__)

_Waiting = tuple[StationMessage, asyncio.Future[None]]


class Outbox:
    def __init__(self, bus: Bus, routing_key: str, max_batch: int) -> None:
        self._bus = bus
        self._routing_key = routing_key
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._publishing: asyncio.Task[None] | None = None

    async def put(self, message: StationMessage) -> None:
        """Return once the bus confirmed a publish holding `message`; raise BusError if not."""
        confirmed = asyncio.get_running_loop().create_future()
        self._waiting.append((message, confirmed))
        if self._publishing is None:
            self._publishing = asyncio.create_task(self._publish_waiting())
        await confirmed

    async def close(self) -> None:
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing

    async def _publish_waiting(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    await self._bus.publish(
                        topology.EVENTS_EXCHANGE,
                        self._routing_key,
                        BusMessage(
                            body=dict(pack_station_messages([m for m, _ in batch])),
                            type=self._routing_key,
                        ),
                    )
                except BusError as exc:
                    _settle(batch, exc)
                except Exception as exc:
                    log.exception("publishing %s failed", self._routing_key)
                    _settle(batch, BusError(f"publish failed: {exc!r}"))
                else:
                    _settle(batch, None)
                batch = []
        except asyncio.CancelledError:
            stopping = BusError("gateway stopping")
            _settle(batch, stopping)
            _settle(self._waiting, stopping)
            self._waiting = []
            raise
        finally:
            self._publishing = None


def _settle(batch: list[_Waiting], error: BusError | None) -> None:
    for _, confirmed in batch:
        # A waiter whose socket closed meanwhile has cancelled its future.
        if confirmed.done():
            continue
        if error is None:
            confirmed.set_result(None)
        else:
            confirmed.set_exception(error)
