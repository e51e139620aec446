"""RabbitMQ bus: persistent messages, publisher confirms, quorum work queues, ack after commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, DeliveryError, PublishError
from pamqp.commands import Basic

from csms.bus import topology
from csms.bus.base import Bus, cancel_tasks
from csms.bus.batching import Batching
from csms.bus.coalescing import Coalescer
from csms.bus.message import (
    BatchHandler,
    Body,
    BusError,
    BusMessage,
    Handler,
    Unroutable,
    new_id,
)

log = logging.getLogger(__name__)

# A failed handler's message goes back to the queue after this pause (the broker counts the
# deliveries and dead-letters the message past `max_redeliveries`).
_REDELIVERY_DELAY = 1.0
# The type of an AMQP message that carries several: messages for one inbox, or replies for one
# requester, produced in the same round of the sender's event loop (ADR 0025).
BATCH_TYPE = "bus.batch"

# What messages for an inbox must share to travel together: the inbox, mandatory, the TTL.
_InboxKey = tuple[str, bool, float | None]


class AmqpBus(Bus):
    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 64,
        max_redeliveries: int = 5,
        publish_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self._url = url
        self._publish_timeout = publish_timeout
        self._prefetch = prefetch
        self._max_redeliveries = max_redeliveries
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        # Replies go out unconfirmed: they are best-effort by contract (a requester that hears
        # nothing times out), and a confirm would cost a round trip on every boot and command.
        self._reply_out: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._reply: AbstractQueue | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._to_inboxes: Coalescer[_InboxKey, BusMessage] = Coalescer(self._publish_to_inbox)
        self._replies: Coalescer[str, tuple[str, Body]] = Coalescer(self._publish_replies)

    @property
    def reply_queue(self) -> str:
        assert self._reply is not None, "connect first"
        return self._reply.name

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._declare_exchanges(self._publish_channel)
        self._reply_out = await self._connection.channel(publisher_confirms=False)
        reply_channel = await self._connection.channel()
        self._reply = await reply_channel.declare_queue(exclusive=True, auto_delete=True)
        await self._reply.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        await cancel_tasks(self._tasks)
        await self._to_inboxes.close()
        await self._replies.close()
        if self._connection is not None:
            await self._connection.close()

    async def _declare_exchanges(self, channel: AbstractChannel) -> None:
        self._exchanges[topology.EVENTS_EXCHANGE] = await channel.declare_exchange(
            topology.EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._exchanges[topology.COMMANDS_EXCHANGE] = await channel.declare_exchange(
            topology.COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._exchanges[topology.CONTROL_EXCHANGE] = await channel.declare_exchange(
            topology.CONTROL_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        self._exchanges[""] = channel.default_exchange

    async def declare_work_queues(self) -> None:
        channel = self._channel()
        dead = await channel.declare_exchange(
            topology.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await channel.declare_queue(
            topology.DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_queue.bind(dead)
        events = self._exchanges[topology.EVENTS_EXCHANGE]
        for work_queue in topology.WORK_QUEUES:
            queue = await self._declare_work_queue(channel, work_queue)
            for key in work_queue.routing_keys:
                await queue.bind(events, key)

    async def _declare_work_queue(
        self, channel: AbstractChannel, work_queue: topology.WorkQueue
    ) -> AbstractQueue:
        arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": self._max_redeliveries,
            "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE,
        }
        if work_queue.single_active_consumer:
            arguments["x-single-active-consumer"] = True
        return await channel.declare_queue(work_queue.name, durable=True, arguments=arguments)

    def _channel(self) -> AbstractChannel:
        if self._publish_channel is None:
            raise BusError("bus is not connected")
        return self._publish_channel

    async def publish(
        self, exchange: str, routing_key: str, message: BusMessage, *, mandatory: bool = False
    ) -> None:
        if exchange not in self._exchanges:
            raise BusError(f"unknown exchange {exchange!r}")
        if exchange == topology.COMMANDS_EXCHANGE:
            # Shielded: a caller that stops waiting must not cancel the others' publish.
            await asyncio.shield(
                self._to_inboxes.add((routing_key, mandatory, message.ttl), message)
            )
            return
        properties = _properties(
            message,
            # Only the durable work queues outlive a broker restart; what goes to a process's
            # exclusive queue (commands, takeovers, control) dies with it anyway, and writing
            # it to disk would cost the broker for nothing.
            persistent=exchange == topology.EVENTS_EXCHANGE,
        )
        await self._publish_raw(exchange, routing_key, message.encode_body(), properties, mandatory)

    async def _publish_to_inbox(self, key: _InboxKey, messages: list[BusMessage]) -> None:
        routing_key, mandatory, ttl = key
        if len(messages) == 1:
            body = messages[0].encode_body()
            properties = _properties(messages[0], persistent=False)
        else:
            body = orjson.dumps([_packed(message) for message in messages])
            properties = Basic.Properties(
                content_type="application/json",
                delivery_mode=1,
                message_id=new_id(),
                message_type=BATCH_TYPE,
                expiration=_expiration(ttl),
            )
        await self._publish_raw(
            topology.COMMANDS_EXCHANGE, routing_key, body, properties, mandatory
        )

    async def _publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        mandatory: bool,
    ) -> None:
        try:
            # Bounded: with the broker away, the caller gets an error (a station: InternalError,
            # and sends again) instead of waiting for ever.
            async with asyncio.timeout(self._publish_timeout):
                channel = await self._channel().get_underlay_channel()
                await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                )
        except TimeoutError as exc:
            raise BusError(f"publish to {exchange!r} not confirmed in time") from exc
        except DeliveryError as exc:
            if isinstance(exc.frame, Basic.Return):
                raise Unroutable(f"no queue bound to {exchange!r} for {routing_key!r}") from exc
            raise BusError(f"publish to {exchange!r} not confirmed: {exc}") from exc
        except (AMQPError, PublishError, ConnectionError, RuntimeError) as exc:
            raise BusError(f"publish to {exchange!r} failed: {exc}") from exc

    async def send_reply(self, reply_to: str, correlation_id: str, body: Body) -> None:
        await asyncio.shield(self._replies.add(reply_to, (correlation_id, body)))

    async def _publish_replies(self, reply_to: str, replies: list[tuple[str, Body]]) -> None:
        """Best effort: a reply that cannot be sent is logged, its requester times out."""
        if self._reply_out is None:
            log.warning("%d replies to %s dropped: bus is not connected", len(replies), reply_to)
            return
        if len(replies) == 1:
            correlation_id, reply = replies[0]
            body = orjson.dumps(reply)
            properties = Basic.Properties(
                content_type="application/json", delivery_mode=1, correlation_id=correlation_id
            )
        else:
            body = orjson.dumps(replies)
            properties = Basic.Properties(
                content_type="application/json", delivery_mode=1, message_type=BATCH_TYPE
            )
        try:
            channel = await self._reply_out.get_underlay_channel()
            await channel.basic_publish(
                body, exchange="", routing_key=reply_to, properties=properties
            )
        except (AMQPError, PublishError, ConnectionError, RuntimeError):
            log.warning("%d replies to %s could not be sent", len(replies), reply_to, exc_info=True)

    async def _on_reply(self, incoming: AbstractIncomingMessage) -> None:
        try:
            if incoming.type != BATCH_TYPE:
                body = BusMessage.decode_body(incoming.body)
                self._deliver_reply(incoming.correlation_id, body)
                return
            # [[correlation id, body], ...]
            for correlation_id, body in orjson.loads(incoming.body):
                if isinstance(body, dict):
                    self._deliver_reply(correlation_id, body)
        except (ValueError, TypeError):
            log.warning("dropping undecodable reply %s", incoming.correlation_id or "batch")

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        concurrency: int = 1,
        max_batch: int = 1,
        linger: float = 0.0,
    ) -> None:
        assert self._connection is not None, "connect first"
        work_queue = next((q for q in topology.WORK_QUEUES if q.name == queue), None)
        if work_queue is None:
            raise BusError(f"{queue!r} is not a work queue")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=max(self._prefetch, concurrency * max_batch))
        # Declared (idempotently) on the consuming channel so a reconnect restores the consumer.
        amqp_queue = await self._declare_work_queue(channel, work_queue)
        await self._start_consumer(amqp_queue, handler, concurrency, max_batch, linger)

    async def open_inbox(self, queue: str, handler: Handler) -> None:
        assert self._connection is not None, "connect first"
        channel = await self._connection.channel()
        inbox = await channel.declare_queue(queue, exclusive=True, auto_delete=True)
        await inbox.bind(topology.COMMANDS_EXCHANGE, queue)
        await inbox.bind(topology.CONTROL_EXCHANGE)
        # Each message is handled in a task of its own, as many at once as arrive: a command
        # waits on its own station, and a window of unacknowledged deliveries would hold every
        # command behind the slowest stations. Taken without acks: the queue is exclusive and dies
        # with this process, so an ack protects nothing. A failed command is not retried: it may
        # have reached the station already, and its requester times out.

        async def deliver(incoming: AbstractIncomingMessage) -> None:
            for message in _inbox_messages(queue, incoming):
                self._spawn(self._handle_unacknowledged(queue, message, handler))

        await inbox.consume(deliver, no_ack=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_unacknowledged(
        self, queue: str, message: BusMessage, handler: Handler
    ) -> None:
        try:
            reply = await handler(message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler for %s failed on message %s", queue, message.message_id)
            return
        if reply is not None and message.reply_to and message.correlation_id:
            await self.send_reply(message.reply_to, message.correlation_id, reply)

    async def _start_consumer(
        self,
        queue: AbstractQueue,
        handler: BatchHandler,
        concurrency: int,
        max_batch: int = 1,
        linger: float = 0.0,
    ) -> None:
        # Deliveries pass through a local queue so that `concurrency` bounds the handlers in flight
        # and a single worker keeps the broker's order.
        backlog: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        batching: Batching[AbstractIncomingMessage] = Batching(max_batch, linger)
        for _ in range(concurrency):
            self._spawn(self._work(queue.name, backlog, handler, batching))

        async def enqueue(incoming: AbstractIncomingMessage) -> None:
            backlog.put_nowait(incoming)

        await queue.consume(enqueue)

    async def _work(
        self,
        queue: str,
        backlog: asyncio.Queue[AbstractIncomingMessage],
        handler: BatchHandler,
        batching: Batching[AbstractIncomingMessage],
    ) -> None:
        while True:
            batch = await batching.next(backlog)
            await self._handle(queue, batch, handler)

    async def _handle(
        self,
        queue: str,
        batch: list[AbstractIncomingMessage],
        handler: BatchHandler,
    ) -> None:
        deliveries: list[tuple[AbstractIncomingMessage, BusMessage]] = []
        for incoming in batch:
            message = _bus_message(incoming)
            if message is None:
                log.error("dead-lettering undecodable message %s on %s", incoming.message_id, queue)
                await _settle(incoming.reject(requeue=False))
                continue
            deliveries.append((incoming, message))
        if not deliveries:
            return
        try:
            outcomes = await handler([message for _, message in deliveries])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcomes = [exc] * len(deliveries)
        failed = False
        replies: set[asyncio.Future[None]] = set()
        for (incoming, message), outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error(
                    "handler for %s failed on message %s",
                    queue,
                    incoming.message_id,
                    exc_info=outcome,
                )
                failed = True
            elif outcome is not None and message.reply_to and message.correlation_id:
                replies.add(self._replies.add(message.reply_to, (message.correlation_id, outcome)))
        if replies:
            # The replies go out before the acks, together (a reply's failure is only logged).
            await asyncio.wait(replies)
        for (incoming, _), outcome in zip(deliveries, outcomes, strict=True):
            if not isinstance(outcome, Exception):
                await _settle(incoming.ack())
        if failed:
            await asyncio.sleep(_REDELIVERY_DELAY)
            for (incoming, _), outcome in zip(deliveries, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    await _settle(incoming.nack(requeue=True))


def _packed(message: BusMessage) -> dict[str, object]:
    return {
        "messageId": message.message_id,
        "type": message.type,
        "correlationId": message.correlation_id,
        "replyTo": message.reply_to,
        "body": message.body,
    }


def _inbox_messages(queue: str, incoming: AbstractIncomingMessage) -> list[BusMessage]:
    """The message an inbox delivery carries, or each of a batch; none if undecodable."""
    if incoming.type != BATCH_TYPE:
        message = _bus_message(incoming)
        if message is None:
            log.error("dropping undecodable message %s on %s", incoming.message_id, queue)
            return []
        return [message]
    try:
        packed = orjson.loads(incoming.body)
        return [
            BusMessage(
                body=item["body"],
                type=item["type"],
                message_id=item["messageId"],
                correlation_id=item["correlationId"],
                reply_to=item["replyTo"],
            )
            for item in packed
            if isinstance(item["body"], dict)
        ]
    except (ValueError, TypeError, KeyError):
        log.error("dropping undecodable batch %s on %s", incoming.message_id, queue)
        return []


def _expiration(ttl: float | None) -> str | None:
    return None if ttl is None else str(int(ttl * 1000))


def _properties(message: BusMessage, *, persistent: bool) -> Basic.Properties:
    # Built here and published on the channel aio-pika wraps: its Message class costs about as
    # much again per publish as the publish itself.
    return Basic.Properties(
        content_type="application/json",
        delivery_mode=2 if persistent else 1,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_type=message.type or None,
        expiration=_expiration(message.ttl),
    )


def _bus_message(incoming: AbstractIncomingMessage) -> BusMessage | None:
    """The delivery as a BusMessage; None if its body is not a JSON object."""
    try:
        body = BusMessage.decode_body(incoming.body)
    except ValueError:
        return None
    return BusMessage(
        body=body,
        type=incoming.type or "",
        message_id=incoming.message_id or "",
        correlation_id=incoming.correlation_id,
        reply_to=incoming.reply_to,
        redelivered=bool(incoming.redelivered),
    )


async def _settle(outcome: Any) -> None:
    """Ack or nack; a channel lost meanwhile means the broker redelivers, which is safe."""
    try:
        await outcome
    except (AMQPError, ConnectionError, RuntimeError):
        log.warning("could not settle a delivery; the broker will redeliver it", exc_info=True)
