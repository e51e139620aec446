"""One statement for the writes of many concurrent callers.

Each caller submits one item and waits for its own result. What is submitted while a write is
in flight waits for the next one, which takes all of it: a single caller is written at once,
and under load a write holds what arrived meanwhile, so the database's work per item falls as
the load rises. No caller waits longer than one write beyond its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Bounds a statement's size; a larger backlog is written in several statements, in order.
MAX_GROUP = 200


class GroupedWriter(Generic[Item, Result]):
    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        item_fault: Callable[[Exception], bool],
        max_group: int = MAX_GROUP,
    ) -> None:
        """`write` writes a group of items in one statement and returns one result per item, in
        order; it raises if the group could not be written. `item_fault` tells whether an error
        may be one item's fault (bad data), so that each item is worth writing on its own; other
        errors (the database unreachable) fail the whole group at once."""
        self._write = write
        self._item_fault = item_fault
        self._max_group = max_group
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """The item's result once its group is written; the error that failed it otherwise. A
        caller cancelled meanwhile does not stop the write."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_waiting())
        return await done

    async def close(self) -> None:
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writing

    async def _write_waiting(self) -> None:
        group: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                group = self._waiting[: self._max_group]
                del self._waiting[: self._max_group]
                await self._write_group(group)
                group = []
        except asyncio.CancelledError:
            stopping = RuntimeError("writer closed")
            for _, done in [*group, *self._waiting]:
                if not done.done():
                    done.set_exception(stopping)
            self._waiting = []
            raise
        finally:
            self._writing = None

    async def _write_group(self, group: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in group])
        except Exception as exc:
            if len(group) > 1 and self._item_fault(exc):
                # One bad item must not fail the others: each is written on its own.
                for one in group:
                    await self._write_group([one])
                return
            for _, done in group:
                if not done.done():
                    done.set_exception(exc)
            return
        for (_, done), result in zip(group, results, strict=True):
            if not done.done():
                done.set_result(result)
