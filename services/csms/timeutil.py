"""UTC time helpers: OCPP date-time strings in and out."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_datetime(value: str) -> datetime:
    """Parse an OCPP (RFC 3339) date-time; one without an offset is taken as UTC."""
    if value.endswith("Z"):
        # The form stations send: Python reads the "Z" itself, as UTC.
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is UTC:
            return parsed
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_datetime(value: datetime, timespec: str = "milliseconds") -> str:
    """UTC with a `Z`; millisecond precision unless asked otherwise, as stations expect."""
    if value.tzinfo is UTC:
        # "+00:00" cut off the aware form: one call instead of three.
        return value.isoformat(timespec=timespec)[:-6] + "Z"
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def format_epoch(seconds: float) -> str:
    """A POSIX timestamp (`time.time()`) as `format_datetime` writes it."""
    return format_datetime(datetime.fromtimestamp(seconds, UTC))


class _Clock:
    """The current millisecond as OCPP text, formatted once per millisecond: under load a
    gateway stamps several messages in each one."""

    __slots__ = ("millisecond", "text")

    def __init__(self) -> None:
        self.millisecond = -1
        self.text = ""


_clock = _Clock()


def now_text() -> str:
    """`format_datetime(utcnow())`, as cheap as a clock read when called again within the
    same millisecond."""
    millisecond = time.time_ns() // 1_000_000
    clock = _clock
    if millisecond != clock.millisecond:
        clock.text = format_epoch(millisecond / 1000)
        clock.millisecond = millisecond
    return clock.text
