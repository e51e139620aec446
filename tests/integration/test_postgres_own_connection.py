"""A writer's own Postgres connection: kept across statements, reopened when it cannot be
trusted any more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import create_engine
from csms.db.postgres_driver import INDEX_PLAN_SETTINGS, statement_fault
from csms.db.postgres_own_connection import OwnConnection
from tests.support.services import POSTGRES_ADMIN_DSN

pytestmark = pytest.mark.services

URL = POSTGRES_ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://")


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine(URL)
    yield engine
    await engine.dispose()


@pytest.fixture
async def own(engine: AsyncEngine) -> AsyncIterator[OwnConnection]:
    own = OwnConnection(engine)
    yield own
    await own.close()


async def backend(own: OwnConnection) -> int:
    pid = await own.run(lambda driver: driver.fetchval("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def terminate(pid: int) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_statements_share_one_connection_also_after_a_refused_statement(
    own: OwnConnection,
) -> None:
    first = await backend(own)
    with pytest.raises(asyncpg.UndefinedTableError) as refused:
        await own.run(lambda driver: driver.execute("SELECT * FROM no_such_table"))
    assert statement_fault(refused.value)
    assert await backend(own) == first


async def test_a_connection_the_server_closed_is_replaced_on_the_next_use(
    own: OwnConnection,
) -> None:
    first = await backend(own)
    await terminate(first)
    await asyncio.sleep(0.2)
    assert await backend(own) != first


async def test_a_statement_cancelled_midway_leaves_a_fresh_connection_for_the_next(
    own: OwnConnection,
) -> None:
    first = await backend(own)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await own.run(lambda driver: driver.execute("SELECT pg_sleep(5)"))
    assert await backend(own) != first


async def test_a_connection_older_than_the_recycle_age_is_replaced(engine: AsyncEngine) -> None:
    own = OwnConnection(engine, recycle=0.1)
    try:
        first = await backend(own)
        assert await backend(own) == first
        await asyncio.sleep(0.2)
        assert await backend(own) != first
    finally:
        await own.close()


async def test_concurrent_callers_take_turns(own: OwnConnection) -> None:
    pids = await asyncio.gather(*(backend(own) for _ in range(20)))
    assert len(set(pids)) == 1


def test_a_lost_connection_or_a_shutdown_is_no_statement_fault() -> None:
    assert not statement_fault(asyncpg.ConnectionDoesNotExistError("closed"))
    assert not statement_fault(asyncpg.AdminShutdownError("terminating connection"))
    assert not statement_fault(OSError("refused"))
    assert statement_fault(asyncpg.UniqueViolationError("duplicate key"))


async def test_its_settings_hold_on_every_connection_it_opens(engine: AsyncEngine) -> None:
    own = OwnConnection(engine, settings={"enable_seqscan": "off"})
    plain = OwnConnection(engine)
    try:
        assert await own.run(lambda driver: driver.fetchval("SHOW enable_seqscan")) == "off"
        await terminate(await backend(own))
        await asyncio.sleep(0.2)
        assert await own.run(lambda driver: driver.fetchval("SHOW enable_seqscan")) == "off"
        assert await plain.run(lambda driver: driver.fetchval("SHOW enable_seqscan")) == "on"
    finally:
        await own.close()
        await plain.close()


async def test_with_index_plan_settings_a_statement_is_planned_once(engine: AsyncEngine) -> None:
    statement = "SELECT count(*) FROM unnest($1::varchar[]) AS n(id) WHERE n.id <> ''"
    plans = (
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE 'SELECT count(*) FROM unnest%'"
    )

    async def run_eight_times(own: OwnConnection) -> tuple[int, int]:
        for size in range(1, 9):
            ids = [str(number) for number in range(size)]
            assert await own.run(lambda driver, ids=ids: driver.fetchval(statement, ids)) == size
        generic, custom = await own.run(lambda driver: driver.fetchrow(plans))
        return generic, custom

    own = OwnConnection(engine, settings=INDEX_PLAN_SETTINGS)
    plain = OwnConnection(engine)
    try:
        assert await run_eight_times(own) == (8, 0)
        # Postgres's default: a plan for each run's values first, for five runs at least.
        assert (await run_eight_times(plain))[1] >= 5
    finally:
        await own.close()
        await plain.close()
