"""The CPU calibration is a positive time, and the best of its rounds."""

from __future__ import annotations

import pytest

from benchmarks import calibration


def test_the_calibration_is_the_best_of_its_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    durations = iter([0.0, 0.050, 1.0, 1.030, 2.0, 2.040])
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: next(durations))
    monkeypatch.setattr(calibration, "_work", lambda: None)

    assert calibration.cpu_calibration_ms(rounds=3) == 30.0


def test_the_work_takes_measurable_time() -> None:
    assert calibration.cpu_calibration_ms(rounds=1) > 0
