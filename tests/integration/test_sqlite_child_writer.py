"""Standalone ingest transactions in a child process: answers, failures and a child that dies
come back to the right caller, and a new child takes over."""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db.engine import create_engine
from csms.db.sqlite_child_writer import SqliteChildGone, SqliteChildWriter
from csms.heap import OLD_GENERATION_THRESHOLD, YOUNG_GENERATION_THRESHOLD

pytestmark = pytest.mark.services


# Transactions the child runs: module-level, so that it can import them by name.
def insert(connection: sqlite3.Connection, value: int) -> int:
    connection.execute("INSERT INTO item (value) VALUES (?)", (value,))
    return value * 10


def insert_then_fail(connection: sqlite3.Connection, value: int) -> None:
    connection.execute("INSERT INTO item (value) VALUES (?)", (value,))
    connection.execute("INSERT INTO item (value) VALUES (?)", (value,))


def insert_slowly(connection: sqlite3.Connection, value: int, seconds: float) -> int:
    connection.execute("INSERT INTO item (value) VALUES (?)", (value,))
    time.sleep(seconds)
    return value


def collector_settings(_connection: sqlite3.Connection) -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    path = tmp_path / "child.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE item (value INTEGER PRIMARY KEY)")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    yield engine
    await engine.dispose()


@pytest.fixture
async def writer(engine: AsyncEngine) -> AsyncIterator[SqliteChildWriter]:
    writer = SqliteChildWriter(engine)
    await writer.start()
    yield writer
    await writer.close()


async def child_after_one_insert(writer: SqliteChildWriter) -> int:
    """The pid of the child that stored 1."""
    await writer.transaction(insert, 1)
    pid = writer.child_pid
    assert pid is not None
    return pid


def stored(engine: AsyncEngine) -> list[int]:
    with sqlite3.connect(str(engine.url.database)) as connection:
        return [value for (value,) in connection.execute("SELECT value FROM item ORDER BY value")]


async def test_a_transaction_commits_in_the_child_and_answers(
    engine: AsyncEngine, writer: SqliteChildWriter
) -> None:
    assert await writer.transaction(insert, 1) == 10
    assert await writer.transaction(insert, 2) == 20

    assert stored(engine) == [1, 2]
    assert writer.child_pid not in (None, os.getpid())


async def test_a_failing_transaction_raises_its_error_and_leaves_nothing(
    engine: AsyncEngine, writer: SqliteChildWriter
) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await writer.transaction(insert_then_fail, 3)

    assert stored(engine) == []
    assert await writer.transaction(insert, 4) == 40


async def test_a_child_killed_midway_fails_its_transaction_and_the_next_starts_another(
    engine: AsyncEngine, writer: SqliteChildWriter
) -> None:
    first = await child_after_one_insert(writer)
    slow = asyncio.create_task(writer.transaction(insert_slowly, 2, 5.0))
    await asyncio.sleep(1.0)
    os.kill(first, signal.SIGKILL)

    with pytest.raises(SqliteChildGone):
        await slow
    assert await writer.transaction(insert, 3) == 30
    assert writer.child_pid not in (None, first)
    assert stored(engine) == [1, 3]


async def test_a_child_killed_while_idle_is_replaced_before_the_next_transaction(
    engine: AsyncEngine, writer: SqliteChildWriter
) -> None:
    first = await child_after_one_insert(writer)
    os.kill(first, signal.SIGKILL)
    await asyncio.sleep(0.5)

    assert await writer.transaction(insert, 2) == 20
    assert stored(engine) == [1, 2]


async def test_a_caller_cancelled_midway_does_not_take_the_next_callers_answer(
    engine: AsyncEngine, writer: SqliteChildWriter
) -> None:
    slow = asyncio.create_task(writer.transaction(insert_slowly, 1, 0.5))
    await asyncio.sleep(0.2)
    slow.cancel()

    assert await writer.transaction(insert, 2) == 20
    # The cancelled caller's transaction still ran to its end in the child.
    assert stored(engine) == [1, 2]


async def test_the_child_ignores_an_interrupt_and_ends_when_closed(
    engine: AsyncEngine,
) -> None:
    writer = SqliteChildWriter(engine)
    await writer.start()
    pid = writer.child_pid
    assert pid is not None
    await writer.transaction(insert, 1)
    os.kill(pid, signal.SIGINT)
    assert await writer.transaction(insert, 2) == 20

    await writer.close()

    assert writer.child_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # No child is started again once closed.
    with pytest.raises(RuntimeError, match="closed"):
        await writer.transaction(insert, 3)
    assert writer.child_pid is None


async def test_a_transaction_the_child_cannot_load_fails_alone(
    engine: AsyncEngine,
    writer: SqliteChildWriter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module this process can import and the child cannot.
    (tmp_path / "parent_only.py").write_text("def work(connection):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    parent_only = importlib.import_module("parent_only")
    first = await child_after_one_insert(writer)

    with pytest.raises(ModuleNotFoundError):
        await writer.transaction(parent_only.work)

    assert await writer.transaction(insert, 2) == 20
    assert writer.child_pid == first


async def test_the_child_tunes_its_collector_once_its_first_request_is_answered(
    writer: SqliteChildWriter,
) -> None:
    (young, _, _), frozen = await writer.transaction(collector_settings)
    assert young != YOUNG_GENERATION_THRESHOLD
    assert frozen == 0

    (young, _, old), frozen = await writer.transaction(collector_settings)
    assert (young, old) == (YOUNG_GENERATION_THRESHOLD, OLD_GENERATION_THRESHOLD)
    # The modules imported for the first request are exempt from later collections.
    assert frozen > 10_000
