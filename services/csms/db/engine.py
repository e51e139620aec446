"""Engine and session factory: one AsyncSession per HTTP request and per bus message."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, pool_size: int = 10, **options: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    # A steady pool: opening connections under load (TLS negotiation, auth) is what hurts.
    options.setdefault("pool_size", pool_size)
    options.setdefault("max_overflow", pool_size // 4)
    # No pre-ping: it costs three round trips per checkout (BEGIN, ping, ROLLBACK). A
    # connection broken by a database restart fails once and the pool is renewed; recycling
    # keeps connections from outliving server or proxy idle limits.
    options.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the worker writes; busy_timeout waits out short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # Transactions are begun by _sqlite_begin_immediate, not by the driver.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    # A deferred transaction that reads, then writes after another writer committed, fails at
    # once with "database is locked" (busy_timeout does not apply). Taking the write lock at
    # BEGIN makes it wait its turn instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def autocommit(session: AsyncSession) -> None:
    """Let each statement of the fresh `session` commit by itself: a write of one statement
    then costs one round trip instead of three (BEGIN, it, COMMIT). Postgres only: SQLite's
    transactions cost no round trips. Call `session.commit()` as usual afterwards."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def is_sqlite(sessions: async_sessionmaker[AsyncSession]) -> bool:
    bind = sessions.kw.get("bind")
    return isinstance(bind, AsyncEngine) and bind.dialect.name == "sqlite"


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
