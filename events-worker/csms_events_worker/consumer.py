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
from csms.bus.envelopes import StationMessage
from csms.bus.message import Body, BusMessage
from csms.config import Settings
from csms.db.boots import BootPolicy
from csms_events_worker.alerts import close_stale_reports, handle_notify_event
from csms_events_worker.boot import handle_boot_notification
from csms_events_worker.presence import close_dead_gateways, handle_presence
from csms_events_worker.registry import handle_credentials
from csms_events_worker.status import handle_status_notification

log = logging.getLogger(__name__)

SessionHandler = Callable[[AsyncSession, BusMessage], Awaitable[Body | None]]


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

    async def start(self) -> None:
        await self._bus.declare_work_queues()
        concurrency = self._settings.consumer_prefetch
        await self._bus.consume(
            topology.BOOT_QUEUE.name, self._transactional(self._boot), concurrency=concurrency
        )
        await self._bus.consume(
            topology.STATUS_QUEUE.name, self._transactional(self._status), concurrency=concurrency
        )
        # NotifyEvent order carries meaning (seqNo): one at a time, in publish order.
        await self._bus.consume(
            topology.ALERTS_QUEUE.name, self._transactional(self._alerts), concurrency=1
        )
        await self._bus.consume(
            topology.PRESENCE_QUEUE.name,
            self._transactional(handle_presence),
            concurrency=concurrency,
        )
        await self._bus.consume(
            topology.REGISTRY_QUEUE.name,
            self._transactional(handle_credentials),
            concurrency=concurrency,
        )
        self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance

    def _transactional(
        self, handler: SessionHandler
    ) -> Callable[[BusMessage], Awaitable[Body | None]]:
        async def run(message: BusMessage) -> Body | None:
            async with self._sessions() as session, session.begin():
                return await handler(session, message)

        return run

    async def _boot(self, session: AsyncSession, message: BusMessage) -> Body:
        reply = await handle_boot_notification(
            session, cast(StationMessage, message.body), self._policy
        )
        return dict(reply)

    async def _status(self, session: AsyncSession, message: BusMessage) -> None:
        await handle_status_notification(session, cast(StationMessage, message.body))

    async def _alerts(self, session: AsyncSession, message: BusMessage) -> None:
        await handle_notify_event(session, cast(StationMessage, message.body))

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._settings.maintenance_interval)
            try:
                async with self._sessions() as session, session.begin():
                    await close_dead_gateways(session, self._settings.gateway_timeout)
                async with self._sessions() as session, session.begin():
                    await close_stale_reports(session, self._settings.event_report_timeout)
            except Exception:
                log.exception("maintenance pass failed; retrying later")
