"""Tables of the CSMS. Names are singular snake_case, datetimes end in `_at` and are UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from csms.db.types import BigId, Json, UtcDateTime

IDENTITY_LENGTH = 48
# A station's CALLERROR is stored cut to these lengths (OCPP allows 255 for the description, but
# a station may send more).
ERROR_CODE_LENGTH = 40
ERROR_DESCRIPTION_LENGTH = 255

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: Json}


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, for bulk statements that bypass the ORM."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Station(Base):
    """A charging station identity: its registration, current boot data and presence."""

    __tablename__ = "station"

    id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH), primary_key=True)
    # The operator's decision (Accepted/Pending/Rejected); None: never registered, the
    # unknown-station policy decides.
    registration_status: Mapped[str | None] = mapped_column(String(16))
    # OCPP security profile the station must connect with (0: none, 1: Basic, 2: TLS+Basic,
    # 3: mutual TLS); it may never connect with a lower one.
    security_profile: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Salted slow hash (argon2id) of the Basic-auth password; never the password itself.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    registered_at: Mapped[datetime | None]
    # The status the CSMS last answered a BootNotification with; None: never booted.
    boot_status: Mapped[str | None] = mapped_column(String(16))
    heartbeat_interval: Mapped[int | None] = mapped_column(Integer)
    vendor_name: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(20))
    serial_number: Mapped[str | None] = mapped_column(String(25))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    modem_iccid: Mapped[str | None] = mapped_column(String(20))
    modem_imsi: Mapped[str | None] = mapped_column(String(20))
    last_boot_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    # Presence, derived from station_connection: the newest connection and whether it is open.
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    connection_id: Mapped[str | None] = mapped_column(String(36))
    connected_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class StationConnector(Base):
    """A connector of the station's registered layout, with its type (e.g. cType2, cCCS2)."""

    __tablename__ = "station_connector"

    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_type: Mapped[str | None] = mapped_column(String(20))


class ApiToken(Base):
    """A bearer token for the operator API; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "read": GET routes only; "write": everything.
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class StationConnection(Base):
    """One WebSocket connection of a station, from accept to close."""

    __tablename__ = "station_connection"
    __table_args__ = (Index(None, "station_id", "connected_at"), Index(None, "gateway_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH))
    gateway_id: Mapped[str] = mapped_column(String(100))
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]


class Gateway(Base):
    """A gateway process and when it last proved alive (its stations go offline if it dies)."""

    __tablename__ = "gateway"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_beat_at: Mapped[datetime]


class BootNotification(Base):
    """Every BootNotification received, with the CSMS's answer."""

    __tablename__ = "boot_notification"
    __table_args__ = (
        UniqueConstraint("station_id", "connection_id", "ocpp_message_id"),
        Index(None, "station_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH))
    connection_id: Mapped[str] = mapped_column(String(36))
    ocpp_message_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(20))
    vendor_name: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(20))
    serial_number: Mapped[str | None] = mapped_column(String(25))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    modem_iccid: Mapped[str | None] = mapped_column(String(20))
    modem_imsi: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    interval: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime]


class ConnectorStatus(Base):
    """The current status of one connector: the newest by the station's own timestamp."""

    __tablename__ = "connector_status"

    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StatusNotification(Base):
    """Every StatusNotification received: the connector status history."""

    __tablename__ = "status_notification"
    __table_args__ = (
        UniqueConstraint("station_id", "evse_id", "connector_id", "status_at", "status"),
        Index(None, "station_id", "status_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH))
    evse_id: Mapped[int] = mapped_column(Integer)
    connector_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime]
    received_at: Mapped[datetime]


class EventData(Base):
    """One eventData item of a NotifyEvent, with the message's generatedAt/seqNo/tbc."""

    __tablename__ = "event_data"
    __table_args__ = (
        UniqueConstraint("station_id", "ocpp_message_id", "generated_at", "seq_no", "item_index"),
        Index(None, "station_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH))
    ocpp_message_id: Mapped[str] = mapped_column(String(36))
    generated_at: Mapped[datetime]
    seq_no: Mapped[int] = mapped_column(Integer)
    tbc: Mapped[bool] = mapped_column(Boolean)
    item_index: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime]
    trigger: Mapped[str] = mapped_column(String(16))
    cause: Mapped[int | None] = mapped_column(Integer)
    actual_value: Mapped[str] = mapped_column(Text)
    tech_code: Mapped[str | None] = mapped_column(String(50))
    tech_info: Mapped[str | None] = mapped_column(String(500))
    cleared: Mapped[bool | None] = mapped_column(Boolean)
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    variable_monitoring_id: Mapped[int | None] = mapped_column(Integer)
    event_notification_type: Mapped[str] = mapped_column(String(32))
    component: Mapped[dict[str, Any]]
    variable: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class EventSequence(Base):
    """Where a station's NotifyEvent report stands: the seqNo expected next."""

    __tablename__ = "event_sequence"

    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH), primary_key=True)
    expected_seq_no: Mapped[int] = mapped_column(Integer)
    # True while the last part said tbc (to be continued).
    report_open: Mapped[bool] = mapped_column(Boolean)
    last_generated_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventGap(Base):
    """A NotifyEvent part that never arrived: a jump in seqNo or a report that never finished."""

    __tablename__ = "event_gap"
    __table_args__ = (Index(None, "station_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH))
    expected_seq_no: Mapped[int] = mapped_column(Integer)
    # None: the report was left unfinished and nothing followed within the report timeout.
    received_seq_no: Mapped[int | None] = mapped_column(Integer)
    generated_at: Mapped[datetime | None]
    detected_at: Mapped[datetime]


class Command(Base):
    """A CSMS-initiated call sent on an operator's request, and what came of it."""

    __tablename__ = "command"
    __table_args__ = (Index(None, "station_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    station_id: Mapped[str] = mapped_column(String(IDENTITY_LENGTH))
    action: Mapped[str] = mapped_column(String(40))
    request: Mapped[dict[str, Any]]
    # pending, answered, callError, timeout, notConnected
    outcome: Mapped[str] = mapped_column(String(16))
    response: Mapped[dict[str, Any] | None]
    error_code: Mapped[str | None] = mapped_column(String(ERROR_CODE_LENGTH))
    error_description: Mapped[str | None] = mapped_column(String(ERROR_DESCRIPTION_LENGTH))
    # True while the command's effect is still awaited (a Reset until the station boots again).
    open: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
