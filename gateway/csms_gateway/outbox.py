"""Messages for one routing key, published together (ADR 0009).

Every CALLRESULT still waits until the bus confirmed the message carrying its CALL, but the
messages that arrive while a publish is in flight or lingering share the next one: one broker
message, one confirm and one worker delivery for many stations. Under light load a message goes
out alone at once; under heavy load a batch holds what arrived since the last publish, so it
grows with the load and bounds the broker's work per station.

Requests (boots and connection registrations) travel the same way: a batch is one bus request,
answered with one reply per message, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from typing import Any

from csms.bus import topology
from csms.bus.base import Bus, cancel_tasks, wait_reply
from csms.bus.envelopes import pack_batch
from csms.bus.message import Body, BusError, BusMessage

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
_Waiting = tuple[Message, asyncio.Future[Body | None]]


class Outbox:
    def __init__(
        self,
        bus: Bus,
        routing_key: str,
        max_batch: int,
        *,
        linger: float = 0.0,
        reply_timeout: float | None = None,
    ) -> None:
        """Publishes start at most one per `linger` seconds: a message after a quiet spell goes
        at once, and under load a batch holds what arrived since the last publish. With
        `reply_timeout`, the routing key's consumer answers each batch (see `request`)."""
        self._bus = bus
        self._routing_key = routing_key
        self._max_batch = max_batch
        self._linger = linger
        self._published_at = -math.inf
        self._reply_timeout = reply_timeout
        self._waiting: list[_Waiting] = []
        self._publishing: asyncio.Task[None] | None = None
        # Request batches published and waiting for their reply.
        self._answering: set[asyncio.Task[None]] = set()

    async def put(self, message: Message) -> None:
        """Return once the bus confirmed a publish holding `message`; raise BusError if not."""
        await self._enqueue(message)

    async def request(self, message: Message) -> Body:
        """The consumer's reply to `message`; RequestTimeout if the batch's reply is late,
        BusError if the publish failed or the consumer could not process `message`."""
        assert self._reply_timeout is not None, "an outbox for requests needs a reply timeout"
        reply = await self._enqueue(message)
        assert reply is not None
        return reply

    async def close(self) -> None:
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
        await cancel_tasks(self._answering)

    async def _enqueue(self, message: Message) -> Body | None:
        done: asyncio.Future[Body | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((message, done))
        if self._publishing is None:
            self._publishing = asyncio.create_task(self._publish_waiting())
        return await done

    async def _publish_waiting(self) -> None:
        batch: list[_Waiting] = []
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                wait = self._published_at + self._linger - loop.time()
                if wait > 0 and len(self._waiting) < self._max_batch:
                    await asyncio.sleep(wait)
                self._published_at = loop.time()
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    await self._publish(batch)
                except BusError as exc:
                    _settle(batch, exc)
                except Exception as exc:
                    log.exception("publishing %s failed", self._routing_key)
                    _settle(batch, BusError(f"publish failed: {exc!r}"))
                batch = []
        except asyncio.CancelledError:
            stopping = BusError("gateway stopping")
            _settle(batch, stopping)
            _settle(self._waiting, stopping)
            self._waiting = []
            raise
        finally:
            self._publishing = None

    async def _publish(self, batch: list[_Waiting]) -> None:
        message = BusMessage(body=dict(pack_batch([m for m, _ in batch])), type=self._routing_key)
        if self._reply_timeout is None:
            await self._bus.publish(topology.EVENTS_EXCHANGE, self._routing_key, message)
            _settle(batch, None)
            return
        reply = await self._bus.send_request(topology.EVENTS_EXCHANGE, self._routing_key, message)
        # The next batch forms while this one waits for its reply.
        task = asyncio.create_task(self._answer(batch, reply, self._reply_timeout))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(
        self, batch: list[_Waiting], reply: asyncio.Future[Body], timeout: float
    ) -> None:
        try:
            body = await wait_reply(reply, timeout, self._routing_key)
        except BusError as exc:
            _settle(batch, exc)
            return
        except asyncio.CancelledError:
            _settle(batch, BusError("gateway stopping"))
            raise
        replies = body.get("replies")
        if not isinstance(replies, list) or len(replies) != len(batch):
            log.error("malformed reply to a %s batch: %.200r", self._routing_key, body)
            _settle(batch, BusError("malformed reply"))
            return
        for (_, done), answer in zip(batch, replies, strict=True):
            if done.done():
                continue
            if not isinstance(answer, dict):
                done.set_exception(BusError("malformed reply"))
            elif "error" in answer:
                done.set_exception(BusError(f"not processed: {answer['error']}"))
            else:
                done.set_result(answer)


def _settle(batch: list[_Waiting], error: BusError | None) -> None:
    for _, done in batch:
        # A waiter whose socket closed meanwhile has cancelled its future.
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
