"""Payload validation against the official OCPP 2.0.1 schemas, and which actions are handled."""

from __future__ import annotations

from typing import Any

import pytest

from csms.ocpp import validation
from csms.ocpp.actions import StationAction, check_station_action
from csms.ocpp.errors import (
    FormatViolation,
    NotImplementedAction,
    NotSupported,
    OccurrenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)
from csms.ocpp.validation import (
    compile_validators,
    known_actions,
    validate_request,
    validate_response,
)

NOW = "2024-05-01T12:00:00.000Z"


def boot(**station: Any) -> dict[str, Any]:
    return {
        "reason": "PowerUp",
        "chargingStation": {"model": "Wallbox-1", "vendorName": "Acme", **station},
    }


def status(**changes: Any) -> dict[str, Any]:
    return {
        "timestamp": NOW,
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
        **changes,
    }


def notify_event(**changes: Any) -> dict[str, Any]:
    event = {
        "eventId": 7,
        "timestamp": NOW,
        "trigger": "Alerting",
        "actualValue": "Faulted",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "AvailabilityState"},
    }
    return {"generatedAt": NOW, "seqNo": 0, "tbc": False, "eventData": [event], **changes}


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("BootNotification", boot()),
        ("BootNotification", boot(serialNumber="SN-1", firmwareVersion="1.2.3")),
        ("Heartbeat", {}),
        ("StatusNotification", status()),
        ("StatusNotification", status(timestamp="2024-05-01T14:00:00+02:00")),
        ("NotifyEvent", notify_event()),
    ],
)
def test_valid_requests_are_accepted(action: str, payload: dict[str, Any]) -> None:
    validate_request(action, payload)


def test_custom_data_may_carry_extra_properties() -> None:
    payload = boot(customData={"vendorId": "com.acme", "slot": 3, "tags": ["a"]})
    payload["customData"] = {"vendorId": "com.acme", "anything": {"nested": True}}
    validate_request("BootNotification", payload)


def test_custom_data_still_needs_its_vendor_id() -> None:
    with pytest.raises(OccurrenceConstraintViolation):
        validate_request("Heartbeat", {"customData": {"slot": 3}})


@pytest.mark.parametrize(
    ("action", "payload", "error", "field"),
    [
        ("BootNotification", {"reason": "PowerUp"}, OccurrenceConstraintViolation, None),
        (
            "BootNotification",
            {"reason": "PowerUp", "chargingStation": {"model": "M"}},
            OccurrenceConstraintViolation,
            "chargingStation",
        ),
        ("NotifyEvent", notify_event(eventData=[]), OccurrenceConstraintViolation, "eventData"),
        ("StatusNotification", status(evseId="1"), TypeConstraintViolation, "evseId"),
        ("StatusNotification", status(connectorId=1.5), TypeConstraintViolation, "connectorId"),
        ("NotifyEvent", notify_event(seqNo=True), TypeConstraintViolation, "seqNo"),
        (
            "BootNotification",
            boot(model="M" * 21),
            TypeConstraintViolation,
            "chargingStation.model",
        ),
        ("StatusNotification", status(timestamp="yesterday"), TypeConstraintViolation, "timestamp"),
        (
            "StatusNotification",
            status(timestamp="2024-05-01 12:00"),
            TypeConstraintViolation,
            "timestamp",
        ),
        (
            "StatusNotification",
            status(connectorStatus="Charging"),
            PropertyConstraintViolation,
            "connectorStatus",
        ),
        ("BootNotification", {**boot(), "reason": "Bored"}, PropertyConstraintViolation, "reason"),
        ("Heartbeat", {"uptime": 5}, FormatViolation, None),
        ("BootNotification", boot(colour="red"), FormatViolation, "chargingStation"),
    ],
)
def test_schema_violations_raise_the_matching_ocpp_error(
    action: str, payload: dict[str, Any], error: type[OcppError], field: str | None
) -> None:
    with pytest.raises(OcppError) as caught:
        validate_request(action, payload)
    assert type(caught.value) is error
    assert caught.value.description
    assert caught.value.details.get("field") == field


def test_model_of_exactly_20_characters_is_accepted() -> None:
    validate_request("BootNotification", boot(model="M" * 20))


def test_responses_are_validated_against_the_response_schema() -> None:
    validate_response(
        "BootNotification", {"currentTime": NOW, "interval": 300, "status": "Accepted"}
    )
    validate_response("Reset", {"status": "Scheduled"})
    with pytest.raises(TypeConstraintViolation):
        validate_response(
            "BootNotification", {"currentTime": NOW, "interval": "300", "status": "Accepted"}
        )
    with pytest.raises(PropertyConstraintViolation):
        validate_response("Reset", {"status": "Maybe"})
    with pytest.raises(OccurrenceConstraintViolation):
        validate_response("Heartbeat", {})


def test_request_and_response_schemas_are_not_mixed_up() -> None:
    with pytest.raises(OccurrenceConstraintViolation):
        validate_request("Reset", {"status": "Accepted"})
    with pytest.raises(OccurrenceConstraintViolation):
        validate_response("Reset", {"type": "Immediate"})


def test_known_actions_are_the_ocpp_201_actions() -> None:
    actions = known_actions()
    assert {
        "Authorize",
        "Reset",
        "BootNotification",
        "NotifyEvent",
        "ChangeAvailability",
    } <= actions
    assert "FlyToTheMoon" not in actions
    assert not any(name.endswith(("Request", "Response")) for name in actions)


@pytest.mark.parametrize("action", ["FlyToTheMoon", "", "bootnotification", "Heartbeat2"])
def test_unknown_actions_are_not_implemented(action: str) -> None:
    with pytest.raises(NotImplementedAction):
        check_station_action(action)


@pytest.mark.parametrize("action", ["Authorize", "Reset", "TransactionEvent", "MeterValues"])
def test_known_but_unhandled_actions_are_not_supported(action: str) -> None:
    with pytest.raises(NotSupported):
        check_station_action(action)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("BootNotification", StationAction.BOOT_NOTIFICATION),
        ("Heartbeat", StationAction.HEARTBEAT),
        ("StatusNotification", StationAction.STATUS_NOTIFICATION),
        ("NotifyEvent", StationAction.NOTIFY_EVENT),
    ],
)
def test_handled_actions_are_returned(action: str, expected: StationAction) -> None:
    assert check_station_action(action) is expected


def test_validators_compiled_at_start_up_are_the_ones_validation_uses() -> None:
    validation._validator.cache_clear()
    compile_validators(requests=["Reset", "Heartbeat"], responses=["Reset"])
    compiled = validation._validator.cache_info()

    validate_request("Reset", {"type": "Immediate"})
    validate_request("Heartbeat", {})
    validate_response("Reset", {"status": "Accepted"})

    after = validation._validator.cache_info()
    assert compiled.currsize == 3
    assert (after.misses, after.hits - compiled.hits) == (compiled.misses, 3)
