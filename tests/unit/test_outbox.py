"""Station messages published together: each caller returns only once its own batch is confirmed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import StationMessage, unpack_batch
from csms.bus.message import BusError, BusMessage, RequestTimeout
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
        self.published.append([m["ocppMessageId"] for m in unpack_batch(message.body)])
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


class _AnsweringBus:
    """Confirms request batches at once; the test answers each batch through `replies`."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.replies: list[asyncio.Future[dict[str, Any]]] = []

    async def send_request(
        self, exchange: str, routing_key: str, message: BusMessage
    ) -> asyncio.Future[dict[str, Any]]:
        assert (exchange, routing_key, message.type) == (topology.EVENTS_EXCHANGE, KEY, KEY)
        self.batches.append([m["ocppMessageId"] for m in unpack_batch(message.body)])
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies.append(reply)
        return reply


def _request_outbox(bus: _AnsweringBus, timeout: float = 5.0) -> Outbox:
    return Outbox(cast(Bus, bus), KEY, 100, reply_timeout=timeout)


async def test_requests_waiting_together_share_one_bus_request_and_each_gets_its_own_reply() -> (
    None
):
    bus = _AnsweringBus()
    outbox = _request_outbox(bus)
    requests = [asyncio.create_task(outbox.request(_message(n))) for n in (1, 2, 3)]
    await _until(lambda: len(bus.batches) == 1)
    assert bus.batches == [["1", "2", "3"]]
    bus.replies[0].set_result({"replies": [{"n": 1}, {"error": "bad boot"}, {"n": 3}]})
    first, failed, third = await asyncio.gather(*requests, return_exceptions=True)
    assert (first, third) == ({"n": 1}, {"n": 3})
    assert isinstance(failed, BusError)
    assert not isinstance(failed, RequestTimeout)


async def test_a_batch_forms_while_the_previous_one_waits_for_its_reply() -> None:
    bus = _AnsweringBus()
    outbox = _request_outbox(bus)
    first = asyncio.create_task(outbox.request(_message(1)))
    await _until(lambda: len(bus.batches) == 1)
    second = asyncio.create_task(outbox.request(_message(2)))
    await _until(lambda: len(bus.batches) == 2)
    bus.replies[1].set_result({"replies": [{"n": 2}]})
    assert await second == {"n": 2}
    assert not first.done()
    bus.replies[0].set_result({"replies": [{"n": 1}]})
    assert await first == {"n": 1}


async def test_an_unanswered_batch_times_out_and_a_malformed_reply_fails_it() -> None:
    bus = _AnsweringBus()
    outbox = _request_outbox(bus, timeout=0.05)
    with pytest.raises(RequestTimeout):
        await outbox.request(_message(1))
    late = asyncio.create_task(_request_outbox(bus).request(_message(2)))
    await _until(lambda: len(bus.batches) == 2)
    bus.replies[1].set_result({"replies": []})
    with pytest.raises(BusError, match="malformed"):
        await late


async def test_after_a_quiet_spell_a_message_goes_at_once_and_under_load_publishes_are_spaced() -> (
    None
):
    bus = _HeldBus()
    bus.release.set()  # every publish is confirmed at once
    outbox = Outbox(cast(Bus, bus), KEY, 100, linger=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await outbox.put(_message(1))
    assert loop.time() - started < 0.1
    bus.release.set()
    await asyncio.gather(*(outbox.put(_message(n)) for n in (2, 3, 4)))
    assert loop.time() - started >= 0.19
    assert bus.published == [["1"], ["2", "3", "4"]]
