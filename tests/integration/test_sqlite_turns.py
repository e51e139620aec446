"""SQLite transactions of one process wait for each other before they reach SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from csms.db.engine import create_engine


async def test_a_transaction_begins_only_once_the_previous_one_is_back_in_the_pool(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    seen: list[str] = []

    def began(connection: Any) -> None:
        seen.append(f"begin {connection.info.get('name')}")

    event.listen(engine.sync_engine, "begin", began)
    event.listen(engine.sync_engine.pool, "checkin", lambda *_: seen.append("checkin"))
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE counter (n INTEGER)"))
            await connection.execute(text("INSERT INTO counter VALUES (0)"))
        seen.clear()

        async def add_one(name: str, hold: asyncio.Event | None) -> None:
            async with engine.connect() as connection:
                connection.info["name"] = name
                await connection.execute(text("UPDATE counter SET n = n + 1"))
                if hold is not None:
                    await hold.wait()
                await connection.commit()

        hold = asyncio.Event()
        first = asyncio.create_task(add_one("first", hold))
        while "begin first" not in seen:
            await asyncio.sleep(0.001)
        others = [asyncio.create_task(add_one(f"other{n}", None)) for n in range(3)]
        await asyncio.sleep(0.05)
        # SQLite would have let the others issue BEGIN, then wait in its busy handler.
        assert seen == ["begin first"]

        hold.set()
        await asyncio.gather(first, *others)

        # One transaction at a time: each begins after the previous one's checkin.
        assert seen[0] == "begin first"
        assert sorted(seen[2::2]) == ["begin other0", "begin other1", "begin other2"]
        assert seen[1::2] == ["checkin"] * 4
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT n FROM counter"))).scalar() == 4
    finally:
        await engine.dispose()


async def test_a_connection_dropped_in_a_transaction_gives_its_turn_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    try:
        connection = await engine.connect()
        await connection.execute(text("CREATE TABLE t (n INTEGER)"))
        await connection.invalidate()
        await connection.close()

        async with asyncio.timeout(5):
            async with engine.begin() as other:
                await other.execute(text("CREATE TABLE u (n INTEGER)"))
    finally:
        await engine.dispose()
