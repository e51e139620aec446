"""Datetimes as the SQLite writers store them: naive UTC text in SQLAlchemy's format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from csms.db.sqlite_writer import utc_from_text, utc_text

AT = datetime(2026, 11, 29, 20, 11, 2, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (AT, "2026-11-29 20:11:02.123000"),
        (AT.replace(microsecond=0), "2026-11-29 20:11:02.000000"),
        (AT.astimezone(timezone(timedelta(hours=2))), "2026-11-29 20:11:02.123000"),
        (AT.astimezone(timezone(timedelta(hours=-5, minutes=-30))), "2026-11-29 20:11:02.123000"),
    ],
)
def test_any_offset_is_stored_as_utc_with_microseconds(value: datetime, text: str) -> None:
    assert utc_text(value) == text
    assert utc_from_text(text) == AT.replace(microsecond=value.microsecond)


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_text(AT.replace(tzinfo=None))
