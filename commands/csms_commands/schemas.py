"""API bodies and answers. Field names are camelCase, as in OCPP."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from csms.timeutil import format_datetime

Item = TypeVar("Item")


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    @field_serializer("*", when_used="json")
    def _utc(self, value: Any) -> Any:
        return format_datetime(value, "auto") if isinstance(value, datetime) else value


class Page(ApiModel, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int


class Connector(ApiModel):
    id: int
    # The last StatusNotification; None for a registered connector not reported yet.
    status: str | None
    status_at: datetime | None
    type: str | None = None


class Evse(ApiModel):
    id: int
    connectors: list[Connector]


class StationOut(ApiModel):
    id: str
    connected: bool
    last_seen_at: datetime | None
    boot_status: str | None
    registration_status: str | None
    security_profile: int
    heartbeat_interval: int | None
    last_boot_at: datetime | None
    vendor_name: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    created_at: datetime
    evses: list[Evse]


class CommandOut(ApiModel):
    id: str
    station_id: str
    action: str
    request: dict[str, Any]
    outcome: str
    response: dict[str, Any] | None
    error_code: str | None
    error_description: str | None
    open: bool
    created_at: datetime
    answered_at: datetime | None
    closed_at: datetime | None


class EventOut(ApiModel):
    """One stored eventData item; optional OCPP fields appear only when the station sent them."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    event_id: int
    timestamp: datetime
    trigger: str
    actual_value: str
    component: dict[str, Any]
    variable: dict[str, Any]
    event_notification_type: str
    cause: int | None = None
    tech_code: str | None = None
    tech_info: str | None = None
    cleared: bool | None = None
    transaction_id: str | None = None
    variable_monitoring_id: int | None = None
    generated_at: datetime
    seq_no: int
    tbc: bool
    received_at: datetime


class EventGapOut(ApiModel):
    expected_seq_no: int
    received_seq_no: int | None
    generated_at: datetime | None
    detected_at: datetime


class RegisteredStation(StationOut):
    # Present once, when the CSMS generated the station's Basic-auth password.
    password: str | None = Field(default=None, exclude_if=lambda value: value is None)
    # The station's answer to TriggerMessage(BootNotification) sent on approval, if sent.
    boot_triggered: str | None = Field(default=None, exclude_if=lambda value: value is None)


class ConnectorLayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(ge=1)
    type: str | None = Field(default=None, max_length=20, examples=["cType2", "cCCS2"])


class EvseLayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: int = Field(ge=1)
    connectors: list[ConnectorLayoutIn] = Field(min_length=1)


RegistrationStatus = Literal["Accepted", "Pending", "Rejected"]


class StationRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=48)
    securityProfile: int | None = Field(default=None, ge=0, le=3)
    password: str | None = Field(default=None, min_length=16, max_length=40)
    generatePassword: bool = False
    registrationStatus: RegistrationStatus = "Accepted"
    heartbeatInterval: int | None = Field(default=None, ge=1)
    evses: list[EvseLayoutIn] | None = None


class StationChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    registrationStatus: RegistrationStatus | None = None
    securityProfile: int | None = Field(default=None, ge=0, le=3)
    password: str | None = Field(default=None, min_length=16, max_length=40)
    generatePassword: bool = False
    heartbeatInterval: int | None = Field(default=None, ge=1)
    evses: list[EvseLayoutIn] | None = None


# Request bodies: the OCPP 2.0.1 request payloads, checked again against the official schema.


class _OcppBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CustomData(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    vendorId: str = Field(max_length=255)


class ResetRequest(_OcppBody):
    type: Literal["Immediate", "OnIdle"]
    evseId: int | None = None
    customData: CustomData | None = None


class EvseTarget(_OcppBody):
    id: int
    connectorId: int | None = None
    customData: CustomData | None = None


class ChangeAvailabilityRequest(_OcppBody):
    operationalStatus: Literal["Operative", "Inoperative"]
    evse: EvseTarget | None = None
    customData: CustomData | None = None


class TriggerMessageRequest(_OcppBody):
    requestedMessage: Literal[
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargingStationCertificate",
        "SignV2GCertificate",
        "StatusNotification",
        "TransactionEvent",
        "SignCombinedCertificate",
        "PublishFirmwareStatusNotification",
    ]
    evse: EvseTarget | None = None
    customData: CustomData | None = None


class StationResponse(BaseModel):
    """The station's own response payload, passed through as it came."""

    model_config = ConfigDict(extra="allow")
    status: Literal["Accepted", "Rejected", "Scheduled", "NotImplemented"]
    statusInfo: dict[str, Any] | None = None


class CallErrorOut(BaseModel):
    detail: str
    errorCode: str
    errorDescription: str
    errorDetails: dict[str, Any]
