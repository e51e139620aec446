"""Concurrent callers' writes grouped into one: each caller gets its own result or error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from csms.db.grouping import GroupedWriter


def _bad_data(error: Exception) -> bool:
    return isinstance(error, ValueError)


class _HeldWrites:
    """Writes complete only when the test releases them; items named "bad" fail theirs with a
    ValueError, items named "down" with a ConnectionError."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()

    async def write(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        await self.release.wait()
        if "bad" in items:
            raise ValueError("bad item")
        if "down" in items:
            raise ConnectionError("database unreachable")
        return [item.upper() for item in items]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_a_lone_item_is_written_at_once_and_later_ones_share_the_next_write() -> None:
    writes = _HeldWrites()
    writer = GroupedWriter(writes.write, item_fault=_bad_data)
    first = asyncio.create_task(writer.submit("a"))
    await _until(lambda: writes.groups == [["a"]])
    later = [asyncio.create_task(writer.submit(item)) for item in ("b", "c", "d")]
    await asyncio.sleep(0)
    assert writes.groups == [["a"]]

    writes.release.set()

    assert await first == "A"
    assert await asyncio.gather(*later) == ["B", "C", "D"]
    assert writes.groups == [["a"], ["b", "c", "d"]]


async def test_a_group_is_at_most_max_group_items() -> None:
    writes = _HeldWrites()
    writer = GroupedWriter(writes.write, item_fault=_bad_data, max_group=2)
    writes.release.set()

    results = await asyncio.gather(*(writer.submit(item) for item in "abcde"))

    assert results == list("ABCDE")
    assert writes.groups == [["a", "b"], ["c", "d"], ["e"]]


async def _one_group(writes: _HeldWrites, items: tuple[str, ...]) -> list[asyncio.Task[str]]:
    """Submit `items` while another write is held, so they form one group; then release."""
    writer = GroupedWriter(writes.write, item_fault=_bad_data)
    blocker = asyncio.create_task(writer.submit("x"))
    await _until(lambda: len(writes.groups) == 1)
    group = [asyncio.create_task(writer.submit(item)) for item in items]
    await asyncio.sleep(0)
    writes.release.set()
    assert await blocker == "X"
    return group


async def test_a_bad_item_fails_alone_and_the_others_of_its_group_are_written() -> None:
    writes = _HeldWrites()
    group = await _one_group(writes, ("a", "bad", "c"))

    assert await group[0] == "A"
    with pytest.raises(ValueError, match="bad item"):
        await group[1]
    assert await group[2] == "C"
    assert writes.groups == [["x"], ["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_an_error_that_is_no_items_fault_fails_the_whole_group_at_once() -> None:
    writes = _HeldWrites()
    group = await _one_group(writes, ("a", "down", "c"))

    for caller in group:
        with pytest.raises(ConnectionError, match="database unreachable"):
            await caller
    assert writes.groups == [["x"], ["a", "down", "c"]]


async def test_a_cancelled_caller_does_not_stop_the_write_of_its_group() -> None:
    writes = _HeldWrites()
    writer = GroupedWriter(writes.write, item_fault=_bad_data)
    gone = asyncio.create_task(writer.submit("a"))
    await _until(lambda: writes.groups == [["a"]])
    gone.cancel()
    waiting = asyncio.create_task(writer.submit("b"))
    await asyncio.sleep(0)
    writes.release.set()

    assert await waiting == "B"
    assert writes.groups == [["a"], ["b"]]
    assert gone.cancelled()


async def test_closing_fails_the_callers_still_waiting() -> None:
    writes = _HeldWrites()
    writer = GroupedWriter(writes.write, item_fault=_bad_data)
    callers = [asyncio.create_task(writer.submit(item)) for item in ("a", "b")]
    await _until(lambda: writes.groups == [["a", "b"]])
    callers.append(asyncio.create_task(writer.submit("c")))
    await asyncio.sleep(0)

    await writer.close()

    for caller in callers:
        with pytest.raises(RuntimeError, match="writer closed"):
            await caller
