"""The scale-out scenario: the cost figures (the gateways' CPU per boot, the cores busy) and the
verdict."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.report import evaluate
from benchmarks.scenarios import Plan, StormPairs, pair_figures, storm_cost


def _storm(cpu: dict[str, float | None], booted: int, wall: float) -> dict[str, object]:
    return {"figures": {"booted": booted}, "details": {"cpu_s": cpu, "wall_s": wall}}


def test_the_gateways_cpu_per_boot_adds_every_gateway_and_cores_count_every_process() -> None:
    storm = _storm(
        {"gateway-1": 3.5, "gateway-2": 3.7, "worker-1": 1.5, "postgres": 1.3, "simulator": 6.0},
        10_000,
        8.0,
    )

    assert storm_cost(storm) == {"gateway_cpu_ms_per_boot": 0.72, "cores_busy": 2.0}


def test_a_process_that_could_not_be_read_is_left_out() -> None:
    storm = _storm(
        {"gateway-1": 9.0, "gateway-2": 0.0, "simulator": None, "rabbitmq": math.nan}, 10_000, 10.0
    )

    assert storm_cost(storm) == {"gateway_cpu_ms_per_boot": 0.9, "cores_busy": 0.9}


def test_a_storm_in_which_nothing_booted_has_no_cost_per_boot() -> None:
    assert storm_cost(_storm({"gateway-1": 1.0}, 0, 0.0)) == {
        "gateway_cpu_ms_per_boot": None,
        "cores_busy": None,
    }


def _verdict(ratio: float, cores: float | None) -> dict[str, str]:
    figures = {
        "ratio": ratio,
        "gateway_cpu_cores": cores,
        "one_gateway_all_booted_s": 25.0,
        "two_gateways_all_booted_s": 11.0,
    }
    return evaluate("scale_out", "distributed", {"figures": figures}, Plan.create(False, None))


def test_scale_out_passes_from_1_8_and_says_what_budget_the_gateways_had() -> None:
    assert _verdict(2.31, 0.35) == {
        "status": "pass",
        "reason": "ratio 2.31, each gateway held to 0.35 of a core",
    }
    assert _verdict(1.8, 0.35)["status"] == "pass"
    assert _verdict(1.79, 0.35)["status"] == "fail"


def test_without_a_budget_the_verdict_says_the_gateways_shared_the_cores() -> None:
    verdict = _verdict(1.2, None)

    assert verdict["status"] == "fail"
    assert "no CPU budget could be set" in verdict["reason"]


def test_the_ratio_at_equal_cpu_per_boot_takes_out_what_a_boot_cost_each_side() -> None:
    # One gateway: 10,000 boots in 25 s at 0.35 s of CPU a second; two: in 10 s at 0.7.
    def storm(cpu: dict[str, float | None], wall: float) -> dict[str, Any]:
        return {
            "figures": {
                "booted": 10_000,
                "boots_per_s": 10_000 / wall,
                "time_to_all_booted_s": wall,
            },
            "details": {"cpu_s": cpu, "wall_s": wall},
        }

    pairs = StormPairs(
        one=storm({"gateway-1": 8.75}, 25.0),
        two=storm({"gateway-1": 3.5, "gateway-2": 3.5}, 10.0),
        ratio_each=[2.5],
    )

    figures = pair_figures(pairs)

    assert figures["ratio"] == 2.5
    assert figures["one_gateway_gateway_cpu_ms_per_boot"] == 0.875
    assert figures["two_gateways_gateway_cpu_ms_per_boot"] == 0.7
    assert figures["ratio_at_equal_cpu_per_boot"] == 2.0
