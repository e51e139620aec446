"""Consumer wiring: one transaction per bus message, committed before the message is acked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import BatchReply, StationMessage, is_batch, pack_batch, unpack_batch
from csms.bus.message import BatchHandler, Body, BusError, BusMessage, Outcome
from csms.config import Settings
from csms.db.boots import BootPolicy
from csms.db.engine import engine_of, is_sqlite
from csms.db.ingest_writes import ingest_writes
from csms.db.presence import Replaced
from csms.db.registration_writes import registration_writes
from csms.db.sqlite_checkpoints import SqliteCheckpoints
from csms.db.sqlite_writer import has_own_file
from csms_events_worker.alerts import close_stale_reports, log_gaps, notify_event_reports
from csms_events_worker.boot import handle_boot_notifications
from csms_events_worker.presence import forget_dead_gateways, handle_presence, takeovers
from csms_events_worker.registry import handle_credentials
from csms_events_worker.status import status_reports

log = logging.getLogger(__name__)

# Station messages stored in one transaction at most: a statement binds a few parameters per
# message, and Postgres (asyncpg) and SQLite allow 32,767 per statement.
_MAX_PARTS = 2000

# A whole batch in one transaction; one reply (or None) per message, or None for no replies.
Transact = Callable[[list[BusMessage]], Awaitable[list[Body | None] | None]]
# As Transact, in a session whose transaction the caller commits.
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
        self._ingest = ingest_writes(sessions)
        self._registration = registration_writes(sessions)
        engine = engine_of(sessions)
        self._checkpoints = SqliteCheckpoints(engine) if has_own_file(engine) else None

    async def start(self) -> None:
        await self._ingest.start()
        await self._bus.declare_work_queues()
        concurrency = self._settings.consumer_concurrency
        batch = self._settings.consumer_batch
        linger = (
            self._settings.consumer_linger
            if self._settings.amqp_url is not None
            else self._settings.standalone_consumer_linger
        )
        # Batches are spaced by the linger only under load (see Bus.consume_batches): boots
        # and registrations, which stations wait on, then wait at most that long, and every
        # transaction stores many stations.
        bulk: list[tuple[str, Transact, int]] = [
            (topology.BOOT_QUEUE.name, self._boots, concurrency),
            (topology.STATUS_QUEUE.name, self._statuses, concurrency),
            # NotifyEvent order carries meaning (seqNo): one batch at a time, in publish order.
            (topology.ALERTS_QUEUE.name, self._alerts, 1),
            (topology.PRESENCE_QUEUE.name, self._presence, concurrency),
            (topology.REGISTRY_QUEUE.name, self._in_session(handle_credentials), concurrency),
        ]
        for queue, handler, queue_concurrency in bulk:
            await self._bus.consume_batches(
                queue,
                self._in_bulk(handler),
                concurrency=queue_concurrency,
                max_batch=batch,
                linger=linger,
            )
        self._maintenance = asyncio.create_task(self._maintain())
        if self._checkpoints is not None:
            self._checkpoints.start()

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self._ingest.close()
        await self._registration.close()
        if self._checkpoints is not None:
            await asyncio.to_thread(self._checkpoints.stop)

    async def _boots(self, messages: list[BusMessage]) -> list[Body | None]:
        async with self._writer_turn():
            replies = await handle_boot_notifications(
                self._registration, _station_messages(messages), self._policy
            )
        return [dict(reply) for reply in replies]

    async def _presence(self, messages: list[BusMessage]) -> list[Body | None]:
        async with self._writer_turn():
            return await handle_presence(self._registration, messages, self._take_over)

    async def _take_over(self, replaced: list[Replaced]) -> None:
        """Each gateway holding a replaced connection closes it (ADR 0010): one message per
        gateway, sent before the commit (a repeat after a failed commit changes nothing; after
        a commit, a redelivery would no longer find the replaced connection)."""
        sent = [
            self._bus.publish(
                topology.COMMANDS_EXCHANGE,
                topology.gateway_queue(gateway_id),
                BusMessage(body=dict(pack_batch(closing)), type=topology.TAKEOVER),
            )
            for gateway_id, closing in takeovers(replaced).items()
        ]
        for outcome in await asyncio.gather(*sent, return_exceptions=True):
            if isinstance(outcome, BusError):
                # Best effort: the old socket then stays until its keep-alive fails.
                log.warning("a takeover was not sent: %s", outcome)
            elif isinstance(outcome, BaseException):
                raise outcome

    def _in_session(self, handler: BulkHandler) -> Transact:
        async def transact(parts: list[BusMessage]) -> list[Body | None] | None:
            async with self._writer_turn(), self._sessions() as session, session.begin():
                return await handler(session, parts)

        return transact

    def _in_bulk(self, transact: Transact) -> BatchHandler:
        """One transaction and one set of statements for the whole batch, every message that a
        bus message carries included; if it fails, each station message alone, so that a bad
        one fails by itself."""

        async def store(parts: list[BusMessage]) -> list[Body | None]:
            replies = await transact(parts)
            return list(replies) if replies is not None else [None] * len(parts)

        async def run(messages: list[BusMessage]) -> list[Outcome]:
            outcomes: list[Outcome] = []
            for group in _groups([(message, _parts(message)) for message in messages]):
                outcomes += await run_group(group)
            return outcomes

        async def run_group(group: list[tuple[BusMessage, list[BusMessage]]]) -> list[Outcome]:
            messages = [message for message, _ in group]
            parted = [parts for _, parts in group]
            try:
                replies = iter(await store([part for parts in parted for part in parts]))
                return [
                    _regroup(m, [next(replies) for _ in parts])
                    for m, parts in zip(messages, parted, strict=True)
                ]
            except Exception as exc:
                if len(parted) == 1 and len(parted[0]) == 1:
                    return [exc]
                log.warning("a batch of %d failed; retrying one by one", sum(map(len, parted)))
            return [await alone(m, parts) for m, parts in zip(messages, parted, strict=True)]

        async def alone(message: BusMessage, parts: list[BusMessage]) -> Outcome:
            outcomes: list[Outcome] = []
            for part in parts:
                try:
                    outcomes.append((await store([part]))[0])
                except Exception as exc:
                    outcomes.append(exc)
            if not is_batch(message.body):
                return outcomes[0]
            if message.reply_to:
                # A request batch is answered whole: a failed part gets an error, and its
                # station a CALLERROR, so that one bad boot does not hold back the others.
                return _batch_reply(outcomes)
            # Redelivered if any failed (the parts stored meanwhile are then no-ops).
            failed = [o for o in outcomes if isinstance(o, Exception)]
            return failed[0] if failed else None

        return run

    async def _statuses(self, messages: list[BusMessage]) -> None:
        async with self._writer_turn():
            await self._ingest.record_statuses(status_reports(_station_messages(messages)))

    async def _alerts(self, messages: list[BusMessage]) -> None:
        async with self._writer_turn():
            gaps = await self._ingest.record_notify_events(
                notify_event_reports(_station_messages(messages))
            )
        log_gaps(gaps)

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
    return [cast(StationMessage, message.body) for message in messages]


def _parts(message: BusMessage) -> list[BusMessage]:
    """A bus message per message that `message` carries (itself if it is no batch)."""
    if not is_batch(message.body):
        return [message]
    return [
        BusMessage(
            body=part,
            type=message.type,
            message_id=f"{message.message_id}/{index}",
            redelivered=message.redelivered,
        )
        for index, part in enumerate(unpack_batch(message.body))
    ]


def _groups(
    parted: list[tuple[BusMessage, list[BusMessage]]],
) -> list[list[tuple[BusMessage, list[BusMessage]]]]:
    """Bus messages in groups of at most _MAX_PARTS station messages (one transaction each),
    so that no statement outgrows the database's limit on bound parameters."""
    groups: list[list[tuple[BusMessage, list[BusMessage]]]] = [[]]
    size = 0
    for message, parts in parted:
        if groups[-1] and size + len(parts) > _MAX_PARTS:
            groups.append([])
            size = 0
        groups[-1].append((message, parts))
        size += len(parts)
    return [group for group in groups if group]


def _regroup(message: BusMessage, replies: list[Body | None]) -> Body | None:
    """The reply to `message`, from the replies to the parts it carries."""
    if not is_batch(message.body):
        return replies[0]
    if all(reply is None for reply in replies):
        return None
    return _batch_reply(replies)


def _batch_reply(outcomes: Sequence[Outcome]) -> Body:
    replies: list[Body] = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            log.error("a request in a batch failed", exc_info=outcome)
            replies.append({"error": f"{type(outcome).__name__}: {outcome}"[:200]})
        else:
            replies.append(outcome or {})
    reply: BatchReply = {"replies": replies}
    return dict(reply)
