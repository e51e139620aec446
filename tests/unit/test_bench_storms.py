"""The boot storm's figures are the median storm's, with every storm's times beside them."""

from __future__ import annotations

from typing import Any

from benchmarks.report import _line
from benchmarks.scenarios import median_storm


def _storm(booted_s: float | None, persisted_s: float | None, *notes: str) -> dict[str, Any]:
    return {
        "figures": {
            "stations": 10000,
            "booted": 10000 if booted_s is not None else 9000,
            "time_to_all_booted_s": booted_s,
            "time_to_all_ready_s": booted_s,
            "boots_per_s": 300.0,
            "all_persisted_s": persisted_s,
        },
        "details": {"cpu_s": {"gateway-1": 20.0}, "prefix": "B1-"},
        "notes": list(notes),
    }


def test_the_median_storm_is_reported_with_every_storms_times() -> None:
    result = median_storm(
        [_storm(30.0, 31.0), _storm(None, None, "only 9000 booted"), _storm(25.0, 26.0)], 3
    )

    figures = result["figures"]
    assert (figures["time_to_all_booted_s"], figures["all_persisted_s"]) == (30.0, 31.0)
    assert figures["storms"] == 3
    assert figures["time_to_all_booted_s_each"] == [30.0, None, 25.0]
    assert figures["all_persisted_s_each"] == [31.0, None, 26.0]
    assert result["details"]["median_storm"] == 1
    assert result["details"]["prefix"] == "B1-"
    assert [s["cpu_s"] for s in result["details"]["storms"]] == [{"gateway-1": 20.0}] * 3
    assert result["notes"] == ["storm 2: only 9000 booted"]
    assert _line("boot_storm", "distributed", result)[1] == (
        "median of 3 storms (all booted: 30.0 / not all / 25.0 s)"
    )


def test_of_two_storms_the_slower_counts() -> None:
    result = median_storm([_storm(20.0, 21.0), _storm(28.0, 29.0)], 2)

    assert result["figures"]["time_to_all_booted_s"] == 28.0


def test_a_single_storm_is_reported_as_it_is_and_a_short_run_says_so() -> None:
    result = median_storm([_storm(22.0, 23.0, "3 BootNotifications were answered Pending")], 3)

    assert result["figures"]["time_to_all_booted_s"] == 22.0
    assert result["notes"] == [
        "3 BootNotifications were answered Pending",
        "1 of 3 storms: the run's time budget ran short",
    ]
    assert len(_line("boot_storm", "standalone", result)) == 1
