"""The events worker's direct boot and presence writes on Postgres store what the engine's
statements store: the same rows, batch for batch, the same decisions, registrations and
replaced connections; a failed batch leaves nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db import postgres_registration_writes as prw
from csms.db.boots import BootDecision
from csms.db.engine import create_session_factory
from csms.db.models import Station
from csms.db.postgres_driver import INDEX_PLANS
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


@pytest.mark.parametrize("batch_size", [500, 5000])
async def test_batch_statements_reach_a_large_tables_rows_by_index(
    engine: AsyncEngine, batch_size: int
) -> None:
    # Joined to the batch's arrays alone, Postgres hashed a scan of the whole station table for
    # each batch: a batch cost as much as the table was large. A liveness beat's batch (5,000
    # stations) was scanned even with the keys named, unless the transaction rules scans out
    # (INDEX_PLANS). (The rows stay: this module's database is its own, ids carry a prefix.)
    p = new_prefix()
    ids = [f"{p}-{number:05d}" for number in range(30000)]
    batch = ids[5000 : 5000 + batch_size]
    now, n = at(0), len(batch)
    statements = {
        "touch last seen": (prw._TOUCH_LAST_SEEN, [batch, [now] * n]),
        "make current": (prw._MAKE_CURRENT, [batch, [f"{p}-c{i}" for i in range(n)], [now] * n]),
        "disconnect": (
            prw._DISCONNECT,
            [[f"{p}-c{i}" for i in range(n)], batch, [f"{p}-gw"] * n, [now] * n],
        ),
        "connect": (
            prw._CONNECT,
            [[f"{p}-c{i}" for i in range(n)], batch, [f"{p}-gw"] * n, [now] * n],
        ),
        "boots": (
            prw._RECORD_BOOTS,
            [
                *(batch, [f"{p}-x{i}" for i in range(n)], [f"{p}-m{i}" for i in range(n)]),
                *(["PowerUp"] * n, ["Accepted"] * n, [300] * n, [now] * n),
                *([["Acme"] * n] * 6),
                *(batch, ["Accepted"] * n, [now] * n),
                *([["Acme"] * n] * 6),
            ],
        ),
    }
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        await driver.execute(prw._NEW_STATIONS, ids, [now] * len(ids))
        for seconds in range(1, 5):  # the dead row versions a day of traffic leaves
            await driver.execute(prw._TOUCH_LAST_SEEN, ids, [at(seconds)] * len(ids))
        await driver.execute("ANALYZE station")
        for name, (statement, arguments) in statements.items():
            async with driver.transaction():
                await driver.execute(INDEX_PLANS)
                explained = await driver.fetch("EXPLAIN " + statement, *arguments)
            plan = "\n".join(row[0] for row in explained)
            assert "Seq Scan on station " not in plan, f"{name}:\n{plan}"
