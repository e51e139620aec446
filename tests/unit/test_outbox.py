"""Station messages published together: each caller returns only once its own batch is confirmed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import StationMessage, unpack_station_messages
from csms.bus.message import BusError, BusMessage
from csms_gateway.outbox import Outbox

KEY = topology.ocpp_key("StatusNotification")


class _HeldBus:
    """Publishes complete only when the test releases them; the first `failures` fail."""

    def __init__(self, failures: int = 0) -> None:
        self.published: list[list[str]] = []
        self.release = asyncio.Event()
        self._failures = failures

    async def publish(self, exchange: str, routing_key: str, message: BusMessage) -> None:
        assert (exchange, routing_key, message.type) == (topology.EVENTS_EXCHANGE, KEY, KEY)
        self.published.append([m["ocppMessageId"] for m in unpack_station_messages(message.body)])
        await self.release.wait()
        self.release.clear()
        if self._failures:
            self._failures -= 1
            raise BusError("not confirmed")


def _message(number: int) -> StationMessage:
    return cast(StationMessage, {"ocppMessageId": str(number)})


def _outbox(bus: _HeldBus, max_batch: int = 100) -> Outbox:
    return Outbox(cast(Bus, bus), KEY, max_batch)


async def _until(condition: Any) -> None:
    async with asyncio.timeout(2):
        while not condition():
            await asyncio.sleep(0)


async def test_messages_arriving_during_a_publish_share_the_next_one() -> None:
    bus = _HeldBus()
    outbox = _outbox(bus)
    first = asyncio.create_task(outbox.put(_message(1)))
    await _until(lambda: bus.published == [["1"]])
    later = [asyncio.create_task(outbox.put(_message(n))) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert not first.done()
    assert not any(t.done() for t in later)

    bus.release.set()
    await first
    await _until(lambda: len(bus.published) == 2)
    assert bus.published[1] == ["2", "3", "4"]
    assert not any(t.done() for t in later), "answered before their own publish was confirmed"
    bus.release.set()
    await asyncio.gather(*later)


async def test_a_batch_is_bounded() -> None:
    bus = _HeldBus()
    outbox = _outbox(bus, max_batch=2)
    puts = [asyncio.create_task(outbox.put(_message(n))) for n in range(5)]
    for published in (1, 2, 3):
        await _until(lambda: len(bus.published) == published)  # noqa: B023 (awaited at once)
        bus.release.set()
    await asyncio.gather(*puts)
    assert bus.published == [["0", "1"], ["2", "3"], ["4"]]


async def test_a_failed_publish_fails_every_message_in_it_and_only_those() -> None:
    bus = _HeldBus(failures=1)
    outbox = _outbox(bus)
    first = asyncio.create_task(outbox.put(_message(1)))
    await _until(lambda: len(bus.published) == 1)
    second = asyncio.create_task(outbox.put(_message(2)))
    await asyncio.sleep(0)
    bus.release.set()
    with pytest.raises(BusError):
        await first
    await _until(lambda: len(bus.published) == 2)
    bus.release.set()
    await second


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    bus = _HeldBus()
    outbox = _outbox(bus)
    first = asyncio.create_task(outbox.put(_message(1)))
    await _until(lambda: len(bus.published) == 1)
    gone, staying = (asyncio.create_task(outbox.put(_message(n))) for n in (2, 3))
    await asyncio.sleep(0)
    gone.cancel()
    bus.release.set()
    await first
    await _until(lambda: len(bus.published) == 2)
    bus.release.set()
    await staying
    assert gone.cancelled()


async def test_closing_fails_what_was_not_confirmed() -> None:
    bus = _HeldBus()
    outbox = _outbox(bus)
    in_flight = asyncio.create_task(outbox.put(_message(1)))
    await _until(lambda: len(bus.published) == 1)
    queued = asyncio.create_task(outbox.put(_message(2)))
    await asyncio.sleep(0)
    await outbox.close()
    for task in (in_flight, queued):
        with pytest.raises(BusError):
            await task
