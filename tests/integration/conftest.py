"""Databases for the repository and migration tests: real Postgres and a SQLite file.

Each database is migrated with the real Alembic migrations. A test gets a session inside an
outer transaction that is rolled back when the test ends, so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from csms.db.engine import create_engine, create_session_factory
from csms.db.migrate import upgrade_to_head
from tests.support import services

DATABASE_KINDS = ["postgres", "sqlite"]


def migrate(url: str) -> None:
    """Upgrade to head in a thread of its own: Alembic's env.py runs its own event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade_to_head, url).result()


def new_database(kind: str, directory: Path) -> tuple[str, str | None]:
    """A fresh, empty database: its URL and, for Postgres, its name (to drop it later)."""
    if kind == "postgres":
        name = services.unique_name("csms_it")
        return services.run_sync(services.create_database(name)), name
    return f"sqlite+aiosqlite:///{directory / 'csms.db'}", None


def remove_database(name: str | None) -> None:
    if name is not None:
        services.run_sync(services.drop_database(name))


@contextlib.asynccontextmanager
async def migrated_engine(kind: str, directory: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database migrated to head, dropped afterwards."""
    url, name = new_database(kind, directory)
    migrate(url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
        remove_database(name)


@pytest.fixture(scope="session", params=DATABASE_KINDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of the integration tests' own, migrated to head once per test run."""
    url, name = new_database(request.param, tmp_path_factory.mktemp(request.param))
    try:
        migrate(url)
        yield url
    finally:
        remove_database(name)


@pytest.fixture(params=DATABASE_KINDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with no tables at all, for one test."""
    url, name = new_database(request.param, tmp_path)
    try:
        yield url
    finally:
        remove_database(name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session whose work is rolled back after the test: an outer transaction per test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        # The product's factory, bound to this connection: the session's own transactions
        # become savepoints inside the outer one.
        session = create_session_factory(engine)(
            bind=connection, join_transaction_mode="create_savepoint"
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture
def station_id() -> str:
    """A station identity no other test uses."""
    return f"IT-{uuid.uuid4().hex[:16]}"
