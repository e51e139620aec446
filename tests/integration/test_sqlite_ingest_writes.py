"""Standalone's direct SQLite writes store exactly what the engine's statements store.

The same batches of StatusNotifications and NotifyEvents go through the engine (statuses.py,
events.py) for one set of stations and through SqliteIngestWrites for another; what each
stored is read back through the models and must match, gaps included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import create_session_factory
from csms.db.events import Gap, NotifyEventReport, record_notify_events
from csms.db.ingest_writes import IngestWrites
from csms.db.models import (
    Base,
    ConnectorStatus,
    EventData,
    EventGap,
    EventSequence,
    StatusNotification,
)
from csms.db.sqlite_ingest_writes import SqliteIngestWrites
from csms.db.statuses import StatusReport, record_statuses
from csms.timeutil import format_datetime
from tests.integration.conftest import migrated_engine
from tests.integration.test_repositories import event_item

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine("sqlite", tmp_path_factory.mktemp("direct")) as engine:
        yield engine


@pytest.fixture
async def direct(engine: AsyncEngine) -> AsyncIterator[SqliteIngestWrites]:
    writes = SqliteIngestWrites(engine)
    yield writes
    await writes.close()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def status(station: str, connector: int, state: str, seconds: float) -> StatusReport:
    return StatusReport(station, 1, connector, state, at(seconds), at(seconds + 0.5))


def notify(
    station: str, message_id: str, seq_no: int, tbc: bool, seconds: float, **item: Any
) -> NotifyEventReport:
    payload = {
        "generatedAt": format_datetime(at(seconds)),
        "seqNo": seq_no,
        "tbc": tbc,
        "eventData": [event_item(seq_no, **item)],
    }
    return NotifyEventReport(station, message_id, payload, at(seconds), at(seconds + 0.25))


async def stored(engine: AsyncEngine, model: type[Base], station: str) -> list[tuple[Any, ...]]:
    """The rows of `station`, without ids and station id, in a stable order."""
    columns = [c for c in model.__table__.columns if c.name not in ("id", "station_id")]
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(*columns).where(model.__table__.c.station_id == station).order_by(*columns)
        )
        return [tuple(row) for row in rows]


async def both_ways(
    engine: AsyncEngine,
    through_engine: Callable[[str], Awaitable[object]],
    direct_write: Callable[[str], Awaitable[object]],
    models: list[type[Base]],
) -> tuple[object, object]:
    """Run the same writes for one station each way; assert their rows match."""
    by_engine, by_direct = f"IT-{uuid.uuid4().hex[:12]}", f"IT-{uuid.uuid4().hex[:12]}"
    engine_result = await through_engine(by_engine)
    direct_result = await direct_write(by_direct)
    for model in models:
        expected = await stored(engine, model, by_engine)
        assert expected, f"the scenario stores {model.__tablename__} rows"
        assert await stored(engine, model, by_direct) == expected
    return engine_result, direct_result


def status_batches(station: str) -> list[list[StatusReport]]:
    return [
        [status(station, 1, "Occupied", 10), status(station, 2, "Available", 10)],
        # The same connector twice in a batch, a repeat within it, a repeat of a stored one.
        [
            status(station, 1, "Available", 20),
            status(station, 1, "Faulted", 15),
            status(station, 1, "Faulted", 15),
            status(station, 2, "Available", 10),
        ],
        # Older than what is current: history only.
        [status(station, 2, "Unavailable", 5)],
        # Two reports of one connector at the same time: the later one is current.
        [status(station, 3, "Occupied", 30), status(station, 3, "Reserved", 30)],
    ]


async def statuses_stored_alike(engine: AsyncEngine, direct: IngestWrites) -> None:
    """`direct` stores the same status rows as the engine's statements, batch for batch."""

    async def through_engine(station: str) -> None:
        for batch in status_batches(station):
            async with create_session_factory(engine)() as session, session.begin():
                await record_statuses(session, batch)

    async def direct_write(station: str) -> None:
        for batch in status_batches(station):
            await direct.record_statuses(batch)

    await both_ways(engine, through_engine, direct_write, [StatusNotification, ConnectorStatus])


async def test_statuses_are_stored_alike(engine: AsyncEngine, direct: SqliteIngestWrites) -> None:
    await statuses_stored_alike(engine, direct)


async def notify_events_stored_alike(engine: AsyncEngine, direct: IngestWrites) -> None:
    """`direct` stores the same NotifyEvent rows as the engine's statements and finds the same
    gaps, batch for batch."""

    def batches(station: str) -> list[list[NotifyEventReport]]:
        full = {
            "cause": 5,
            "techCode": "E42",
            "techInfo": "contactor welded",
            "cleared": True,
            "transactionId": "tx-1",
            "variableMonitoringId": 11,
        }
        first = notify(station, "m0", 0, True, 1, **full)
        return [
            [first, notify(station, "m1", 1, True, 2)],
            # Redelivered, then a part skipped.
            [first, notify(station, "m3", 3, False, 3)],
            # A new report while one is unfinished, then one starting past zero.
            [notify(station, "m4", 0, True, 4), notify(station, "m5", 0, False, 5)],
            [notify(station, "m6", 2, False, 6)],
        ]

    def renamed(gaps: list[Gap]) -> list[tuple[int, int | None]]:
        return [(gap.expected_seq_no, gap.received_seq_no) for gap in gaps]

    async def through_engine(station: str) -> list[tuple[int, int | None]]:
        gaps: list[Gap] = []
        for batch in batches(station):
            async with create_session_factory(engine)() as session, session.begin():
                gaps += await record_notify_events(session, batch)
        return renamed(gaps)

    async def direct_write(station: str) -> list[tuple[int, int | None]]:
        gaps: list[Gap] = []
        for batch in batches(station):
            gaps += await direct.record_notify_events(batch)
        return renamed(gaps)

    engine_gaps, direct_gaps = await both_ways(
        engine, through_engine, direct_write, [EventData, EventGap, EventSequence]
    )
    assert engine_gaps == [(2, 3), (1, 0), (0, 2)]
    assert direct_gaps == engine_gaps


async def test_notify_events_are_stored_alike_with_the_same_gaps(
    engine: AsyncEngine, direct: SqliteIngestWrites
) -> None:
    await notify_events_stored_alike(engine, direct)


async def test_a_constraint_error_rolls_the_whole_batch_back(
    engine: AsyncEngine, direct: SqliteIngestWrites
) -> None:
    station = f"IT-{uuid.uuid4().hex[:12]}"
    bad = StatusReport(station, 1, 2, None, at(1), at(1))  # type: ignore[arg-type]

    with pytest.raises(Exception, match="NOT NULL"):
        await direct.record_statuses([status(station, 1, "Occupied", 1), bad])

    assert await stored(engine, StatusNotification, station) == []
    await direct.record_statuses([status(station, 1, "Occupied", 1)])
    assert len(await stored(engine, StatusNotification, station)) == 1
