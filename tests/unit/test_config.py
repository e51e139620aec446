"""Settings that cannot work together are refused at start-up, with the reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from csms.config import Settings


def test_a_gateway_timeout_shorter_than_two_beats_is_refused() -> None:
    with pytest.raises(ValidationError, match="CSMS_GATEWAY_TIMEOUT must be at least twice"):
        Settings(gateway_timeout=5, seen_flush_interval=5)


def test_a_gateway_timeout_of_two_beats_is_accepted() -> None:
    settings = Settings(gateway_timeout=10, seen_flush_interval=5)
    assert settings.gateway_timeout == 10
