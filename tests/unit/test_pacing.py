"""The admission window: a bound on connections in progress, released or lapsing."""

from __future__ import annotations

import time

import pytest

from csms_gateway import pacing
from csms_gateway.pacing import AdmissionWindow


def test_refuses_past_the_limit_and_admits_again_after_a_release() -> None:
    window = AdmissionWindow(limit=2, expiry=60)
    first, second = window.try_admit(), window.try_admit()
    assert first is not None
    assert second is not None
    assert window.try_admit() is None
    window.release(first)
    assert window.try_admit() is not None
    assert window.in_progress() == 2


def test_abandoned_admissions_lapse() -> None:
    window = AdmissionWindow(limit=1, expiry=0.01)
    assert window.try_admit() is not None
    time.sleep(0.02)
    assert window.try_admit() is not None


def test_releasing_twice_or_nothing_is_harmless() -> None:
    window = AdmissionWindow(limit=1, expiry=60)
    token = window.try_admit()
    window.release(token)
    window.release(token)
    window.release(None)
    assert window.in_progress() == 0


def test_lapsed_admissions_are_dropped_oldest_first_while_newer_stay() -> None:
    window = AdmissionWindow(limit=3, expiry=0.05)
    old = window.try_admit()
    time.sleep(0.06)
    newer = window.try_admit()
    assert newer is not None
    # The old one lapsed and was dropped; the newer one still counts.
    assert window.in_progress() == 1
    window.release(old)
    assert window.in_progress() == 1
    assert window.try_admit() is not None
    assert window.try_admit() is not None
    assert window.try_admit() is None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _clocked_window(
    monkeypatch: pytest.MonkeyPatch, limit: int, **kwargs: int
) -> tuple[AdmissionWindow, _Clock]:
    clock = _Clock()
    monkeypatch.setattr(pacing, "time", clock)
    return AdmissionWindow(limit=limit, expiry=60, **kwargs), clock


def test_refused_connections_get_turns_spaced_at_the_rate_admissions_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, clock = _clocked_window(monkeypatch, limit=10, min_retry_after=2)
    tokens = [window.try_admit() for _ in range(10)]
    for token in tokens:  # 10 completions over one second: 10 per second
        clock.now += 0.1
        window.release(token)
    turns = [window.retry_after() for _ in range(30)]
    # Spaced for twice the measured rate (20 per second): the first comes back after the
    # minimum, the 30th 1.45 s later, in order.
    assert turns[0] == 2
    assert turns == sorted(turns)
    assert turns[-1] == 4


def test_turns_start_from_an_assumed_rate_and_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    window, _ = _clocked_window(monkeypatch, limit=1, min_retry_after=1, max_retry_after=30)
    assert window.try_admit() is not None
    turns = [window.retry_after() for _ in range(10000)]
    assert turns[0] == 1
    assert turns[999] == 6  # 200 per second assumed until an admission completes
    assert turns[-1] == 30


def test_turns_never_fall_below_the_minimum_after_a_quiet_spell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, clock = _clocked_window(monkeypatch, limit=1, min_retry_after=2)
    window.retry_after()
    clock.now += 3600
    assert window.retry_after() == 2


def test_a_gateway_that_never_refuses_keeps_only_recent_completions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, clock = _clocked_window(monkeypatch, limit=10)
    for _ in range(10_000):  # an hour of admissions, one every 0.36 s
        window.release(window.try_admit())
        clock.now += 0.36
    # Only the last 10 s of completions are remembered (the rate's window).
    assert len(window._completed) <= 10 / 0.36 + 1


def test_the_bound_grows_to_the_admissions_completed_in_the_target_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window, clock = _clocked_window(monkeypatch, limit=10)
    for _ in range(20):  # 20 completions over two seconds: 10 per second
        window.release(window.try_admit())
        clock.now += 0.1
    admitted = [window.try_admit() for _ in range(150)]
    # 10 per second for the 10 s target wait: 100 in progress, not the limit's 10.
    assert sum(token is not None for token in admitted) == 100
    # Once the completions are older than the rate's window, the limit alone holds again.
    clock.now += 30
    window.release(admitted[0])
    assert window.in_progress() == 99
    assert window.try_admit() is None
