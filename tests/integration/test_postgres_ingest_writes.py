"""The events worker's direct status writes on Postgres store what the engine's statements store:
the same rows, batch for batch, and a failed batch leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import create_session_factory
from csms.db.ingest_writes import ingest_writes
from csms.db.models import ConnectorStatus, EventData, EventSequence, StatusNotification
from csms.db.postgres_ingest_writes import PostgresIngestWrites
from tests.integration.conftest import migrated_engine
from tests.integration.test_sqlite_ingest_writes import (
    notify,
    notify_events_stored_alike,
    status,
    statuses_stored_alike,
    stored,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine("postgres", tmp_path_factory.mktemp("postgres")) as engine:
        yield engine


@pytest.fixture
async def direct(engine: AsyncEngine) -> AsyncIterator[PostgresIngestWrites]:
    writes = ingest_writes(create_session_factory(engine))
    assert isinstance(writes, PostgresIngestWrites)
    yield writes
    await writes.close()


async def test_statuses_are_stored_alike(engine: AsyncEngine, direct: PostgresIngestWrites) -> None:
    await statuses_stored_alike(engine, direct)


async def test_notify_events_are_stored_alike_with_the_same_gaps(
    engine: AsyncEngine, direct: PostgresIngestWrites
) -> None:
    await notify_events_stored_alike(engine, direct)


async def test_a_failed_notify_event_batch_stores_nothing(
    engine: AsyncEngine, direct: PostgresIngestWrites
) -> None:
    station = "IT-postgres-rollback-events"
    good = notify(station, "m0", 0, True, 1)
    bad = notify(station, "m1", 1, False, 2, trigger="x" * 17)  # trigger is varchar(16)

    with pytest.raises(asyncpg.PostgresError):
        await direct.record_notify_events([good, bad])

    for model in (EventData, EventSequence):
        assert await stored(engine, model, station) == []
    assert await direct.record_notify_events([good]) == []
    assert len(await stored(engine, EventData, station)) == 1


async def test_a_failed_batch_stores_nothing(
    engine: AsyncEngine, direct: PostgresIngestWrites
) -> None:
    station = "IT-postgres-rollback"
    too_long = "x" * 17  # status is varchar(16)
    batch = [status(station, 1, "Occupied", 10), status(station, 2, too_long, 10)]

    with pytest.raises(asyncpg.PostgresError):
        await direct.record_statuses(batch)

    assert await stored(engine, StatusNotification, station) == []
    assert await stored(engine, ConnectorStatus, station) == []
