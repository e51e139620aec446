"""How a consumer's batches are formed from its queue's backlog (both buses)."""

from __future__ import annotations

import asyncio
import math
from typing import Generic, TypeVar

T = TypeVar("T")


class Batching(Generic[T]):
    """Forms a queue's batches one at a time, so that its workers do not split what arrives
    while one of them lingers, and at most one per `linger` seconds: a message after a quiet
    spell is taken at once, and under load each batch holds what arrived since the last one."""

    def __init__(self, max_batch: int, linger: float) -> None:
        self._max_batch = max_batch
        self._linger = linger
        self._forming = asyncio.Lock()
        self._formed_at = -math.inf

    async def next(self, backlog: asyncio.Queue[T]) -> list[T]:
        async with self._forming:
            batch = [await backlog.get()]
            loop = asyncio.get_running_loop()
            wait = self._formed_at + self._linger - loop.time()
            if wait > 0 and backlog.qsize() + 1 < self._max_batch:
                await asyncio.sleep(wait)
            while len(batch) < self._max_batch and not backlog.empty():
                batch.append(backlog.get_nowait())
            self._formed_at = loop.time()
            return batch
