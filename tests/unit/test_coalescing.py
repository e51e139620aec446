"""The coalescer: what is added in one round of the event loop is sent once per key, in order."""

from __future__ import annotations

import asyncio
import gc

import pytest

from csms.bus.coalescing import Coalescer


class Recorder:
    def __init__(self, fail_for: str | None = None) -> None:
        self.sent: list[tuple[str, list[int]]] = []
        self.fail_for = fail_for

    async def send(self, key: str, items: list[int]) -> None:
        await asyncio.sleep(0)
        if key == self.fail_for:
            raise RuntimeError(f"{key} is down")
        self.sent.append((key, items))


async def test_one_round_makes_one_send_per_key_in_the_order_added() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.send)

    futures = [coalescer.add(key, n) for n, key in enumerate("abab")]
    await asyncio.gather(*futures)

    assert recorder.sent == [("a", [0, 2]), ("b", [1, 3])]
    # One future per batch, shared by its items.
    assert futures[0] is futures[2]
    assert futures[0] is not futures[1]


async def test_a_later_round_makes_a_send_of_its_own() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.send)

    await coalescer.add("a", 1)
    await coalescer.add("a", 2)

    assert recorder.sent == [("a", [1]), ("a", [2])]


async def test_a_failed_send_fails_its_own_batch_only() -> None:
    recorder = Recorder(fail_for="down")
    coalescer: Coalescer[str, int] = Coalescer(recorder.send)

    down, up = coalescer.add("down", 1), coalescer.add("up", 2)

    with pytest.raises(RuntimeError, match="down is down"):
        await down
    await up
    assert recorder.sent == [("up", [2])]


async def test_close_sends_what_was_added_and_waits_for_it() -> None:
    recorder = Recorder()
    coalescer: Coalescer[str, int] = Coalescer(recorder.send)

    coalescer.add("a", 1)
    await coalescer.close()

    assert recorder.sent == [("a", [1])]


async def test_a_failed_batch_nobody_awaits_is_not_reported_as_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(fail_for="down")
    coalescer: Coalescer[str, int] = Coalescer(recorder.send)

    coalescer.add("down", 1)
    await coalescer.close()
    del coalescer
    gc.collect()

    assert "never retrieved" not in caplog.text
