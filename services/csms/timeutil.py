"""UTC time helpers: OCPP date-time strings in and out."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_datetime(value: str) -> datetime:
    """Parse an OCPP (RFC 3339) date-time; one without an offset is taken as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_datetime(value: datetime, timespec: str = "milliseconds") -> str:
    """UTC with a `Z`; millisecond precision unless asked otherwise, as stations expect."""
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
