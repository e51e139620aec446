"""OCPP date-time strings in and out, always in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from csms import timeutil
from csms.timeutil import format_datetime, now_text, parse_datetime, utcnow


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T14:30:00+02:30", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T07:00:00-05:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T00:30:00+01:00", datetime(2024, 4, 30, 23, 30, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123Z", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456+00:00", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_returns_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "isoformat"),
        ("yesterday", "isoformat"),
        ("2024-13-01T00:00:00Z", "month"),
        ("2024-05-01T25:00:00Z", "hour"),
    ],
)
def test_parse_rejects_what_is_not_a_date_time(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_datetime(text)


def test_format_is_utc_with_z_and_milliseconds_by_default() -> None:
    value = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(value) == "2024-05-01T12:00:00.123Z"


def test_format_writes_zero_milliseconds() -> None:
    assert format_datetime(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00.000Z"


def test_format_timespec_can_be_chosen() -> None:
    value = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert format_datetime(value, "seconds") == "2024-05-01T12:00:00Z"
    assert format_datetime(value, "microseconds") == "2024-05-01T12:00:00.123456Z"


def test_format_and_parse_round_trip_at_millisecond_precision() -> None:
    value = datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse_datetime(format_datetime(value)) == value


def test_utcnow_is_aware_utc_and_formats_with_z() -> None:
    now = utcnow()
    assert now.tzinfo is UTC
    assert abs(datetime.now(UTC) - now) < timedelta(seconds=5)
    assert format_datetime(now).endswith("Z")


def test_format_gives_the_same_text_on_the_utc_fast_path() -> None:
    value = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    offset = value.astimezone(timezone(timedelta(hours=-3)))
    for timespec in ("seconds", "milliseconds", "microseconds"):
        assert format_datetime(value, timespec) == format_datetime(offset, timespec)


def test_now_text_is_the_current_millisecond_formatted() -> None:
    before = format_datetime(utcnow())
    first, second = now_text(), now_text()
    after = format_datetime(utcnow())
    assert before <= first <= second <= after
    assert parse_datetime(first).microsecond % 1000 == 0


@pytest.mark.parametrize("millisecond", [0, 1, 999, 1_000, 1_717_243_200_123, 4_102_444_799_999])
def test_now_text_formats_a_millisecond_as_format_datetime_does(
    monkeypatch: pytest.MonkeyPatch, millisecond: int
) -> None:
    monkeypatch.setattr(timeutil.time, "time_ns", lambda: millisecond * 1_000_000 + 999_999)
    monkeypatch.setattr(timeutil, "_clock", timeutil._Clock())
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millisecond)
    assert now_text() == format_datetime(moment)


def test_format_epoch_is_format_datetime_of_that_moment() -> None:
    assert timeutil.format_epoch(1_717_243_200.1239) == "2024-06-01T12:00:00.123Z"
    assert timeutil.format_epoch(0) == "1970-01-01T00:00:00.000Z"
