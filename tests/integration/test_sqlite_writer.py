"""A writer on the event loop never waits there for a lock another process holds."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from csms.db.engine import create_engine
from csms.db.sqlite_writer import SqliteWriter


async def test_a_locked_database_sends_the_transaction_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "writer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    writer = SqliteWriter(engine, "test-writer", on_loop=True)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE item (name TEXT)"))

        async def insert(name: str) -> None:
            await writer.transaction(
                lambda connection: connection.execute("INSERT INTO item VALUES (?)", (name,))
            )

        await insert("free")  # the lock is free: committed on the loop

        other_process = sqlite3.connect(path, isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")
        try:
            waiting = asyncio.create_task(insert("after the lock"))
            started = time.monotonic()
            for _ in range(20):
                await asyncio.sleep(0.01)
            # The loop kept running (SQLite's busy wait would have held it for 10 s); the
            # transaction waits for the lock on the writer's thread.
            assert time.monotonic() - started < 2
            assert not waiting.done()
        finally:
            other_process.execute("COMMIT")
            other_process.close()
        await asyncio.wait_for(waiting, 5)

        async with engine.connect() as connection:
            names = (await connection.execute(text("SELECT name FROM item"))).scalars().all()
        assert sorted(names) == ["after the lock", "free"]
    finally:
        await writer.close()
        await engine.dispose()
