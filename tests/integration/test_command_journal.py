"""The API's command journal: concurrent commands recorded together, each with its own answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db import presence
from csms.db.command_journal import CommandJournal
from csms.db.commands import CommandOutcome, CommandRoute, NewCommand, Outcome
from csms.db.engine import create_engine, create_session_factory
from csms.db.models import Command, Station, StationConnection
from tests.integration.conftest import migrated_engine

pytestmark = pytest.mark.services


@pytest.fixture
async def journal(engine: AsyncEngine) -> AsyncIterator[CommandJournal]:
    journal = CommandJournal(create_session_factory(engine))
    yield journal
    await journal.close()


@pytest.fixture
async def prefix(engine: AsyncEngine) -> AsyncIterator[str]:
    """Station ids of this test's own; what the test committed is deleted afterwards, as the
    other tests of the shared database expect it empty."""
    prefix = f"IT-{uuid.uuid4().hex[:12]}"
    yield prefix
    async with engine.begin() as connection:
        for column in (Command.station_id, StationConnection.station_id, Station.id):
            await connection.execute(delete(column.class_).where(column.startswith(prefix)))


async def _stations(engine: AsyncEngine, connected: dict[str, str | None]) -> None:
    """Committed stations: each connected to the gateway named, or only seen (None)."""
    now = datetime.now(UTC)
    async with create_session_factory(engine)() as session:
        for station_id, gateway in connected.items():
            if gateway is None:
                await presence.ensure_station(session, station_id=station_id, seen_at=now)
            else:
                await presence.record_connected(
                    session,
                    station_id=station_id,
                    connection_id=uuid.uuid4().hex,
                    gateway_id=gateway,
                    connected_at=now,
                )
        await session.commit()


def _command(station_id: str, at: datetime, evse: int = 1) -> NewCommand:
    return NewCommand(
        str(uuid.uuid4()), station_id, "Reset", {"type": "OnIdle", "evseId": evse}, at
    )


async def _rows(engine: AsyncEngine, commands: list[NewCommand]) -> dict[str, Command]:
    async with create_session_factory(engine)() as session:
        rows = await session.scalars(
            select(Command).where(Command.id.in_([c.id for c in commands]))
        )
        return {row.id: row for row in rows}


async def test_concurrent_commands_are_each_routed_to_their_stations_gateway(
    engine: AsyncEngine, journal: CommandJournal, prefix: str
) -> None:
    await _stations(engine, {f"{prefix}-a": "gwA", f"{prefix}-b": "gwB", f"{prefix}-c": None})
    t0 = datetime.now(UTC)
    commands = [
        _command(f"{prefix}-{name}", t0, evse) for evse in (1, 2) for name in ("a", "b", "c", "x")
    ]

    routes = await asyncio.gather(*(journal.create(command) for command in commands))

    expected = {"a": CommandRoute("gwA"), "b": CommandRoute("gwB"), "c": CommandRoute(None)}
    assert routes == [expected.get(c.station_id[-1]) for c in commands]
    rows = await _rows(engine, commands)
    # A command for a station never seen (x) is not recorded.
    assert sorted(rows) == sorted(c.id for c in commands if not c.station_id.endswith("x"))
    for command in commands:
        if command.id in rows:
            row = rows[command.id]
            assert (row.station_id, row.action, row.request) == (
                command.station_id,
                "Reset",
                command.request,
            )
            assert (row.outcome, row.open, row.created_at) == ("pending", False, t0)


async def test_concurrent_outcomes_are_each_stored_with_their_command(
    engine: AsyncEngine, journal: CommandJournal, prefix: str
) -> None:
    station_id = f"{prefix}-1"
    await _stations(engine, {station_id: "gw"})
    t0 = datetime.now(UTC)
    commands = [_command(station_id, t0 + timedelta(milliseconds=n)) for n in range(4)]
    for command in commands:
        assert await journal.create(command) == CommandRoute("gw")
    at = t0 + timedelta(seconds=1)
    outcomes = [
        CommandOutcome(Outcome.ANSWERED, at=at, response={"status": "Accepted"}),
        # A station's CALLERROR longer than the columns is stored cut, not refused.
        CommandOutcome(Outcome.CALL_ERROR, at=at, error_code="E" * 60, error_description="d" * 300),
        CommandOutcome(Outcome.TIMEOUT, at=at),
        CommandOutcome(Outcome.NOT_CONNECTED, at=at, error_description="bus unavailable"),
    ]

    await asyncio.gather(*(journal.record(c, o) for c, o in zip(commands, outcomes, strict=True)))

    rows = await _rows(engine, commands)
    stored = [
        (r.outcome, r.response, r.error_code, r.error_description, r.answered_at, r.open)
        for r in (rows[c.id] for c in commands)
    ]
    assert stored == [
        ("answered", {"status": "Accepted"}, None, None, at, False),
        ("callError", None, "E" * 40, "d" * 255, at, False),
        ("timeout", None, None, None, None, False),
        ("notConnected", None, None, "bus unavailable", None, False),
    ]


async def test_an_accepted_whole_station_reset_stays_open_until_the_next_boot(
    engine: AsyncEngine, journal: CommandJournal, prefix: str
) -> None:
    station_id = f"{prefix}-1"
    await _stations(engine, {station_id: "gw"})
    t0 = datetime.now(UTC)
    command = NewCommand(str(uuid.uuid4()), station_id, "Reset", {"type": "Immediate"}, t0)
    await journal.create(command)

    at = t0 + timedelta(seconds=1)
    await journal.record(
        command, CommandOutcome(Outcome.ANSWERED, at=at, response={"status": "Accepted"})
    )

    row = (await _rows(engine, [command]))[command.id]
    assert (row.outcome, row.answered_at, row.open, row.closed_at) == ("answered", at, True, None)


async def _journal_backends(engine: AsyncEngine) -> set[int]:
    """The server processes whose last statement was one of the journal's."""
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
            " AND (query LIKE '%INSERT INTO command %' OR query LIKE '%UPDATE command SET %')"
        )
        return {row[0] for row in rows}


async def test_commands_created_and_answered_together_are_each_written(
    engine: AsyncEngine, journal: CommandJournal, prefix: str
) -> None:
    station_id = f"{prefix}-1"
    await _stations(engine, {station_id: "gw"})
    t0 = datetime.now(UTC)
    answered = [_command(station_id, t0, evse) for evse in (1, 2)]
    for command in answered:
        await journal.create(command)
    created = [_command(station_id, t0, evse) for evse in (1, 2)]
    at = t0 + timedelta(seconds=1)

    # Submitted in one round of the event loop: they share the journal's writes.
    routes = await asyncio.gather(
        *(journal.create(command) for command in created),
        *(journal.record(command, CommandOutcome(Outcome.TIMEOUT, at=at)) for command in answered),
    )

    assert routes == [CommandRoute("gw"), CommandRoute("gw"), None, None]
    rows = await _rows(engine, answered + created)
    assert [rows[c.id].outcome for c in answered + created] == [
        "timeout",
        "timeout",
        "pending",
        "pending",
    ]


async def test_start_opens_the_connection_the_first_commands_use(tmp_path: Path) -> None:
    async with migrated_engine("postgres", tmp_path) as engine:
        journal = CommandJournal(create_session_factory(engine))
        try:
            await journal.start()
            opened = await _journal_backends(engine)
            assert len(opened) == 1
            await _stations(engine, {"started-1": "gw"})
            command = _command("started-1", datetime.now(UTC))
            assert await journal.create(command) == CommandRoute("gw")
            await journal.record(command, CommandOutcome(Outcome.TIMEOUT, at=datetime.now(UTC)))
            assert await _journal_backends(engine) == opened
        finally:
            await journal.close()


async def test_start_with_the_database_away_leaves_the_connection_to_the_first_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
    journal = CommandJournal(create_session_factory(engine))
    try:
        await journal.start()
        assert "command journal not ready yet" in caplog.text
    finally:
        await journal.close()
        await engine.dispose()
