"""`python -m benchmarks.run --quick` runs every scenario against every target and reports
numbers. No timing is asserted: the machine running the tests is not a benchmark machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]

# Scenario -> target -> figures that must be numbers.
EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {
    "boot_storm": {
        "distributed": ("time_to_all_booted_s", "boots_per_s", "all_persisted_s"),
        "standalone": ("time_to_all_booted_s", "boots_per_s", "all_persisted_s"),
        "baseline": ("time_to_all_booted_s", "boots_per_s"),
    },
    "steady_ingest": {
        "distributed": ("max_sent_per_s", "p50_ms", "p99_ms", "max_persisted_per_s"),
        "standalone": ("max_sent_per_s", "p50_ms", "p99_ms", "max_persisted_per_s"),
        "baseline": ("max_sent_per_s", "p50_ms", "p99_ms"),
    },
    "commands": {
        "distributed": ("achieved_rate", "p50_ms", "p99_ms", "non_200", "cores_busy"),
        "standalone": ("achieved_rate", "p50_ms", "p99_ms", "non_200", "cores_busy"),
    },
    "idle_memory": {
        "distributed": ("rss_before_kb", "rss_after_kb", "kb_per_station"),
        "standalone": ("rss_before_kb", "rss_after_kb", "kb_per_station"),
        "baseline": ("rss_before_kb", "rss_after_kb", "kb_per_station"),
    },
    "scale_out": {
        "distributed": (
            "one_gateway_boots_per_s",
            "two_gateways_boots_per_s",
            "ratio",
            "ratio_at_equal_cpu_per_boot",
            "one_gateway_gateway_cpu_ms_per_boot",
            "two_gateways_gateway_cpu_ms_per_boot",
            "one_gateway_cores_busy",
            "two_gateways_cores_busy",
        ),
    },
}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.timeout(660)
def test_quick_benchmark_reports_every_scenario_and_target(tmp_path: Path) -> None:
    output = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report = json.loads(output.read_text())

    assert report["mode"] == "quick"
    assert report["machine"]["cpu_count"] >= 1
    calibration = report["machine"]["cpu_calibration_ms"]
    assert calibration["start"] > 0
    assert calibration["end"] > 0
    assert report["git"]["commit"]
    assert set(report["scenarios"]) == set(EXPECTED)
    for scenario, targets in EXPECTED.items():
        entry = report["scenarios"][scenario]
        assert entry["goal"], scenario
        assert entry["parameters"], scenario
        assert set(entry["results"]) == set(targets), scenario
        for target, keys in targets.items():
            result = entry["results"][target]
            assert "error" not in result, (scenario, target, result)
            figures = result["figures"]
            for key in keys:
                assert is_number(figures.get(key)), (scenario, target, key, figures)
            assert result["goal"]["status"] in {"not evaluated", "not applicable"}
    # The steady steps carry their own numbers.
    for target in ("distributed", "standalone", "baseline"):
        steps = report["scenarios"]["steady_ingest"]["results"][target]["details"]["steps"]
        assert steps
        assert all(is_number(step["sent_per_s"]) for step in steps)
        assert all(is_number(step["cores_busy"]) for step in steps)
        assert all(is_number(step["cpu_ms_per_unit"]["all"]) for step in steps)
    # Commands carry their latency second by second.
    for target in ("distributed", "standalone"):
        seconds = report["scenarios"]["commands"]["results"][target]["details"]["by_second"]
        assert seconds
        assert (
            sum(second["requests"] for second in seconds)
            == (report["scenarios"]["commands"]["results"][target]["figures"]["requests"])
        )
    # Scale-out: one ratio per pair of storms, with each gateway held to its CPU budget (this
    # machine allows the quota) and without.
    scale_out = report["scenarios"]["scale_out"]["results"]["distributed"]
    figures = scale_out["figures"]
    assert figures["gateway_cpu_cores"] == report["plan"]["gateway_cpu_cores"], scale_out["notes"]
    assert scale_out["details"]["cpu_quota"]["applied"]
    for prefix in ("", "uncapped_"):
        assert len(figures[f"{prefix}ratio_each"]) == report["plan"]["boot_storms"]
        assert all(is_number(ratio) for ratio in figures[f"{prefix}ratio_each"])
        assert is_number(figures[f"{prefix}ratio"])
    assert "boot_storm" in done.stdout  # the table is printed
    assert "CPU calibration" in done.stdout
