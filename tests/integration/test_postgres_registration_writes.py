"""The events worker's direct boot and presence writes on Postgres store what the engine's
statements store: the same rows, batch for batch, the same decisions, registrations and
replaced connections; a failed batch leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.boots import BootDecision
from csms.db.engine import create_session_factory
from csms.db.models import Station
from csms.db.postgres_registration_writes import PostgresRegistrationWrites
from csms.db.presence import Connection, PresenceBatch
from csms.db.registration_writes import registration_writes
from tests.integration.conftest import migrated_engine
from tests.integration.test_sqlite_registration_writes import (
    POLICY,
    Peek,
    a_failing_before_commit_rolls_the_batch_back,
    at,
    before_commit_runs_before_the_commit,
    boot,
    new_prefix,
    no_takeover,
    nothing_stored_by,
    registration_stored_alike,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine("postgres", tmp_path_factory.mktemp("postgres")) as engine:
        yield engine


@pytest.fixture
async def direct(engine: AsyncEngine) -> AsyncIterator[PostgresRegistrationWrites]:
    writes = registration_writes(create_session_factory(engine))
    assert isinstance(writes, PostgresRegistrationWrites)
    yield writes
    await writes.close()


async def test_boots_and_presence_are_stored_alike(
    engine: AsyncEngine, direct: PostgresRegistrationWrites
) -> None:
    await registration_stored_alike(engine, direct)


def _peek(engine: AsyncEngine) -> Peek:
    """On another connection of the pool, which sees only what is committed."""

    async def peek(station: str) -> str | None:
        async with create_session_factory(engine)() as session:
            connection_id: str | None = await session.scalar(
                select(Station.connection_id).where(Station.id == station)
            )
            return connection_id

    return peek


async def test_before_commit_runs_before_the_commit(
    engine: AsyncEngine, direct: PostgresRegistrationWrites
) -> None:
    await before_commit_runs_before_the_commit(engine, direct, _peek(engine))


async def test_a_failing_before_commit_rolls_the_batch_back(
    engine: AsyncEngine, direct: PostgresRegistrationWrites
) -> None:
    await a_failing_before_commit_rolls_the_batch_back(engine, direct)


async def test_a_failed_boot_batch_stores_nothing(
    engine: AsyncEngine, direct: PostgresRegistrationWrites
) -> None:
    p = new_prefix()
    good = boot(f"{p}-good", "m1", 1, f"{p}-c1")
    too_long = boot(f"{p}-bad", "m1", 1, f"{p}-c2", model="x" * 21)  # model is varchar(20)

    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await direct.record_boots([good, too_long], POLICY)

    await nothing_stored_by(engine, p)
    assert await direct.record_boots([good], POLICY) == [BootDecision("Accepted", 300)]


async def test_a_failed_presence_batch_stores_nothing(
    engine: AsyncEngine, direct: PostgresRegistrationWrites
) -> None:
    p = new_prefix()
    good = Connection(f"{p}-c1", f"{p}-good", f"{p}-gw", at(1))
    too_long = Connection(f"{p}-c2", f"{p}-bad", f"{p}-{'x' * 100}", at(1))  # varchar(100)
    batch = PresenceBatch({f"{p}-gw": at(1)}, [good, too_long], [], {f"{p}-good": at(2)})

    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await direct.record_presence(batch, no_takeover)

    await nothing_stored_by(engine, p)
