"""Consumer wiring: one transaction per bus message, committed before the message is acked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import StationMessage, unpack_station_messages
from csms.bus.message import BatchHandler, Body, BusMessage, Outcome
from csms.config import Settings
from csms.db.boots import BootPolicy
from csms.db.engine import is_sqlite
from csms_events_worker.alerts import close_stale_reports, handle_notify_events
from csms_events_worker.boot import handle_boot_notifications
from csms_events_worker.presence import forget_dead_gateways, handle_presence
from csms_events_worker.registry import handle_credentials
from csms_events_worker.status import handle_status_notifications

log = logging.getLogger(__name__)

# A whole batch in one go; returns one reply (or None) per message, or None for no replies.
BulkHandler = Callable[[AsyncSession, list[BusMessage]], Awaitable[list[Body | None] | None]]


class EventsWorker:
    def __init__(
        self, bus: Bus, sessions: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._settings = settings
        self._policy = BootPolicy(
            unknown_station_status=settings.unknown_station_policy.boot_status,
            heartbeat_interval=settings.heartbeat_interval,
            retry_interval=settings.boot_retry_interval,
        )
        self._maintenance: asyncio.Task[None] | None = None
        # SQLite takes one writer at a time and makes the others poll for the lock, unfairly:
        # under a storm some would wait past the busy timeout and fail. Batches take turns
        # here instead (in order), and grow while they wait.
        self._one_writer = asyncio.Lock() if is_sqlite(sessions) else None

    async def start(self) -> None:
        await self._bus.declare_work_queues()
        concurrency = self._settings.consumer_concurrency
        batch = self._settings.consumer_batch
        linger = self._settings.consumer_linger
        # Boots and connections are requests a station waits on: they do not linger.
        bulk: list[tuple[str, BulkHandler, int, float]] = [
            (topology.BOOT_QUEUE.name, self._boots, concurrency, 0.0),
            (topology.STATUS_QUEUE.name, self._statuses, concurrency, linger),
            # NotifyEvent order carries meaning (seqNo): one batch at a time, in publish order.
            (topology.ALERTS_QUEUE.name, self._alerts, 1, linger),
            (topology.PRESENCE_QUEUE.name, handle_presence, concurrency, 0.0),
            (topology.REGISTRY_QUEUE.name, handle_credentials, concurrency, 0.0),
        ]
        for queue, handler, queue_concurrency, queue_linger in bulk:
            await self._bus.consume_batches(
                queue,
                self._in_bulk(handler),
                concurrency=queue_concurrency,
                max_batch=batch,
                linger=queue_linger,
            )
        self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance

    async def _boots(self, session: AsyncSession, messages: list[BusMessage]) -> list[Body | None]:
        replies = await handle_boot_notifications(
            session, [cast(StationMessage, message.body) for message in messages], self._policy
        )
        return [dict(reply) for reply in replies]

    def _in_bulk(self, handler: BulkHandler) -> BatchHandler:
        """One transaction and one set of statements for the whole batch; if it fails, each
        message alone, so that a bad one fails by itself."""

        async def run(messages: list[BusMessage]) -> list[Outcome]:
            try:
                async with self._writer_turn(), self._sessions() as session, session.begin():
                    replies = await handler(session, messages)
                return list(replies) if replies is not None else [None] * len(messages)
            except Exception as exc:
                if len(messages) == 1 and len(_split(messages[0])) == 1:
                    return [exc]
                log.warning("a batch of %d failed; retrying one by one", len(messages))
            return [await one_at_a_time(message) for message in messages]

        async def one_at_a_time(message: BusMessage) -> Outcome:
            # A bus message carrying several station messages stores each alone, so that a bad
            # one fails by itself and the others are kept; it is redelivered if any failed.
            parts = _split(message)
            if len(parts) == 1:
                return (await run([message]))[0]
            outcomes = [(await run([part]))[0] for part in parts]
            return next((o for o in outcomes if isinstance(o, Exception)), None)

        return run

    async def _statuses(self, session: AsyncSession, messages: list[BusMessage]) -> None:
        await handle_status_notifications(session, _station_messages(messages))

    async def _alerts(self, session: AsyncSession, messages: list[BusMessage]) -> None:
        await handle_notify_events(session, _station_messages(messages))

    def _writer_turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._one_writer if self._one_writer is not None else contextlib.nullcontext()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._settings.maintenance_interval)
            try:
                async with self._writer_turn(), self._sessions() as session, session.begin():
                    await forget_dead_gateways(session, self._settings.gateway_timeout)
                async with self._writer_turn(), self._sessions() as session, session.begin():
                    await close_stale_reports(session, self._settings.event_report_timeout)
            except Exception:
                log.exception("maintenance pass failed; retrying later")


def _station_messages(messages: list[BusMessage]) -> list[StationMessage]:
    return [m for message in messages for m in unpack_station_messages(message.body)]


def _split(message: BusMessage) -> list[BusMessage]:
    """A bus message per station message it carries (itself if it carries one)."""
    parts = unpack_station_messages(message.body)
    if len(parts) == 1:
        return [message]
    return [
        BusMessage(
            body=dict(part),
            type=message.type,
            message_id=f"{message.message_id}/{index}",
            redelivered=message.redelivered,
        )
        for index, part in enumerate(parts)
    ]
