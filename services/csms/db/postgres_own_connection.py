"""One asyncpg connection of a writer's own, outside the engine's pool.

A writer that runs one statement at a time (each of the command journal's grouped writers)
keeps a connection instead of checking one out of SQLAlchemy's pool for every statement: the
checkout and return cost 45-85 µs of CPU per statement, on the API's hot path, more than the
driver spends on the statement itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.postgres_driver import statement_fault

T = TypeVar("T")

# As the engine's pool_recycle: a connection does not outlive server or proxy idle limits.
RECYCLE_S = 1800.0
# Options of SQLAlchemy's asyncpg dialect that asyncpg.connect does not take.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


class OwnConnection:
    """Opened on first use with the engine's connection arguments (and `settings`, set for the
    connection's session); reopened on the next use after it was lost or grew older than
    `recycle` seconds."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        settings: Mapping[str, str] | None = None,
        recycle: float = RECYCLE_S,
    ) -> None:
        if engine.dialect.driver != "asyncpg":
            raise ValueError(f"an asyncpg engine is needed, not {engine.dialect.driver}")
        args, options = engine.dialect.create_connect_args(engine.url)
        for key in _DIALECT_ONLY:
            options.pop(key, None)
        self._args: list[Any] = list(args)
        self._options: dict[str, Any] = dict(options)
        if settings:
            self._options["server_settings"] = {
                **self._options.get("server_settings", {}),
                **settings,
            }
        self._recycle = recycle
        self._connection: asyncpg.Connection | None = None
        self._opened_at = 0.0
        # asyncpg runs one operation at a time per connection: callers take turns.
        self._turn = asyncio.Lock()

    async def run(self, statement: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`statement` on the connection: one statement commits by itself; several need the
        driver's own transaction."""
        async with self._turn:
            connection = await self._open()
            try:
                return await statement(connection)
            except BaseException as exc:
                # Postgres refused the statement: the connection is sound. Anything else
                # (lost, cancelled mid-statement) leaves it in an unknown state.
                if not statement_fault(exc):
                    self._drop()
                raise

    async def close(self) -> None:
        async with self._turn:
            await self._close()

    async def _open(self) -> asyncpg.Connection:
        connection = self._connection
        if connection is not None and (
            connection.is_closed() or time.monotonic() - self._opened_at > self._recycle
        ):
            await self._close()
        if self._connection is None:
            self._connection = await asyncpg.connect(*self._args, **self._options)
            self._opened_at = time.monotonic()
        return self._connection

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.terminate()
