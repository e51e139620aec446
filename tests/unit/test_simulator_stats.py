"""Simulator statistics: percentiles, the bounded latency reservoir, and the report shapes."""

from __future__ import annotations

import json

import pytest

from csms.simulator.stats import Reservoir, SimulationStats, percentile


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (1, 1.0), (50, 50.0), (95, 95.0), (99, 99.0), (99.5, 100.0), (100, 100.0)],
)
def test_nearest_rank_percentile(q: float, expected: float) -> None:
    assert percentile([float(v) for v in range(1, 101)], q) == expected


def test_percentile_of_few_and_no_values() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0, 2.0], 51) == 2.0


def test_reservoir_keeps_everything_up_to_its_capacity() -> None:
    reservoir = Reservoir(capacity=10, seed=1)
    for value in range(1, 11):
        reservoir.add(value / 1000)
    summary = reservoir.summary(scale=1000)
    assert len(reservoir) == 10
    assert summary == {"count": 10, "mean": 5.5, "p50": 5.0, "p95": 10.0, "p99": 10.0, "max": 10.0}


def test_reservoir_is_bounded_but_count_mean_and_max_are_exact() -> None:
    reservoir = Reservoir(capacity=1000, seed=2)
    for value in range(100_000):
        reservoir.add(float(value))
    assert len(reservoir) == 1000
    summary = reservoir.summary()
    assert summary["count"] == 100_000
    assert summary["max"] == 99_999.0
    assert summary["mean"] == pytest.approx(49_999.5)
    # A uniform sample: its median is near the true one.
    assert 45_000 < summary["p50"] < 55_000
    assert summary["p50"] <= summary["p95"] <= summary["p99"] <= summary["max"]


def test_empty_reservoir_summary() -> None:
    assert Reservoir(5).summary() == {
        "count": 0,
        "mean": 0.0,
        "p50": 0.0,
        "p95": 0.0,
        "p99": 0.0,
        "max": 0.0,
    }


def test_reservoir_needs_room() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Reservoir(0)


def test_milestones_are_timed_once_every_station_got_there() -> None:
    stats = SimulationStats(stations=2)
    stats.station_connected(first_time=True)
    stats.station_booted(first_time=True)
    stats.station_ready()
    assert stats.all_connected_after is None
    assert not stats.all_booted
    stats.station_connected(first_time=True)
    stats.station_connected(first_time=False)
    stats.station_booted(first_time=True)
    stats.station_booted(first_time=False)
    stats.station_ready()
    assert stats.all_connected_after is not None
    assert stats.all_booted
    assert stats.all_ready
    assert (stats.connected, stats.connected_once, stats.reconnects) == (3, 2, 1)
    assert (stats.booted_once, stats.accepted) == (2, 3)


def test_summary_is_json_with_latencies_in_milliseconds() -> None:
    stats = SimulationStats(stations=1, reservoir=50)
    stats.sent = 3
    stats.answered("BootNotification", 0.010, None)
    stats.answered("Heartbeat", 0.002, None)
    stats.answered("Heartbeat", 0.004, "InternalError")
    stats.error("handshake HTTP 401")
    summary = json.loads(json.dumps(stats.summary()))
    assert set(stats.snapshot()) <= set(summary)
    assert {
        "all_booted",
        "time_to_all_connected_s",
        "time_to_all_booted_s",
        "time_to_all_ready_s",
        "sent_per_s",
        "latency_ms",
        "latency_by_action_ms",
        "errors",
    } <= set(summary)
    assert (summary["results"], summary["call_errors"]) == (2, 1)
    assert summary["latency_ms"]["count"] == 3
    assert summary["latency_ms"]["max"] == 10.0
    assert summary["latency_by_action_ms"]["Heartbeat"]["p50"] == 2.0
    assert summary["errors"] == {"CALLERROR Heartbeat InternalError": 1, "handshake HTTP 401": 1}
    assert summary["time_to_all_booted_s"] is None
    assert summary["all_booted"] is False
