"""Bodies of the messages the gateway publishes and the workers and API consume.

Field names are camelCase, as in OCPP. Each builder has a matching reader on the other side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict, cast


class StationMessage(TypedDict):
    """A station-initiated CALL, forwarded by the gateway (routing key `ocpp.<Action>`)."""

    stationId: str
    connectionId: str
    gatewayId: str
    ocppMessageId: str
    action: str
    payload: dict[str, Any]
    receivedAt: str


class Batch(TypedDict):
    """Messages of one routing key from one gateway, published as one bus message (ADR 0009).
    A request batch is answered with one `BatchReply`."""

    messages: list[dict[str, Any]]


class BatchReply(TypedDict):
    """One reply per message of a request batch, in order; a message that failed gets
    `{"error": reason}` and its sender a CALLERROR (the station sends it again)."""

    replies: list[dict[str, Any]]


def pack_batch(messages: Sequence[Mapping[str, Any]]) -> Batch:
    return {"messages": cast(list[dict[str, Any]], list(messages))}


def unpack_batch(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages in a bus message body: a batch, or a single one."""
    if "messages" in body:
        return cast(Batch, body)["messages"]
    return [body]


def is_batch(body: dict[str, Any]) -> bool:
    return "messages" in body


class Connected(TypedDict):
    stationId: str
    connectionId: str
    gatewayId: str
    connectedAt: str


class Disconnected(TypedDict):
    stationId: str
    connectionId: str
    gatewayId: str
    disconnectedAt: str
    lastSeenAt: NotRequired[str]


class Seen(TypedDict):
    """A gateway's periodic beat, with the stations that sent traffic since the last one."""

    gatewayId: str
    beatAt: str
    seen: dict[str, str]


class BootReply(TypedDict):
    status: str
    interval: int


class ConnectedReply(TypedDict):
    # The answer the station's last BootNotification got; None if it never booted.
    bootStatus: str | None
    # The security profile the station is registered for (0 if unregistered).
    securityProfile: NotRequired[int]


class CommandRequest(TypedDict):
    """A CSMS-initiated call for the gateway holding the station (routing key = station id)."""

    commandId: str
    stationId: str
    action: str
    payload: dict[str, Any]
    # Unix time after which the command must not be sent any more.
    deadline: float


class Takeover(TypedDict):
    """To the gateway holding a station's connection that a newer one on another gateway
    replaced: that socket must close (ADR 0010)."""

    stationId: str
    connectionId: str


class CredentialsReply(TypedDict):
    registered: bool
    securityProfile: int
    passwordHash: str | None
    registrationStatus: str | None


class RegistryChanged(TypedDict):
    """An operator changed or removed a station's registration."""

    stationId: str
    registrationStatus: str | None
    removed: bool


class CommandReply(TypedDict):
    # answered | callError | timeout | disconnected | notConnected | notAllowed | busy
    outcome: str
    payload: NotRequired[dict[str, Any]]
    errorCode: NotRequired[str]
    errorDescription: NotRequired[str]
    errorDetails: NotRequired[dict[str, Any]]
    reason: NotRequired[str]
