"""The contract every bus implementation keeps (RabbitMQ in production, in-process standalone)."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

from csms.bus.message import (
    BatchHandler,
    Body,
    BusMessage,
    Handler,
    RequestTimeout,
    one_by_one,
)


class Bus(ABC):
    """Publish with confirmation, consume with ack-after-success, and request/reply.

    - `publish` returns only once the message is safe (broker-confirmed); it raises BusError
      otherwise, and Unroutable when `mandatory` is set and no queue is bound for the key.
    - `consume` acks a message only after its handler returned; a failing handler's message is
      redelivered a bounded number of times, then dead-lettered.
    - `request` publishes with `reply_to` and waits for the reply with the same correlation id.
    """

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Body]] = {}

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def declare_work_queues(self) -> None:
        """Declare the exchanges and the durable worker queues with their bindings."""

    @abstractmethod
    async def publish(
        self, exchange: str, routing_key: str, message: BusMessage, *, mandatory: bool = False
    ) -> None: ...

    @abstractmethod
    async def send_reply(self, reply_to: str, correlation_id: str, body: Body) -> None:
        """Best-effort answer to a request; the requester may have stopped waiting."""

    async def consume(self, queue: str, handler: Handler, *, concurrency: int = 1) -> None:
        """Start consuming a durable queue declared by `declare_work_queues`."""
        await self.consume_batches(queue, one_by_one(handler), concurrency=concurrency)

    @abstractmethod
    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        concurrency: int = 1,
        max_batch: int = 1,
        linger: float = 0.0,
    ) -> None:
        """Consume in batches of up to `max_batch`, formed at most one per `linger` seconds (a
        message after a quiet spell is handled at once; under load a batch holds what arrived
        meanwhile): one handler call, then each message is acked or redelivered on its own outcome.
        With concurrency 1, messages are handled in the queue's order."""

    @abstractmethod
    async def open_inbox(self, queue: str, handler: Handler) -> None:
        """Declare and consume this process's exclusive queue: it receives what is published to
        the commands exchange with its name as routing key, and everything published to the
        control exchange. Each message is handled on its own, as many at once as arrive; one
        whose handler fails is dropped (a command may have reached its station already)."""

    @property
    @abstractmethod
    def reply_queue(self) -> str: ...

    async def request(
        self,
        exchange: str,
        routing_key: str,
        message: BusMessage,
        *,
        timeout: float,
        mandatory: bool = False,
    ) -> Body:
        """Publish and wait up to `timeout` seconds for the reply."""
        reply = await self.send_request(exchange, routing_key, message, mandatory=mandatory)
        return await wait_reply(reply, timeout, routing_key)

    async def send_request(
        self, exchange: str, routing_key: str, message: BusMessage, *, mandatory: bool = False
    ) -> asyncio.Future[Body]:
        """Publish with `reply_to`; once the publish is confirmed, return the future its reply
        resolves. Cancel the future when no longer waiting (`wait_reply` does)."""
        correlation_id = message.correlation_id or message.message_id
        message.correlation_id = correlation_id
        message.reply_to = self.reply_queue
        future: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        future.add_done_callback(lambda _: self._forget_request(correlation_id, future))
        try:
            await self.publish(exchange, routing_key, message, mandatory=mandatory)
        except BaseException:
            future.cancel()
            raise
        return future

    def _forget_request(self, correlation_id: str, future: asyncio.Future[Body]) -> None:
        if self._pending.get(correlation_id) is future:
            del self._pending[correlation_id]

    def _deliver_reply(self, correlation_id: str | None, body: Body) -> None:
        """Resolve a waiting request; replies nobody waits for any more are dropped."""
        future = self._pending.get(correlation_id or "")
        if future is not None and not future.done():
            future.set_result(body)


async def wait_reply(reply: asyncio.Future[Body], timeout: float, routing_key: str) -> Body:
    """The reply, or RequestTimeout after `timeout` seconds (the reply is then abandoned)."""
    try:
        async with asyncio.timeout(timeout):
            return await reply
    except TimeoutError:
        raise RequestTimeout(f"no reply to {routing_key} within {timeout} s") from None
    finally:
        reply.cancel()


async def cancel_tasks(tasks: set[asyncio.Task[None]]) -> None:
    running = list(tasks)
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    tasks.clear()
