"""OCPP-J framing: what `parse_frame` makes of every frame, and what `encode` puts on the wire."""

from __future__ import annotations

import json

import pytest

from csms.ocpp.errors import (
    FormatViolation,
    GenericError,
    MessageTypeNotSupported,
    OcppError,
    RpcFrameworkError,
)
from csms.ocpp.frames import (
    Call,
    CallError,
    CallResult,
    Frame,
    FrameError,
    call_error_for,
    encode,
    parse_frame,
)

LONG_ID = "x" * 37


@pytest.mark.parametrize(
    "frame",
    [
        Call("c-1", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M"}}),
        Call("c-2", "Heartbeat", {}),
        CallResult("r-1", {"currentTime": "2024-01-01T00:00:00.000Z", "interval": 300}),
        CallResult("r-2", {}),
        CallError("e-1", "NotSupported", "Authorize is not supported", {"field": "idToken"}),
        CallError("e-2", "GenericError"),
    ],
    ids=repr,
)
def test_valid_frames_survive_an_encode_parse_round_trip(frame: Frame) -> None:
    assert parse_frame(encode(frame)) == frame


def test_parse_accepts_bytes_and_a_36_character_id() -> None:
    message_id = "i" * 36
    raw = f'[2, "{message_id}", "Heartbeat", {{}}]'.encode()
    assert parse_frame(raw) == Call(message_id, "Heartbeat", {})


def test_callerror_details_that_are_not_an_object_are_read_as_empty() -> None:
    assert parse_frame('[4, "e", "GenericError", "boom", null]') == CallError(
        "e", "GenericError", "boom", {}
    )


@pytest.mark.parametrize(
    ("raw", "error", "message_id", "reply"),
    [
        # Unreadable messages: the id cannot be known, "-1" stands in for it.
        ("not json", FormatViolation, "-1", True),
        ('[2, "a", "Heartbeat", {}] trailing', FormatViolation, "-1", True),
        ('{"messageTypeId": 2}', RpcFrameworkError, "-1", True),
        ('"a string"', RpcFrameworkError, "-1", True),
        ("[]", RpcFrameworkError, "-1", True),
        ("[2]", RpcFrameworkError, "-1", True),
        ('[2, 17, "Heartbeat", {}]', RpcFrameworkError, "-1", True),
        ('[2, null, "Heartbeat", {}]', RpcFrameworkError, "-1", True),
        ('[2, "", "Heartbeat", {}]', RpcFrameworkError, "-1", True),
        # An id longer than 36 characters is refused but still echoed.
        (f'[2, "{LONG_ID}", "Heartbeat", {{}}]', RpcFrameworkError, LONG_ID, True),
        # Unknown message types, whatever follows them.
        ('[5, "a", "Heartbeat", {}]', MessageTypeNotSupported, "a", True),
        ('[6, "a", {}]', MessageTypeNotSupported, "a", True),
        ('[7, "a"]', MessageTypeNotSupported, "a", True),
        ('[0, "a", "Heartbeat", {}]', MessageTypeNotSupported, "a", True),
        ("[5]", MessageTypeNotSupported, "-1", True),
        # Message types that are not integers, booleans included.
        ('["2", "a", "Heartbeat", {}]', RpcFrameworkError, "a", True),
        ('[2.0, "a", "Heartbeat", {}]', RpcFrameworkError, "a", True),
        ('[true, "a", "Heartbeat", {}]', RpcFrameworkError, "a", True),
        ('[false, "a", "Heartbeat", {}]', RpcFrameworkError, "a", True),
        ('[null, "a", "Heartbeat", {}]', RpcFrameworkError, "a", True),
        # Malformed CALLs are answered.
        ('[2, "a", "Heartbeat"]', RpcFrameworkError, "a", True),
        ('[2, "a", "Heartbeat", {}, {}]', RpcFrameworkError, "a", True),
        ('[2, "a", 7, {}]', RpcFrameworkError, "a", True),
        ('[2, "a", "", {}]', RpcFrameworkError, "a", True),
        ('[2, "a", "Heartbeat", []]', FormatViolation, "a", True),
        ('[2, "a", "Heartbeat", "{}"]', FormatViolation, "a", True),
        ('[2, "a", "Heartbeat", null]', FormatViolation, "a", True),
        # Malformed CALLRESULTs and CALLERRORs are never answered: there is no CALL to fail.
        ('[3, "a"]', RpcFrameworkError, "a", False),
        ('[3, "a", {}, {}]', RpcFrameworkError, "a", False),
        ('[3, "a", []]', RpcFrameworkError, "a", False),
        ("[3, 7, {}]", RpcFrameworkError, "-1", False),
        (f'[3, "{LONG_ID}", {{}}]', RpcFrameworkError, LONG_ID, False),
        ('[4, "a", "GenericError", "d"]', RpcFrameworkError, "a", False),
        ('[4, "a", "GenericError", "d", {}, {}]', RpcFrameworkError, "a", False),
        ('[4, "a", 1, "d", {}]', RpcFrameworkError, "a", False),
        ('[4, "a", "GenericError", null, {}]', RpcFrameworkError, "a", False),
        ('[4, null, "GenericError", "d", {}]', RpcFrameworkError, "-1", False),
        (f'[4, "{LONG_ID}", "GenericError", "d", {{}}]', RpcFrameworkError, LONG_ID, False),
    ],
)
def test_malformed_frames_raise_the_error_to_answer_with(
    raw: str, error: type[OcppError], message_id: str, reply: bool
) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(raw)
    assert type(caught.value.error) is error
    assert caught.value.message_id == message_id
    assert caught.value.reply is reply
    answer = caught.value.to_call_error()
    assert (answer.message_id, answer.error_code) == (message_id, error.code)


def test_encode_writes_compact_json_in_the_exact_callerror_shape() -> None:
    frame = CallError("m-1", "FormatViolation", "bad payload", {"field": "reason"})
    text = encode(frame)
    assert text == '[4,"m-1","FormatViolation","bad payload",{"field":"reason"}]'
    assert json.loads(text) == [4, "m-1", "FormatViolation", "bad payload", {"field": "reason"}]


def test_encode_writes_empty_callerror_description_and_details() -> None:
    assert encode(CallError("m-2", "GenericError")) == '[4,"m-2","GenericError","",{}]'


def test_encode_writes_call_and_callresult_compactly() -> None:
    assert encode(Call("m-3", "Reset", {"type": "OnIdle"})) == '[2,"m-3","Reset",{"type":"OnIdle"}]'
    assert encode(CallResult("m-4", {"status": "Accepted"})) == '[3,"m-4",{"status":"Accepted"}]'


def test_callerror_description_is_truncated_to_255_characters() -> None:
    answer = json.loads(encode(call_error_for("m-5", GenericError("é" * 300, {"k": 1}))))
    assert answer == [4, "m-5", "GenericError", "é" * 255, {"k": 1}]
