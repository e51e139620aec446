"""Sending a CSMS-initiated call to a station and recording what came of it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from csms.bus import topology
from csms.bus.base import Bus
from csms.bus.envelopes import CommandReply, CommandRequest
from csms.bus.message import BusError, BusMessage, RequestTimeout, Unroutable
from csms.db.command_journal import CommandJournal
from csms.db.commands import CommandOutcome, NewCommand, Outcome
from csms.timeutil import utcnow

# The API waits this much longer than the gateway, so the gateway's own verdict arrives first.
_REPLY_GRACE = 1.0


class StationNotFound(Exception):
    """The station was never seen."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    outcome: Outcome
    payload: dict[str, Any] = field(default_factory=dict)
    error_code: str = ""
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)


async def send_command(
    journal: CommandJournal,
    bus: Bus,
    *,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    timeout: float,
) -> CommandResult:
    """Record the command, route it to the gateway holding the station, wait for the answer."""
    command = NewCommand(
        id=str(uuid.uuid4()),
        station_id=station_id,
        action=action,
        request=payload,
        created_at=utcnow(),
    )
    route = await journal.create(command)
    if route is None:
        raise StationNotFound(station_id)
    if route.gateway_id is None:
        result = CommandResult(Outcome.NOT_CONNECTED)
        await _record(journal, command, result)
        return result
    request: CommandRequest = {
        "commandId": command.id,
        "stationId": station_id,
        "action": action,
        "payload": payload,
        "deadline": time.time() + timeout,
    }
    message = BusMessage(body=dict(request), type=topology.COMMAND, ttl=timeout)
    try:
        # Mandatory: a gateway gone since (its inbox with it) returns the command at once.
        body = await bus.request(
            topology.COMMANDS_EXCHANGE,
            topology.gateway_queue(route.gateway_id),
            message,
            timeout=timeout + _REPLY_GRACE,
            mandatory=True,
        )
        result = _result(cast(CommandReply, body))
    except Unroutable:
        result = CommandResult(Outcome.NOT_CONNECTED)
    except RequestTimeout:
        result = CommandResult(Outcome.TIMEOUT)
    except BusError:
        # Not known to be sent: the caller may retry; recorded as not delivered.
        result = CommandResult(Outcome.NOT_CONNECTED, error_description="bus unavailable")
        await _record(journal, command, result)
        raise
    await _record(journal, command, result)
    return result


def _result(reply: CommandReply) -> CommandResult:
    outcome = reply["outcome"]
    if outcome == "answered":
        return CommandResult(Outcome.ANSWERED, payload=reply.get("payload", {}))
    if outcome == "callError":
        return CommandResult(
            Outcome.CALL_ERROR,
            error_code=reply.get("errorCode", ""),
            error_description=reply.get("errorDescription", ""),
            error_details=reply.get("errorDetails", {}),
        )
    if outcome == "notConnected":
        return CommandResult(Outcome.NOT_CONNECTED)
    if outcome in (Outcome.NOT_ALLOWED, Outcome.BUSY):
        return CommandResult(Outcome(outcome), error_description=reply.get("reason", ""))
    # "timeout", or "disconnected": the station went away before answering.
    return CommandResult(Outcome.TIMEOUT, error_description=outcome)


async def _record(journal: CommandJournal, command: NewCommand, result: CommandResult) -> None:
    outcome = CommandOutcome(
        outcome=result.outcome,
        at=utcnow(),
        response=result.payload if result.outcome == Outcome.ANSWERED else None,
        error_code=result.error_code or None,
        error_description=result.error_description or None,
    )
    await journal.record(command, outcome)
