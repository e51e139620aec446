"""The record of every CSMS-initiated command and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnClause, bindparam, exists, func, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from csms.db.boots import boot_after
from csms.db.models import (
    ERROR_CODE_LENGTH,
    ERROR_DESCRIPTION_LENGTH,
    Command,
    Station,
    table_of,
)


class Outcome(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    CALL_ERROR = "callError"
    TIMEOUT = "timeout"
    NOT_CONNECTED = "notConnected"
    # The gateway refused to send it: the station's boot is not Accepted (Pending allows a few).
    NOT_ALLOWED = "notAllowed"
    # Too many commands already queued for the station.
    BUSY = "busy"


# Answers after which a Reset is still under way until the station boots again.
_RESET_UNDER_WAY = ("Accepted", "Scheduled")


@dataclass(frozen=True, slots=True)
class NewCommand:
    id: str
    station_id: str
    action: str
    request: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    outcome: Outcome
    at: datetime
    response: dict[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None


# A command and what came of it, as the journal writes them together.
Answered = tuple[NewCommand, CommandOutcome]


# The gateway holding the station's current connection, if it is connected. (Spelled out: the
# SQLite compiler drops table names in RETURNING, subqueries included.)
_HOLDER: ColumnClause[str] = literal_column(
    "(SELECT c.gateway_id FROM station s JOIN station_connection c ON c.id = s.connection_id"
    " WHERE s.id = command.station_id AND s.connected)"
)


def _insert_if_station_known() -> Any:
    columns = table_of(Command).c
    names = ("id", "station_id", "action", "request", "outcome", "open", "created_at")
    return (
        insert(Command)
        .from_select(
            list(names),
            select(*(bindparam(name, type_=columns[name].type) for name in names)).where(
                exists().where(Station.id == bindparam("station_id"))
            ),
        )
        .returning(_HOLDER)
    )


# Built once: a command is two statements on the API's hot path.
_INSERT_IF_STATION_KNOWN = _insert_if_station_known()


@dataclass(frozen=True, slots=True)
class CommandRoute:
    """Where a recorded command goes: the gateway holding the station (None: not connected)."""

    gateway_id: str | None


async def create_command(connection: AsyncConnection, command: NewCommand) -> CommandRoute | None:
    """Record a command before it is sent and find the gateway holding the station, in one
    statement; None if the station was never seen (nothing is recorded then)."""
    result = await connection.execute(
        _INSERT_IF_STATION_KNOWN,
        {
            "id": command.id,
            "station_id": command.station_id,
            "action": command.action,
            "request": command.request,
            "outcome": Outcome.PENDING.value,
            "open": False,
            "created_at": command.created_at,
        },
    )
    row = result.first()
    return None if row is None else CommandRoute(row[0])


def awaits_boot(command: NewCommand, result: CommandOutcome) -> bool:
    """A whole-station Reset the station acknowledged is under way until it boots again. (A
    Reset of one EVSE reboots no station: nothing to wait for.)"""
    return (
        command.action == "Reset"
        and "evseId" not in command.request
        and result.outcome == Outcome.ANSWERED
        and result.response is not None
        and result.response.get("status") in _RESET_UNDER_WAY
    )


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """What a command's row holds of its outcome."""

    outcome: str
    response: dict[str, Any] | None
    error_code: str | None
    error_description: str | None
    # When the station answered, if it did (with a CALLRESULT or a CALLERROR).
    answered_at: datetime | None


def stored_outcome(result: CommandOutcome) -> StoredOutcome:
    """The outcome as stored: the station's error code and description cut to their columns."""
    answered = result.outcome in (Outcome.ANSWERED, Outcome.CALL_ERROR)
    return StoredOutcome(
        outcome=result.outcome.value,
        response=result.response,
        error_code=_cut(result.error_code, ERROR_CODE_LENGTH),
        error_description=_cut(result.error_description, ERROR_DESCRIPTION_LENGTH),
        answered_at=result.at if answered else None,
    )


def _cut(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


def _record_outcome() -> Any:
    columns = table_of(Command).c
    names = (
        "outcome",
        "response",
        "error_code",
        "error_description",
        "answered_at",
        "open",
        "closed_at",
    )
    return (
        update(table_of(Command))
        .where(columns.id == bindparam("command_id"))
        .values({name: bindparam(name, type_=columns[name].type) for name in names})
    )


# Built once, like _INSERT_IF_STATION_KNOWN.
_RECORD_OUTCOME = _record_outcome()


async def record_outcome(
    connection: AsyncConnection, command: NewCommand, result: CommandOutcome
) -> None:
    """Store what came of a command: one statement, unless it awaits a boot (see awaits_boot),
    which must run in a transaction."""
    stored = stored_outcome(result)
    values: dict[str, Any] = {
        "command_id": command.id,
        "outcome": stored.outcome,
        "response": stored.response,
        "error_code": stored.error_code,
        "error_description": stored.error_description,
        "answered_at": stored.answered_at,
        # What the row was created with, unless the command awaits a boot.
        "open": False,
        "closed_at": None,
    }
    if awaits_boot(command, result):
        # Locked like the boot consumer does, so a boot racing this answer is seen by one of them.
        await connection.execute(
            select(Station.id).where(Station.id == command.station_id).with_for_update()
        )
        booted_at = await boot_after(
            connection, station_id=command.station_id, since=command.created_at
        )
        values |= {"open": booted_at is None, "closed_at": booted_at}
    await connection.execute(_RECORD_OUTCOME, values)


async def list_commands(
    session: AsyncSession, *, station_id: str, limit: int, offset: int
) -> tuple[list[Command], int]:
    """A station's commands, newest first, and how many there are."""
    where = Command.station_id == station_id
    total = await session.scalar(select(func.count()).select_from(Command).where(where)) or 0
    rows = await session.scalars(
        select(Command)
        .where(where)
        .order_by(Command.created_at.desc(), Command.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all()), total
