"""The bus message: a JSON body plus the AMQP properties the CSMS relies on."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

Body = dict[str, Any]


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class BusMessage:
    body: Body
    type: str = ""
    # Unique per message, assigned by the publisher; consumers use it to recognise redeliveries.
    message_id: str = field(default_factory=new_id)
    correlation_id: str | None = None
    reply_to: str | None = None
    # Seconds the message may wait in a queue before it is dropped (commands only).
    ttl: float | None = None
    redelivered: bool = False

    def encode_body(self) -> bytes:
        return orjson.dumps(self.body)

    @staticmethod
    def decode_body(raw: bytes) -> Body:
        body = orjson.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("bus message body is not a JSON object")
        return body


# A consumer's handler; a returned body is sent to the message's reply_to after it succeeded.
Handler = Callable[[BusMessage], Awaitable[Body | None]]
# One outcome per message of a batch: a reply body, None, or the exception it failed with (that
# message alone is then redelivered).
Outcome = Body | None | Exception
BatchHandler = Callable[[list[BusMessage]], Awaitable[list[Outcome]]]


def one_by_one(handler: Handler) -> BatchHandler:
    """Run a per-message handler over a batch, each message failing on its own."""

    async def run(messages: list[BusMessage]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for message in messages:
            try:
                outcomes.append(await handler(message))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    return run


class BusError(Exception):
    """The bus could not take a message (not confirmed, connection lost)."""


class Unroutable(BusError):
    """A mandatory message matched no queue: for a command, no gateway holds the station."""


class RequestTimeout(BusError):
    """No reply arrived in time."""
