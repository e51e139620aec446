"""Standalone's direct SQLite writes of boots and presence store exactly what the engine's
statements store.

The same batches go through the engine (boots.py and presence.py, as EngineRegistrationWrites
composes them) for one set of stations and through SqliteRegistrationWrites for another; what
each stored is read back through the models and, ids renamed, must match, as must the boot
decisions, the registrations and the replaced connections.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.db import commands
from csms.db.boots import BootDecision, BootPolicy, BootReport
from csms.db.engine import create_session_factory
from csms.db.models import (
    Base,
    BootNotification,
    Command,
    Gateway,
    Station,
    StationConnection,
)
from csms.db.presence import BeforeCommit, Connection, Disconnection, PresenceBatch, Replaced
from csms.db.registration_writes import EngineRegistrationWrites, RegistrationWrites
from csms.db.sqlite_registration_writes import SqliteRegistrationWrites
from tests.integration.conftest import migrated_engine
from tests.integration.test_sqlite_ingest_writes import T0, at

pytestmark = pytest.mark.services

POLICY = BootPolicy(unknown_station_status="Accepted", heartbeat_interval=300, retry_interval=60)


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine("sqlite", tmp_path_factory.mktemp("direct")) as engine:
        yield engine


@pytest.fixture
async def direct(engine: AsyncEngine) -> AsyncIterator[SqliteRegistrationWrites]:
    writes = SqliteRegistrationWrites(engine)
    yield writes
    await writes.close()


def new_prefix() -> str:
    """The ids of one run of a scenario start with this."""
    return f"IT-{uuid.uuid4().hex[:8]}"


def boot(
    station: str, message_id: str, seconds: float, connection: str, **charging_station: Any
) -> BootReport:
    payload = {
        "reason": "PowerUp",
        "chargingStation": {"vendorName": "Acme", "model": "AC-22", **charging_station},
    }
    return BootReport(station, connection, message_id, payload, at(seconds))


async def commit(engine: AsyncEngine, *statements: Any) -> None:
    async with create_session_factory(engine)() as session, session.begin():
        for statement in statements:
            await session.execute(statement)


async def open_reset(engine: AsyncEngine, command_id: str, station: str, seconds: float) -> None:
    """A Reset the station accepted, created at `seconds`: open until the station boots."""
    command = commands.NewCommand(command_id, station, "Reset", {"type": "Immediate"}, at(seconds))
    accepted = commands.CommandOutcome(
        commands.Outcome.ANSWERED, at=at(seconds + 1), response={"status": "Accepted"}
    )
    async with create_session_factory(engine)() as session, session.begin():
        connection = await session.connection()
        assert await commands.create_command(connection, command) is not None
        await commands.record_outcome(connection, command, accepted)


async def register(engine: AsyncEngine, station: str, **columns: Any) -> None:
    async with create_session_factory(engine)() as session, session.begin():
        session.add(Station(id=station, created_at=T0, **columns))


async def registration_scenario(
    engine: AsyncEngine, writes: RegistrationWrites, p: str
) -> list[object]:
    """Boots, then presence, for stations whose ids start with `p`; what the writes returned
    and what they gave before_commit, batch by batch."""
    await register(engine, f"{p}-pending", registration_status="Pending", security_profile=2)
    await register(engine, f"{p}-tuned", registration_status="Accepted", heartbeat_interval=120)
    await register(engine, f"{p}-reset")
    await open_reset(engine, f"{p}-reset-1", f"{p}-reset", 5)
    await register(engine, f"{p}-twice")
    await open_reset(engine, f"{p}-twice-1", f"{p}-twice", 20)
    results: list[object] = []
    modem = {"iccid": "8931000000000000001", "imsi": "204040000000001"}
    first = boot(f"{p}-a", "m1", 10, f"{p}-c1", firmwareVersion="2.0", serialNumber="SN-1")
    results.append(
        await writes.record_boots(
            [
                first,
                boot(f"{p}-pending", "m1", 10, f"{p}-c2", modem=modem),
                boot(f"{p}-tuned", "m1", 10, f"{p}-c3"),
                # Closes the Reset created before it.
                boot(f"{p}-reset", "m1", 20, f"{p}-c4"),
                # The same boot again in the batch: decided and stored once.
                first,
            ],
            POLICY,
        )
    )
    # The operator decides otherwise meanwhile: a redelivery still gets the first decision.
    await commit(
        engine,
        update(Station).where(Station.id == f"{p}-a").values(registration_status="Rejected"),
    )
    results.append(
        await writes.record_boots(
            [
                first,
                # Older than the stored boot: recorded, its data not kept.
                boot(f"{p}-a", "m2", 5, f"{p}-c1", firmwareVersion="1.0"),
                # The Reset closes at the batch's first boot after it (30 s, not 25 s: as one
                # statement per boot, in batch order); the data of the newest boot, the last of
                # equally new ones, is kept.
                boot(f"{p}-twice", "m1", 30, f"{p}-c5", firmwareVersion="3.0"),
                boot(f"{p}-twice", "m2", 25, f"{p}-c5", firmwareVersion="2.5"),
                boot(f"{p}-twice", "m3", 30, f"{p}-c6", firmwareVersion="3.1"),
            ],
            POLICY,
        )
    )
    for batch in presence_batches(p):
        replaced: list[list[Replaced]] = []
        results.append(await writes.record_presence(batch, collect(replaced)))
        results.append(replaced)
    return results


def collect(calls: list[list[Replaced]]) -> BeforeCommit:
    """A before_commit that keeps what it is given."""

    async def before_commit(replaced: list[Replaced]) -> None:
        calls.append(replaced)

    return before_commit


def presence_batches(p: str) -> list[PresenceBatch]:
    a, pending, new, y = f"{p}-a", f"{p}-pending", f"{p}-new", f"{p}-y"
    gw_a, gw_b = f"{p}-gwA", f"{p}-gwB"
    return [
        PresenceBatch(
            heard={gw_a: at(100)},
            connections=[
                Connection(f"{p}-a1", a, gw_a, at(100)),
                Connection(f"{p}-p1", pending, gw_a, at(100)),
                # Never seen before: its row is created.
                Connection(f"{p}-n1", new, gw_b, at(101)),
            ],
            # Heard before its connection.
            disconnections=[Disconnection(f"{p}-y1", y, gw_a, at(105), at(104))],
            seen={a: at(102)},
        ),
        PresenceBatch(
            # gwA's older beat moves nothing.
            heard={gw_a: at(90), gw_b: at(110)},
            connections=[
                # Replaces a1, held by gwA.
                Connection(f"{p}-a2", a, gw_b, at(110)),
                # Its disconnection came first: the station stays offline.
                Connection(f"{p}-y1", y, gw_a, at(100)),
                # On the same gateway: nothing to take over.
                Connection(f"{p}-p2", pending, gw_a, at(111)),
                # Older than the current one: not current.
                Connection(f"{p}-n0", new, gw_a, at(95)),
            ],
            # No longer the current connection: the station stays online.
            disconnections=[Disconnection(f"{p}-p1", pending, gw_a, at(112))],
            seen={a: at(108), pending: at(120)},
        ),
        PresenceBatch(
            heard={},
            # Redelivered, and older than the current one: nothing to take over.
            connections=[Connection(f"{p}-a1", a, gw_a, at(100))],
            # Its current connection closes, reported twice: the station goes offline.
            disconnections=[
                Disconnection(f"{p}-a2", a, gw_b, at(130), at(129)),
                Disconnection(f"{p}-a2", a, gw_b, at(130), at(128)),
            ],
            # A station never seen gets no row from traffic alone.
            seen={a: at(125), f"{p}-unknown": at(125)},
        ),
    ]


# Each model, and the column whose values start with a scenario's prefix.
STORED: list[tuple[type[Base], str]] = [
    (Station, "id"),
    (StationConnection, "station_id"),
    (BootNotification, "station_id"),
    (Gateway, "id"),
    (Command, "station_id"),
]


async def stored(engine: AsyncEngine, model: type[Base], key: str, p: str) -> list[object]:
    """The rows whose `key` starts with `p` (auto-incremented ids left out), `p` renamed."""
    table = model.__table__
    columns = [c for c in table.columns if not (c.name == "id" and c.autoincrement is True)]
    async with create_session_factory(engine)() as session:
        rows = await session.execute(
            select(*columns).where(table.c[key].startswith(p)).order_by(*columns)
        )
        found: list[object] = renamed([tuple(row) for row in rows], p)
        return found


def renamed(value: Any, p: str) -> Any:
    """`value` with the prefix `p` replaced wherever it occurs."""
    if isinstance(value, str):
        return value.replace(p, "P")
    if isinstance(value, list | tuple):
        return type(value)(renamed(item, p) for item in value)
    if isinstance(value, dict):
        return {renamed(k, p): renamed(v, p) for k, v in value.items()}
    if isinstance(value, Replaced):
        return Replaced(
            renamed(value.station_id, p),
            renamed(value.connection_id, p),
            renamed(value.gateway_id, p),
        )
    return value


async def registration_stored_alike(engine: AsyncEngine, direct: RegistrationWrites) -> None:
    """`direct` stores the same rows as the engine's statements and returns the same."""
    by_engine, by_direct = new_prefix(), new_prefix()
    through_engine = EngineRegistrationWrites(create_session_factory(engine))
    expected = renamed(await registration_scenario(engine, through_engine, by_engine), by_engine)
    got = renamed(await registration_scenario(engine, direct, by_direct), by_direct)

    assert got == expected
    accepted, pending, rejected = (
        BootDecision("Accepted", 300),
        BootDecision("Pending", 60),
        BootDecision("Rejected", 60),
    )
    assert got == [
        [accepted, pending, BootDecision("Accepted", 120), accepted, accepted],
        [accepted, rejected, accepted, accepted, accepted],
        {"P-a": ("Accepted", 0), "P-pending": ("Pending", 2), "P-new": (None, 0)},
        [],
        {
            "P-a": ("Accepted", 0),
            "P-y": (None, 0),
            "P-pending": ("Pending", 2),
            "P-new": (None, 0),
        },
        [[Replaced("P-a", "P-a1", "P-gwA")]],
        {"P-a": ("Accepted", 0)},
        [],
    ]
    for model, key in STORED:
        rows = await stored(engine, model, key, by_engine)
        assert rows, f"the scenario stores {model.__tablename__} rows"
        assert await stored(engine, model, key, by_direct) == rows
    async with create_session_factory(engine)() as session:
        resets = await session.execute(
            select(Command.id, Command.open, Command.closed_at)
            .where(Command.station_id.startswith(by_direct))
            .order_by(Command.id)
        )
        assert renamed([tuple(row) for row in resets], by_direct) == [
            ("P-reset-1", False, at(20)),
            ("P-twice-1", False, at(30)),
        ]


async def test_boots_and_presence_are_stored_alike(
    engine: AsyncEngine, direct: SqliteRegistrationWrites
) -> None:
    await registration_stored_alike(engine, direct)


# Reads a station's current connection outside the writes' transaction.
Peek = Callable[[str], Awaitable[str | None]]


def takeover_batch(p: str, seconds: float) -> PresenceBatch:
    """The station `{p}-s` connects on gateway B, at `seconds`."""
    connection = Connection(f"{p}-new", f"{p}-s", f"{p}-gwB", at(seconds))
    return PresenceBatch({f"{p}-gwB": at(seconds)}, [connection], [], {})


async def connected_on_gateway_a(writes: RegistrationWrites, p: str) -> None:
    connection = Connection(f"{p}-old", f"{p}-s", f"{p}-gwA", at(1))
    batch = PresenceBatch({}, [connection], [], {})
    assert await writes.record_presence(batch, no_takeover) == {f"{p}-s": (None, 0)}


async def no_takeover(replaced: list[Replaced]) -> None:
    raise AssertionError(f"nothing was replaced: {replaced}")


async def before_commit_runs_before_the_commit(
    engine: AsyncEngine, direct: RegistrationWrites, peek: Peek
) -> None:
    """The replaced connections are given to before_commit while the new one is not yet
    committed (a redelivery then still finds them), and stored once it returns."""
    p = new_prefix()
    await connected_on_gateway_a(direct, p)
    calls: list[tuple[list[Replaced], str | None]] = []

    async def before_commit(replaced: list[Replaced]) -> None:
        calls.append((replaced, await peek(f"{p}-s")))

    await direct.record_presence(takeover_batch(p, 2), before_commit)

    assert calls == [([Replaced(f"{p}-s", f"{p}-old", f"{p}-gwA")], f"{p}-old")]
    assert await peek(f"{p}-s") == f"{p}-new"


async def a_failing_before_commit_rolls_the_batch_back(
    engine: AsyncEngine, direct: RegistrationWrites
) -> None:
    p = new_prefix()
    await connected_on_gateway_a(direct, p)
    before = {model: await stored(engine, model, key, p) for model, key in STORED}

    async def before_commit(replaced: list[Replaced]) -> None:
        raise RuntimeError("the bus refused the takeover")

    with pytest.raises(RuntimeError, match="refused the takeover"):
        await direct.record_presence(takeover_batch(p, 2), before_commit)

    assert {model: await stored(engine, model, key, p) for model, key in STORED} == before
    # Nothing was left behind: the same batch goes through afterwards.
    replaced: list[list[Replaced]] = []
    await direct.record_presence(takeover_batch(p, 2), collect(replaced))
    assert replaced == [[Replaced(f"{p}-s", f"{p}-old", f"{p}-gwA")]]


async def nothing_stored_by(engine: AsyncEngine, p: str) -> None:
    for model, key in STORED:
        assert await stored(engine, model, key, p) == [], model.__tablename__


def _sqlite_peek(engine: AsyncEngine) -> Peek:
    """Through a connection of its own: the engine's would wait for the writes' SQLite turn."""

    async def peek(station: str) -> str | None:
        with sqlite3.connect(str(engine.url.database)) as connection:
            row = connection.execute(
                "SELECT connection_id FROM station WHERE id = ?", (station,)
            ).fetchone()
        return None if row is None else row[0]

    return peek


async def test_before_commit_runs_before_the_commit(
    engine: AsyncEngine, direct: SqliteRegistrationWrites
) -> None:
    await before_commit_runs_before_the_commit(engine, direct, _sqlite_peek(engine))


async def test_a_failing_before_commit_rolls_the_batch_back(
    engine: AsyncEngine, direct: SqliteRegistrationWrites
) -> None:
    await a_failing_before_commit_rolls_the_batch_back(engine, direct)


async def test_a_failed_boot_batch_stores_nothing(
    engine: AsyncEngine, direct: SqliteRegistrationWrites
) -> None:
    p = new_prefix()
    good = boot(f"{p}-good", "m1", 1, f"{p}-c1")
    bad = boot(f"{p}-bad", "m1", 1, f"{p}-c2")
    bad.payload["reason"] = None  # reason is NOT NULL

    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        await direct.record_boots([good, bad], POLICY)

    await nothing_stored_by(engine, p)
    assert await direct.record_boots([good], POLICY) == [BootDecision("Accepted", 300)]


async def test_a_failed_presence_batch_stores_nothing(
    engine: AsyncEngine, direct: SqliteRegistrationWrites
) -> None:
    p = new_prefix()
    good = Connection(f"{p}-c1", f"{p}-good", f"{p}-gw", at(1))
    bad = Connection(f"{p}-c2", f"{p}-bad", None, at(1))  # type: ignore[arg-type]
    batch = PresenceBatch({f"{p}-gw": at(1)}, [good, bad], [], {f"{p}-good": at(2)})

    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        await direct.record_presence(batch, no_takeover)

    await nothing_stored_by(engine, p)
