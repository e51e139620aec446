"""Statements sent to asyncpg directly, on a connection of the engine's pool.

For the hot paths (the command journal; the events worker's batches of statuses, NotifyEvents,
boots and presence): prepared once per connection and taking whole batches as arrays, they cost
a fraction of the CPU of the same work through SQLAlchemy's statement processing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


def statement_fault(error: BaseException) -> bool:
    """Whether Postgres refused a statement, on a connection still sound: not a lost or refused
    connection (class 08, which asyncpg also raises for a connection closed under it) nor an
    operator's intervention (class 57: shutdown, cancel)."""
    return isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    )


async def on_driver(
    engine: AsyncEngine, statement: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """`statement` on a pooled connection's driver: one statement commits by itself; several
    need the driver's own transaction."""
    pooled = await engine.raw_connection()
    try:
        return await statement(pooled.driver_connection)
    except BaseException as exc:
        # A connection that failed other than by the statement's fault is not reused.
        if not statement_fault(exc):
            pooled.invalidate()
        raise
    finally:
        pooled.close()


# A batch reaches its rows by their keys. Planned from statistics that lag a young, fast-growing
# table (autovacuum analyzes it a minute or more late), a statement could scan the whole table
# instead, for every batch; no scan is ever cheaper by much for a batch's few hundred keys.
INDEX_PLANS = "SET LOCAL enable_seqscan = off"
# The same for every statement on a connection that only runs such statements. Prepared once per
# connection, a statement keeps its generic plan until the table is analyzed again: planned
# while the table was young, it would scan it whole for good. And each runs its generic plan:
# left to choose, Postgres planned the command journal's create afresh for every group (the
# custom plan looked cheaper than the generic one): 2.5 times its CPU per statement.
INDEX_PLAN_SETTINGS = {"enable_seqscan": "off", "plan_cache_mode": "force_generic_plan"}
