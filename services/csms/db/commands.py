"""The record of every CSMS-initiated command and its outcome."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from csms.db.boots import boot_after
from csms.db.models import Command, Station


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


async def create_command(
    session: AsyncSession,
    *,
    command_id: str,
    station_id: str,
    action: str,
    request: dict[str, Any],
    created_at: datetime,
) -> Command:
    """Record a command before it is sent."""
    command = Command(
        id=command_id,
        station_id=station_id,
        action=action,
        request=request,
        outcome=Outcome.PENDING,
        open=False,
        created_at=created_at,
    )
    session.add(command)
    return command


async def record_outcome(
    session: AsyncSession,
    *,
    command: Command,
    outcome: Outcome,
    at: datetime,
    response: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_description: str | None = None,
) -> None:
    """Store what came of a command; an acknowledged Reset stays open until the next boot."""
    command.outcome = outcome
    command.response = response
    command.error_code = error_code
    command.error_description = error_description
    if outcome in (Outcome.ANSWERED, Outcome.CALL_ERROR):
        command.answered_at = at
    # A Reset of one EVSE (evseId) reboots no station: nothing to wait for.
    under_way = (
        command.action == "Reset"
        and "evseId" not in command.request
        and outcome == Outcome.ANSWERED
        and response is not None
        and response.get("status") in _RESET_UNDER_WAY
    )
    if not under_way:
        return
    # Locked like the boot consumer does, so a boot racing this answer is seen by one of them.
    await session.execute(
        select(Station.id).where(Station.id == command.station_id).with_for_update()
    )
    booted_at = await boot_after(session, station_id=command.station_id, since=command.created_at)
    command.open = booted_at is None
    command.closed_at = booted_at


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
