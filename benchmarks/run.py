"""Load benchmarks of the CSMS: distributed stack, standalone `csms run` and a baseline built
on the `ocpp` package, in one run so that every ratio is measured under the same conditions.

    python -m benchmarks.run [--quick] [--stations N] [--only scenario,...] [--output PATH]

Scenarios: boot_storm, steady_ingest, commands, idle_memory, scale_out. The JSON report goes
to benchmarks/results/<UTC timestamp>.json (and to --output); a table is printed at the end.
Exit status 0 when every scenario ran to completion (goals met or not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import secrets
import shutil
import signal
import string
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import report as reporting
from benchmarks.calibration import cpu_calibration_ms
from benchmarks.loadgen import REPO_ROOT
from benchmarks.scenarios import SCENARIOS, Bench, Plan, settle
from benchmarks.targets import (
    Target,
    baseline_target,
    distributed_target,
    log_findings,
    standalone_target,
)

log = logging.getLogger("benchmarks")

RESULTS = REPO_ROOT / "benchmarks" / "results"
# Whole-run budgets (seconds); scenarios that would not fit are skipped and say so.
BUDGET_FULL = 25 * 60
BUDGET_QUICK = 420
# Roughly what each scenario needs at least on one target, in seconds; a scenario that no
# longer fits is skipped, and the steady steps stop early to leave the later targets theirs.
MIN_SECONDS = {
    "idle_memory": 30,
    "boot_storm": 60,
    "steady_ingest": 30,
    "commands": 50,
    "scale_out": 240,
}
MIN_SECONDS_QUICK = dict.fromkeys(MIN_SECONDS, 8)

TargetFactory = Callable[[Path], AbstractAsyncContextManager[Target]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, a few seconds each (< 3 min)"
    )
    parser.add_argument(
        "--stations",
        type=int,
        help="stations of the boot storms (default 10000, quick 100); the other fleets "
        "keep their sizes unless larger than N",
    )
    parser.add_argument(
        "--only",
        type=lambda value: [part.strip() for part in value.split(",") if part.strip()],
        help=f"comma-separated scenarios out of {', '.join(reporting.SCENARIO_ORDER)}",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' and simulators' logs (their directory is in the report)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - set(reporting.SCENARIO_ORDER)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.stations is not None and args.stations < 1:
        parser.error("--stations must be at least 1")
    return args


def raise_open_file_limit() -> int:
    """One socket per simulated station, in the simulator and in the system under test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.asynccontextmanager
async def _scale_out_target(workdir: Path) -> AsyncIterator[Target]:
    async with distributed_target(workdir, gateways=2, name="distributed") as target:
        yield target


# (report name of the target, how to start it, scenarios in the order they run on it).
# idle_memory comes first on a fresh process: its "before" must not include earlier fleets.
GROUPS: list[tuple[str, TargetFactory, tuple[str, ...]]] = [
    ("baseline", baseline_target, ("idle_memory", "boot_storm", "steady_ingest")),
    (
        "distributed",
        distributed_target,
        ("idle_memory", "boot_storm", "steady_ingest", "commands"),
    ),
    ("standalone", standalone_target, ("idle_memory", "boot_storm", "steady_ingest", "commands")),
    ("distributed", _scale_out_target, ("scale_out",)),
]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # SIGTERM stops the run like Ctrl-C: every process is stopped, vhost and database dropped.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    plan = Plan.create(args.quick, args.stations)
    selected = set(args.only or reporting.SCENARIO_ORDER)
    began = time.monotonic()
    started_at = datetime.now(UTC)
    budget = BUDGET_QUICK if plan.quick else BUDGET_FULL
    workdir = Path(tempfile.mkdtemp(prefix="csms-bench-"))
    tag = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(4))
    bench = Bench(plan=plan, workdir=workdir, tag=tag, deadline=began + budget)
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCENARIOS}
    targets: dict[str, Any] = {}
    open_files = raise_open_file_limit()
    machine = reporting.machine() | {"open_file_limit": open_files}
    calibration = {"start": cpu_calibration_ms()}
    git_at_start = reporting.git()
    try:
        minimum = MIN_SECONDS_QUICK if plan.quick else MIN_SECONDS
        for index, (name, factory, scenarios) in enumerate(GROUPS):
            wanted = [s for s in scenarios if s in selected]
            if not wanted:
                continue
            bench.reserve = sum(
                minimum[s] for _, _, later in GROUPS[index + 1 :] for s in later if s in selected
            )
            key = name if "scale_out" not in wanted else f"{name} (2 gateways)"
            targets[key] = await _run_group(bench, name, factory, wanted, results, index)
    finally:
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    finished_at = datetime.now(UTC)
    calibration["end"] = cpu_calibration_ms()
    machine["cpu_calibration_ms"] = calibration
    scenarios: dict[str, Any] = {}
    for scenario in reporting.SCENARIO_ORDER:
        if scenario not in selected:
            continue
        by_target = {
            t: results[scenario][t] for t in reporting.TARGETS[scenario] if t in results[scenario]
        }
        for target, result in by_target.items():
            result["goal"] = reporting.evaluate(scenario, target, result, plan)
        scenarios[scenario] = {
            "goal": reporting.GOALS[scenario],
            "parameters": reporting.parameters(scenario, plan),
            "results": by_target,
            "comparison": reporting.comparison(scenario, by_target),
        }
    return {
        "benchmark": "csms",
        "mode": "quick" if plan.quick else "full",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "budget_s": budget,
        "plan": asdict(plan),
        "machine": machine,
        "git": git_at_start,
        "git_at_end": reporting.git(),
        "targets": targets,
        "logs": str(workdir) if args.keep_logs else None,
        "notes": reporting.NOTES,
        "scenarios": scenarios,
    }


async def _run_group(
    bench: Bench,
    name: str,
    factory: TargetFactory,
    scenarios: list[str],
    results: dict[str, dict[str, dict[str, Any]]],
    index: int,
) -> dict[str, Any]:
    """Start one target, run its scenarios, stop it; never raises for a scenario's failure."""
    info: dict[str, Any] = {}
    minimum = MIN_SECONDS_QUICK if bench.plan.quick else MIN_SECONDS
    needed = min(minimum[s] for s in scenarios)
    if bench.remaining() < needed:
        for scenario in scenarios:
            results[scenario][name] = {"skipped": "time budget", "figures": {}}
        return {"skipped": "time budget"}
    log.info("starting %s", name)
    # The code each target runs is what is checked out when its processes start.
    code = reporting.git()
    info["code"] = {"commit": code["commit"], "uncommitted_changes": code["changed_files"]}
    starting = time.monotonic()
    target: Target | None = None
    try:
        async with factory(bench.workdir / f"{index}-{name}") as target:
            info["startup_s"] = round(time.monotonic() - starting, 1)
            info["description"] = target.description
            for scenario in scenarios:
                result = await _run_scenario(bench, scenario, target)
                results[scenario][name] = result
                result["settle_after"] = settled = await settle(target)
                notes = result.setdefault("notes", [])
                if settled["connections_left"]:
                    notes.append(
                        f"{settled['connections_left']} connections still held by the gateway "
                        f"{settled['seconds']} s after every station had closed its socket"
                    )
                if settled["queued_messages_left"]:
                    notes.append(
                        f"{settled['queued_messages_left']} messages still queued in the broker "
                        f"{settled['seconds']} s after the scenario"
                    )
            info["logs"] = log_findings(target.log_paths)
    except Exception as error:
        log.exception("%s failed", name)
        info["error"] = f"{type(error).__name__}: {error}"
        for scenario in scenarios:
            results[scenario].setdefault(name, {"error": info["error"], "figures": {}})
        if target is not None:
            info.setdefault("logs", log_findings(target.log_paths))
    return info


async def _run_scenario(bench: Bench, scenario: str, target: Target) -> dict[str, Any]:
    minimum = MIN_SECONDS_QUICK if bench.plan.quick else MIN_SECONDS
    if bench.remaining() < minimum[scenario]:
        log.info("%s on %s skipped: time budget", scenario, target.name)
        return {"skipped": "time budget", "figures": {}}
    log.info("%s on %s", scenario, target.name)
    began = time.monotonic()
    try:
        result = await SCENARIOS[scenario](bench, target)
    except Exception as error:
        log.exception("%s on %s failed", scenario, target.name)
        result = {"error": f"{type(error).__name__}: {error}", "figures": {}}
    result["wall_s"] = round(time.monotonic() - began, 1)
    dead = target.dead_processes()
    if dead:
        result["error"] = "; ".join(dead)
    log.info("%s on %s: %s", scenario, target.name, json.dumps(result.get("figures")))
    return result


def write(report: dict[str, Any], output: Path | None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}.json"
    text = json.dumps(report, indent=2, default=str) + "\n"
    path.write_text(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    return path


def failed(report: dict[str, Any]) -> bool:
    return any(
        "error" in result
        for entry in report["scenarios"].values()
        for result in entry["results"].values()
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        report = asyncio.run(run(args))
    else:
        report = uvloop.run(run(args))
    path = write(report, args.output)
    print(reporting.table(report))
    print(f"\nreport: {path}" + (f" and {args.output}" if args.output else ""))
    return 1 if failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
