"""A measured window's CPU, per unit of work and in cores busy."""

from __future__ import annotations

import math

import pytest

from benchmarks import scenarios
from benchmarks.scenarios import CpuMeter, cpu_budget
from benchmarks.targets import Target


def test_cpu_per_unit_and_cores_busy() -> None:
    budget = cpu_budget({"gateway-1": 6.0, "postgres": 3.0, "simulator": 9.0}, 10.0, 45_000)

    assert budget["cpu_ms_per_unit"] == {
        "gateway-1": 0.133,
        "postgres": 0.067,
        "simulator": 0.2,
        "all": 0.4,
    }
    assert budget["cores_busy"] == 1.8


def test_a_process_that_could_not_be_read_or_was_not_reported_is_left_out() -> None:
    budget = cpu_budget({"api": 2.0, "simulator": math.nan, "worker-1": None}, 4.0, 1000)

    assert budget["cpu_ms_per_unit"] == {"api": 2.0, "all": 2.0}
    assert budget["cores_busy"] == 0.5


def test_no_work_and_no_time_give_no_figures() -> None:
    assert cpu_budget({"api": 1.0}, 0.0, 0) == {"cpu_ms_per_unit": {}, "cores_busy": None}


def test_a_service_process_started_during_the_window_counts_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Postgres backend for a connection opened during the window: all its CPU is the
    # window's. One alive throughout counts its growth; one gone by the end, nothing.
    running = {"postgres": [10, 11]}
    seconds = {10: 5.0, 11: 1.0, 12: 0.0}
    monkeypatch.setattr(scenarios, "SERVICES", {"postgres": "postgres"})
    monkeypatch.setattr(scenarios, "pids_named", lambda command: list(running[command]))
    monkeypatch.setattr(scenarios, "cpu_seconds", lambda pid, **_: seconds[pid])
    target = Target(
        name="t", ocpp_urls=[], api_url=None, memory_pid=0, memory_process="", counter=None
    )
    meter = CpuMeter(target)
    running["postgres"] = [10, 12]
    seconds.update({10: 7.0, 12: 0.5})

    assert meter.sample()["postgres"] == 2.5
