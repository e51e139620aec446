"""The admission window: a bound on connections in progress, released or lapsing."""

from __future__ import annotations

import time

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
