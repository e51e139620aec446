"""Engine and session factory: one AsyncSession per HTTP request and per bus message."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from csms.db.sqlite_turns import SqliteTurns


def create_engine(url: str, pool_size: int = 10, **options: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        SqliteTurns().install(engine.sync_engine)
        return engine
    # A steady pool: opening connections under load (TLS negotiation, auth) is what hurts.
    options.setdefault("pool_size", pool_size)
    options.setdefault("max_overflow", pool_size // 4)
    # No pre-ping: it costs three round trips per checkout (BEGIN, ping, ROLLBACK). A
    # connection broken by a database restart fails once and the pool is renewed; recycling
    # keeps connections from outliving server or proxy idle limits.
    options.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **options)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the worker writes; busy_timeout waits out short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # 64 MB of pages: with thousands of stations writing, the 2 MB default re-read pages on
    # every batch. Checkpoints run on a thread of their own (sqlite_checkpoints.py); this is
    # the writers' backstop, should that thread fall behind.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA wal_autocheckpoint=20000")
    cursor.close()
    # Transactions are begun by SqliteTurns, with BEGIN IMMEDIATE, not by the driver: a
    # deferred transaction that reads, then writes after another writer committed, fails at once
    # with "database is locked" (busy_timeout does not apply). Taking the write lock at BEGIN
    # makes it wait its turn instead.
    dbapi_connection.isolation_level = None


def is_sqlite(sessions: async_sessionmaker[AsyncSession]) -> bool:
    bind = sessions.kw.get("bind")
    return isinstance(bind, AsyncEngine) and bind.dialect.name == "sqlite"


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    bind = sessions.kw.get("bind")
    assert isinstance(bind, AsyncEngine), "the session factory is bound to an engine"
    return bind


@asynccontextmanager
async def autocommit_connection(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncConnection]:
    """A Core connection for single-statement writes on a hot path (no ORM session): on
    Postgres each statement commits by itself, one round trip; on SQLite, whose transactions
    cost no round trips, what it ran is committed at the end."""
    engine = engine_of(sessions)
    if engine.dialect.name == "postgresql":
        async with _autocommitting(engine).connect() as connection:
            yield connection
    else:
        async with engine.begin() as connection:
            yield connection


# Per engine, its autocommitting view (same pool); weak, so a disposed engine is not kept.
_AUTOCOMMITTING: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


def _autocommitting(engine: AsyncEngine) -> AsyncEngine:
    view = _AUTOCOMMITTING.get(engine)
    if view is None:
        view = _AUTOCOMMITTING[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return view
