"""Standalone's WAL reaches the database file from a checkpoint thread, not from the writers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

from csms.db.engine import create_engine
from csms.db.sqlite_checkpoints import SqliteCheckpoints
from tests.support.polling import eventually


async def test_committed_pages_reach_the_database_file_from_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoints.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE blob (data BLOB)"))
            for _ in range(100):
                await connection.execute(text("INSERT INTO blob VALUES (randomblob(10000))"))
        # Committed, but in the WAL only: the writers' own checkpoints wait for a larger WAL.
        size_before = path.stat().st_size
        assert size_before < 100_000

        checkpoints = SqliteCheckpoints(engine, interval=0.05)
        checkpoints.start()
        try:
            await eventually(_size_of(path), lambda size: size > 1_000_000)
        finally:
            await asyncio.wait_for(asyncio.to_thread(checkpoints.stop), 5)
    finally:
        await engine.dispose()


def _size_of(path: Path) -> Callable[[], Awaitable[int]]:
    async def size() -> int:
        return path.stat().st_size

    return size
