"""Messages for one destination, gathered while the event loop finishes its current round and
sent together as one AMQP message (ADR 0025).

A command's request to a gateway and the gateway's reply each cost the requester, the broker
and the gateway a whole AMQP message: frames marshalled and parsed in pure Python, a delivery
object, a publisher confirm. At 500 commands a second about half of the requests leave the
commands API in the same round of its event loop as another for the same gateway (the
journal's grouped writes wake them together), and more as the load grows. Nothing waits for a
batch to fill: what a round produced goes out at its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

Send = Callable[[K, list[T]], Awaitable[None]]


class Coalescer(Generic[K, T]):
    """`add` an item for a key; at the end of the loop's round, `send(key, items)` runs once per
    key with every item added for it meanwhile, in order. The future `add` returns resolves
    when that send finishes, with its exception if it failed (shared by the whole batch)."""

    def __init__(self, send: Send[K, T]) -> None:
        self._send = send
        self._open: dict[K, tuple[list[T], asyncio.Future[None]]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, key: K, item: T) -> asyncio.Future[None]:
        entry = self._open.get(key)
        if entry is None:
            loop = asyncio.get_running_loop()
            if not self._open:
                loop.call_soon(self._flush)
            entry = self._open[key] = ([], loop.create_future())
        entry[0].append(item)
        return entry[1]

    def _flush(self) -> None:
        batches, self._open = self._open, {}
        for key, (items, sent) in batches.items():
            task = asyncio.create_task(self._run(key, items, sent))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _run(self, key: K, items: list[T], sent: asyncio.Future[None]) -> None:
        try:
            await self._send(key, items)
        except Exception as exc:
            sent.set_exception(exc)
            # Retrieved here: a batch nobody waits for any more must not log "never retrieved".
            sent.exception()
        else:
            sent.set_result(None)

    async def close(self) -> None:
        """Let the batches being sent finish (those not flushed yet are flushed first)."""
        if self._open:
            self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
