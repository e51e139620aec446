"""In-process bus for standalone mode, with the same contract as RabbitMQ.

Topic routing, direct routing with `mandatory`, reply-to and ack-after-handler are kept. It is
stricter on one point: a publish to a durable work queue returns only after the consumer's
handler succeeded, because with no broker the consumer's commit is the only safe place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from csms.bus import topology
from csms.bus.base import Bus, cancel_tasks
from csms.bus.batching import Batching
from csms.bus.message import (
    BatchHandler,
    Body,
    BusError,
    BusMessage,
    Handler,
    Outcome,
    Unroutable,
    one_by_one,
)

log = logging.getLogger(__name__)

# A failed delivery is retried after this pause, so a broken database is not hammered.
_REDELIVERY_DELAY = 0.2


@dataclass(eq=False)
class _Delivery:
    message: BusMessage
    # Resolved when the consumer acked; None for queues nobody waits on.
    acked: asyncio.Future[None] | None


@dataclass(eq=False)
class _Queue:
    name: str
    durable: bool
    items: asyncio.Queue[_Delivery] = field(default_factory=asyncio.Queue)


class MemoryBus(Bus):
    def __init__(self, max_redeliveries: int = 5) -> None:
        super().__init__()
        self._max_redeliveries = max_redeliveries
        self._queues: dict[str, _Queue] = {}
        self._topic_bindings: list[tuple[str, _Queue]] = []
        self._direct_bindings: dict[str, set[_Queue]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbox: _Queue | None = None
        self._reply_queue = "reply.memory"
        self.dead_letters: list[BusMessage] = []

    @property
    def reply_queue(self) -> str:
        return self._reply_queue

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        await cancel_tasks(self._tasks)

    async def declare_work_queues(self) -> None:
        for work_queue in topology.WORK_QUEUES:
            queue = self._queues.setdefault(work_queue.name, _Queue(work_queue.name, durable=True))
            for key in work_queue.routing_keys:
                if (key, queue) not in self._topic_bindings:
                    self._topic_bindings.append((key, queue))

    async def publish(
        self, exchange: str, routing_key: str, message: BusMessage, *, mandatory: bool = False
    ) -> None:
        if exchange == "" and routing_key == self._reply_queue:
            self._deliver_reply(message.correlation_id, message.body)
            return
        targets = self._route(exchange, routing_key)
        if not targets:
            if mandatory:
                raise Unroutable(f"no queue bound to {exchange!r} for {routing_key!r}")
            return
        waits: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for queue in targets:
            acked = loop.create_future() if queue.durable else None
            # Each queue gets its own copy, as a broker would deliver.
            copy = BusMessage(
                body=message.body,
                type=message.type,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                reply_to=message.reply_to,
                ttl=message.ttl,
            )
            queue.items.put_nowait(_Delivery(copy, acked))
            if acked is not None:
                waits.append(acked)
        if waits:
            await asyncio.gather(*waits)

    def _route(self, exchange: str, routing_key: str) -> list[_Queue]:
        if exchange == topology.EVENTS_EXCHANGE:
            return [
                q for key, q in self._topic_bindings if topology.topic_matches(key, routing_key)
            ]
        if exchange == topology.COMMANDS_EXCHANGE:
            return list(self._direct_bindings.get(routing_key, ()))
        if exchange == topology.CONTROL_EXCHANGE:
            return [self._inbox] if self._inbox is not None else []
        if exchange == "":
            queue = self._queues.get(routing_key)
            return [queue] if queue else []
        raise BusError(f"unknown exchange {exchange!r}")

    async def send_reply(self, reply_to: str, correlation_id: str, body: Body) -> None:
        await self.publish("", reply_to, BusMessage(body=body, correlation_id=correlation_id))

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        concurrency: int = 1,
        max_batch: int = 1,
        linger: float = 0.0,
    ) -> None:
        target = self._queues.get(queue)
        if target is None:
            raise BusError(f"queue {queue!r} is not declared")
        batching: Batching[_Delivery] = Batching(max_batch, linger)
        for _ in range(concurrency):
            self._spawn(self._consume_loop(target, handler, batching))

    async def open_inbox(self, queue: str, handler: Handler) -> None:
        self._inbox = _Queue(queue, durable=False)
        self._queues[queue] = self._inbox
        self._direct_bindings.setdefault(queue, set()).add(self._inbox)
        # As on RabbitMQ: each message in a task of its own, and a failed one is not retried.
        self._spawn(self._dispatch_loop(self._inbox, one_by_one(handler)))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume_loop(
        self, queue: _Queue, handler: BatchHandler, batching: Batching[_Delivery]
    ) -> None:
        while True:
            batch = await batching.next(queue.items)
            outcomes = await self._run(handler, [delivery.message for delivery in batch])
            for delivery, outcome in zip(batch, outcomes, strict=True):
                await self._finish(queue, delivery, handler, outcome, retry=True)

    async def _dispatch_loop(self, queue: _Queue, handler: BatchHandler) -> None:
        while True:
            delivery = await queue.items.get()
            self._spawn(self._deliver(queue, delivery, handler))

    async def _deliver(self, queue: _Queue, delivery: _Delivery, handler: BatchHandler) -> None:
        (outcome,) = await self._run(handler, [delivery.message])
        await self._finish(queue, delivery, handler, outcome, retry=False)

    async def _finish(
        self,
        queue: _Queue,
        delivery: _Delivery,
        handler: BatchHandler,
        outcome: Outcome,
        *,
        retry: bool,
    ) -> None:
        if isinstance(outcome, Exception):
            log.error("handler for %s failed", queue.name, exc_info=outcome)
            await self._redeliver(queue, delivery, handler, retry, outcome)
        else:
            await self._settle(delivery, outcome)

    async def _run(self, handler: BatchHandler, messages: list[BusMessage]) -> list[Outcome]:
        try:
            return await handler(messages)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return [exc] * len(messages)

    async def _settle(self, delivery: _Delivery, reply: Body | None) -> None:
        message = delivery.message
        if reply is not None and message.reply_to and message.correlation_id:
            await self.send_reply(message.reply_to, message.correlation_id, reply)
        if delivery.acked is not None and not delivery.acked.done():
            delivery.acked.set_result(None)

    async def _redeliver(
        self,
        queue: _Queue,
        delivery: _Delivery,
        handler: BatchHandler,
        retry: bool,
        error: Exception,
    ) -> None:
        """Retry one failed message alone, a bounded number of times, then dead-letter it."""
        for attempt in range(1, self._max_redeliveries + 1 if retry else 1):
            await asyncio.sleep(_REDELIVERY_DELAY)
            message = dataclasses.replace(delivery.message, redelivered=True)
            (outcome,) = await self._run(handler, [message])
            if not isinstance(outcome, Exception):
                await self._settle(delivery, outcome)
                return
            log.error("handler for %s failed (attempt %d)", queue.name, attempt + 1)
            error = outcome
        self.dead_letters.append(delivery.message)
        if delivery.acked is not None and not delivery.acked.done():
            delivery.acked.set_exception(BusError(f"dead-lettered from {queue.name}: {error}"))
