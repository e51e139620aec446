"""OCPP-J framing (Part 4, sections 4.1-4.2): parse and encode CALL, CALLRESULT, CALLERROR."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson

from csms.ocpp.errors import (
    ErrorCode,
    FormatViolation,
    MessageTypeNotSupported,
    OcppError,
    RpcFrameworkError,
)

# Used as messageId when the id of a corrupt message cannot be read (Part 4, section 4.2.3).
UNREADABLE_MESSAGE_ID = "-1"
MAX_MESSAGE_ID_LENGTH = 36


class MessageType(IntEnum):
    CALL = 2
    CALL_RESULT = 3
    CALL_ERROR = 4


@dataclass(frozen=True, slots=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    message_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)


Frame = Call | CallResult | CallError


class FrameError(Exception):
    """A frame that cannot be processed; `reply` is the CALLERROR to send back, if any."""

    def __init__(self, message_id: str, error: OcppError, reply: bool = True) -> None:
        super().__init__(f"{error.code}: {error.description}")
        self.message_id = message_id
        self.error = error
        self.reply = reply

    def to_call_error(self) -> CallError:
        return CallError(
            self.message_id, self.error.code, self.error.description, self.error.details
        )


def parse_frame(raw: str | bytes) -> Frame:
    """Decode one WebSocket text message into a frame, or raise FrameError."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError(
            UNREADABLE_MESSAGE_ID, FormatViolation("message is not valid JSON")
        ) from None
    if not isinstance(message, list) or not message:
        raise FrameError(
            UNREADABLE_MESSAGE_ID, RpcFrameworkError("message is not a non-empty JSON array")
        )
    message_type = message[0]
    message_id = _readable_id(message[1] if len(message) > 1 else None)
    if not isinstance(message_type, int) or isinstance(message_type, bool):
        raise FrameError(message_id, RpcFrameworkError("messageTypeId is not an integer"))
    if message_type not in MessageType._value2member_map_:
        # Part 4, section 4.4: ignore the payload, answer MessageTypeNotSupported.
        raise FrameError(
            message_id, MessageTypeNotSupported(f"messageTypeId {message_type} is not supported")
        )
    # A malformed CALLRESULT or CALLERROR is never answered: there is no CALL to fail.
    is_call = message_type == MessageType.CALL
    if message_id == UNREADABLE_MESSAGE_ID:
        raise FrameError(
            message_id, RpcFrameworkError("messageId is missing or not a string"), reply=is_call
        )
    if len(message[1]) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(
            message_id,
            RpcFrameworkError(f"messageId is longer than {MAX_MESSAGE_ID_LENGTH} characters"),
            reply=is_call,
        )
    if message_type == MessageType.CALL:
        return _parse_call(message_id, message)
    if message_type == MessageType.CALL_RESULT:
        return _parse_call_result(message_id, message)
    return _parse_call_error(message_id, message)


def _readable_id(value: object) -> str:
    return value if isinstance(value, str) and value else UNREADABLE_MESSAGE_ID


def _parse_call(message_id: str, message: list[Any]) -> Call:
    if len(message) != 4:
        raise FrameError(message_id, RpcFrameworkError("CALL must have 4 elements"))
    action, payload = message[2], message[3]
    if not isinstance(action, str) or not action:
        raise FrameError(message_id, RpcFrameworkError("action is not a string"))
    if not isinstance(payload, dict):
        raise FrameError(message_id, FormatViolation("payload is not a JSON object"))
    return Call(message_id, action, payload)


def _parse_call_result(message_id: str, message: list[Any]) -> CallResult:
    if len(message) != 3 or not isinstance(message[2], dict):
        raise FrameError(
            message_id, RpcFrameworkError("CALLRESULT must be [3, id, {payload}]"), reply=False
        )
    return CallResult(message_id, message[2])


def _parse_call_error(message_id: str, message: list[Any]) -> CallError:
    if len(message) != 5:
        raise FrameError(
            message_id, RpcFrameworkError("CALLERROR must have 5 elements"), reply=False
        )
    _, _, code, description, details = message
    if not isinstance(code, str) or not isinstance(description, str):
        raise FrameError(
            message_id, RpcFrameworkError("CALLERROR code and description are strings"), reply=False
        )
    return CallError(message_id, code, description, details if isinstance(details, dict) else {})


def encode(frame: Frame) -> str:
    """Encode a frame as the JSON text sent over the WebSocket."""
    if isinstance(frame, Call):
        body: list[Any] = [MessageType.CALL, frame.message_id, frame.action, frame.payload]
    elif isinstance(frame, CallResult):
        body = [MessageType.CALL_RESULT, frame.message_id, frame.payload]
    else:
        body = [
            MessageType.CALL_ERROR,
            frame.message_id,
            frame.error_code,
            frame.error_description,
            frame.error_details,
        ]
    return orjson.dumps(body).decode()


def call_error_for(message_id: str, error: OcppError) -> CallError:
    return CallError(message_id, error.code, error.description, error.details)


def is_known_error_code(code: str) -> bool:
    return code in ErrorCode._value2member_map_
