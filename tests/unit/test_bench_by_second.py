"""The commands scenario's latency, second by second of the run."""

from __future__ import annotations

from benchmarks.scenarios import by_second


def test_requests_are_grouped_by_the_second_they_were_due_in() -> None:
    results = [
        (100.0, 0.002, "200"),
        (100.5, 0.004, "200"),
        (101.2, 0.250, "200"),
        (101.9, 0.003, "504"),
        (103.0, 0.001, "200"),
    ]

    assert by_second(results) == [
        {"second": 0, "requests": 2, "ok": 2, "p50_ms": 2.0, "p99_ms": 4.0, "max_ms": 4.0},
        {"second": 1, "requests": 2, "ok": 1, "p50_ms": 3.0, "p99_ms": 250.0, "max_ms": 250.0},
        {"second": 3, "requests": 1, "ok": 1, "p50_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0},
    ]


def test_no_requests_give_no_seconds() -> None:
    assert by_second([]) == []
