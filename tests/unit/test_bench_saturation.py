"""A steady-ingest step that sent less than asked says whether the simulator may be the cause."""

from __future__ import annotations

from benchmarks.scenarios import saturation


def test_a_step_that_sent_what_was_asked_is_not_saturated() -> None:
    assert saturation(4_900.0, 5_000.0, 0.99) == {}


def test_slow_answers_saturate_a_step_when_the_simulator_had_cpu_to_spare() -> None:
    flags = saturation(3_300.0, 5_000.0, 0.72)
    assert flags["saturated"] is True
    assert "simulator_bound" not in flags
    assert "answers came too slowly" in flags["note"]


def test_a_simulator_near_a_full_core_is_named_as_the_possible_limit() -> None:
    flags = saturation(3_300.0, 5_000.0, 0.93)
    assert flags["saturated"] is True
    assert flags["simulator_bound"] is True
    assert "93% of a core" in flags["note"]


def test_an_unmeasured_simulator_is_not_blamed() -> None:
    assert "simulator_bound" not in saturation(3_300.0, 5_000.0, None)
