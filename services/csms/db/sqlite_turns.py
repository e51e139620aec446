"""SQLite transactions of one process take turns on an asyncio lock before they reach SQLite.

Every transaction begins with BEGIN IMMEDIATE (see engine.py), so SQLite lets one run at a
time. Left to SQLite, the others wait in its busy handler, which polls with sleeps growing to
100 ms: under load, transactions that could run one after another a millisecond apart waited
tens of ms each (standalone ingest had a p99 of 0.7-1.3 s at 2,500 msg/s). Here they queue on
a lock, each starting as soon as the previous one's connection is back in the pool (ADR 0013).
Other processes on the same file (`csms` admin commands) still meet SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.util import await_only

# As SQLite's busy timeout: a transaction waiting longer than this fails.
TURN_TIMEOUT = 10.0

_INSTALLED: weakref.WeakKeyDictionary[Engine, SqliteTurns] = weakref.WeakKeyDictionary()


def turns_of(engine: Engine) -> SqliteTurns:
    """The turns of an engine made by `create_engine` for SQLite."""
    return _INSTALLED[engine]


# Set in a pooled connection's info while it holds the turn.
_HOLDS_TURN = "csms_holds_sqlite_turn"


class SqliteTurns:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the turn, for writes that bypass the engine (see sqlite_command_writes.py)."""
        await self._acquire()
        try:
            yield
        finally:
            self._lock.release()

    def install(self, engine: Engine) -> None:
        _INSTALLED[engine] = self
        event.listen(engine, "begin", self._begin)
        # The turn is given back once the connection is back in the pool, its transaction
        # committed or rolled back: given back at COMMIT, the next BEGIN would race the COMMIT
        # and lose, sleeping in the busy handler. A connection keeps its turn across the
        # transactions of one checkout (sessions check theirs in at each commit).
        event.listen(engine.pool, "checkin", self._give_back)
        event.listen(engine.pool, "invalidate", self._give_back)

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(TURN_TIMEOUT):
                await self._lock.acquire()
        except TimeoutError:
            raise TimeoutError(
                f"no SQLite write turn within {TURN_TIMEOUT} s: database is locked"
            ) from None

    def _begin(self, connection: Any) -> None:
        if connection.info.get(_HOLDS_TURN):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        await_only(self._acquire())
        connection.info[_HOLDS_TURN] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._release(connection.info)
            raise

    def _give_back(self, _dbapi_connection: Any, record: Any, *_: Any) -> None:
        if record is not None:
            self._release(record.info)

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop(_HOLDS_TURN, False):
            self._lock.release()
