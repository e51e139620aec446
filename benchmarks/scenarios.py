"""The five scenarios. Each takes a running target and returns its result:

    {"figures": {name: number | None}, "details": {...}, "notes": [str, ...]}

Figures are what the report compares and judges; details are everything else worth keeping
(simulator counters, per-step tables, CPU time per process, log findings).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import cpu_quota
from benchmarks.http_client import HttpError, KeepAlivePool
from benchmarks.loadgen import LoadGenerator, LoadGeneratorError
from benchmarks.memory import cpu_seconds, pids_named, rss_kb
from benchmarks.targets import CONNECTOR_STATUS, INGEST_TABLES, Target

log = logging.getLogger("benchmarks")

# Services shared by every target (their CPU is shown beside the target's own).
SERVICES = {"rabbitmq": "beam.smp", "postgres": "postgres"}
# More stations than this connect from several loopback addresses (one port range each).
MANY_SOCKETS = 5000
SOURCE_ADDRESSES = tuple(f"127.0.0.{number}" for number in range(1, 9))


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one benchmark run."""

    quick: bool
    boot_stations: int
    steady_stations: int
    steady_steps: tuple[int, ...]  # total messages per second, per step
    steady_step_s: float
    steady_warmup_s: float
    command_stations: int
    command_rate: float
    command_duration_s: float
    memory_stations: int
    memory_idle_s: float
    scale_stations: int
    # Boot storms per target; the figures are the median storm's.
    boot_storms: int = 1
    # Each gateway's CPU budget in the scale-out storms, in cores: two budgets and what the
    # rest of the stack needs for twice one gateway's boots (about 1.4 times a gateway's CPU
    # per boot) fit in 2 cores, with some to spare.
    gateway_cpu_cores: float = 0.35
    connect_rate: float = 2000.0
    # Seconds after the last station started that the simulator waits for all to boot.
    boot_timeout_s: float = 45.0
    # Seconds after the simulation ended that the harness keeps polling for persistence.
    persist_grace_s: float = 20.0
    drain_max_s: float = 20.0

    @classmethod
    def create(cls, quick: bool, stations: int | None) -> Plan:
        if quick:
            plan = cls(
                quick=True,
                boot_stations=100,
                steady_stations=50,
                steady_steps=(100,),
                steady_step_s=3.0,
                steady_warmup_s=0.5,
                command_stations=20,
                command_rate=20.0,
                command_duration_s=2.0,
                memory_stations=100,
                memory_idle_s=2.0,
                scale_stations=100,
                boot_timeout_s=30.0,
                persist_grace_s=15.0,
                drain_max_s=10.0,
            )
        else:
            plan = cls(
                quick=False,
                boot_stations=10000,
                steady_stations=1000,
                # Steps above the goal's 5000: a step offered at exactly 5000 measures 5000 give
                # or take a few, so it cannot show that 5000 is met.
                steady_steps=(1000, 2500, 5000, 5500, 6000, 7500),
                steady_step_s=15.0,
                steady_warmup_s=3.0,
                command_stations=500,
                command_rate=500.0,
                command_duration_s=10.0,
                memory_stations=5000,
                memory_idle_s=5.0,
                scale_stations=10000,
                boot_storms=3,
            )
        if stations is not None:
            # N sets the boot storms; the smaller fleets never exceed it.
            plan = cls(
                **(
                    plan.__dict__
                    | {
                        "boot_stations": stations,
                        "scale_stations": stations,
                        "steady_stations": min(plan.steady_stations, stations),
                        "command_stations": min(plan.command_stations, stations),
                        "memory_stations": min(plan.memory_stations, stations),
                    }
                )
            )
        return plan


@dataclass
class Bench:
    """What every scenario needs: the plan, a scratch directory, the clock and the budget."""

    plan: Plan
    workdir: Path
    tag: str
    deadline: float
    # Seconds of the budget kept for the targets still to come.
    reserve: float = 0.0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def prefix(self, code: str) -> str:
        """A station id prefix no other run or scenario uses (ids stay <= 48 characters)."""
        return f"{self.tag}{code}{next(self._numbers)}-"

    def remaining(self) -> float:
        return self.deadline - self.reserve - time.monotonic()

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


def source_addresses(stations: int) -> list[str]:
    return list(SOURCE_ADDRESSES) if stations > MANY_SOCKETS else []


def fleet(
    bench: Bench,
    urls: list[str],
    stations: int,
    prefix: str,
    *,
    duration: float = 0.0,
    message_rate: float = 0.0,
) -> dict[str, Any]:
    """SimulationConfig fields for a fleet of `stations` with two single-connector EVSEs."""
    return {
        "url": ",".join(urls),
        "stations": stations,
        "id_prefix": prefix,
        "evses": 2,
        "connectors": 1,
        "connect_rate": bench.plan.connect_rate,
        "duration": duration,
        "message_rate": message_rate,
        "source_addresses": source_addresses(stations),
        "boot_timeout": bench.plan.boot_timeout_s,
    }


def standing_fleet(
    bench: Bench,
    target: Target,
    stations: int,
    prefix: str,
    *,
    serve_s: float,
    message_rate: float = 0.0,
) -> LoadGenerator:
    """A simulator for a fleet on the target's first gateway that stays connected for `serve_s`
    seconds beyond the time the fleet may take to boot."""
    config = fleet(
        bench,
        target.ocpp_urls[:1],
        stations,
        prefix,
        duration=serve_s + _boot_wait(bench, stations),
        message_rate=message_rate,
    )
    return LoadGenerator(config, bench.log_path(f"sim-{prefix}"), prefix)


def _ready(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda snapshot: snapshot.get("ready", 0) >= count


def _boot_wait(bench: Bench, stations: int) -> float:
    """Seconds to wait for a whole fleet to be ready: starting it plus the boot timeout."""
    return stations / bench.plan.connect_rate + bench.plan.boot_timeout_s + 5


def sim_counters(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "stations",
        "booted",
        "ready",
        "sent",
        "results",
        "call_errors",
        "timeouts",
        "pending",
        "rejected",
        "connect_failures",
        "disconnects",
        "reconnects",
        "resets",
        "in_flight_at_stop",
        "sent_per_s",
        "cpu_s",
    )
    counters = {key: summary.get(key) for key in keys}
    counters["errors"] = summary.get("errors", {})
    return counters


def problems(summary: dict[str, Any]) -> int:
    """Everything the stations saw go wrong."""
    keys = ("call_errors", "timeouts", "connect_failures", "disconnects")
    return sum(int(summary.get(key) or 0) for key in keys)


class CpuMeter:
    """CPU seconds each process of the target (and the simulator, given its pid) used over a
    scenario."""

    def __init__(self, target: Target, simulator_pid: int | None = None) -> None:
        self._pids = {name: popen.pid for name, popen in target.processes.items()}
        if simulator_pid is not None:
            self._pids["simulator"] = simulator_pid
        # A process's own children count as its (the standalone SQLite writer).
        self._start = {name: _cpu(pid, with_children=True) for name, pid in self._pids.items()}
        # The shared services: RabbitMQ's VM and the Postgres processes, those alive at the
        # start and those started meanwhile (a backend for a connection opened during the
        # window), which count whole.
        self._service_start = {
            name: {pid: _cpu(pid) for pid in pids_named(command)}
            for name, command in SERVICES.items()
        }
        self._began = time.monotonic()
        self._harness = time.process_time()

    def sample(self) -> dict[str, float]:
        """CPU seconds per process since the start, so far (call while they still run)."""
        used = {
            name: round(_cpu(pid, with_children=True) - self._start[name], 2)
            for name, pid in self._pids.items()
        }
        for name, started in self._service_start.items():
            deltas = [_cpu(pid) - started.get(pid, 0.0) for pid in pids_named(SERVICES[name])]
            used[name] = round(sum(d for d in deltas if not math.isnan(d)), 2)
        used["harness"] = round(time.process_time() - self._harness, 2)
        return used

    def wall(self) -> float:
        return round(time.monotonic() - self._began, 2)


def _cpu(pid: int, *, with_children: bool = False) -> float:
    try:
        return cpu_seconds(pid, with_children=with_children)
    except (OSError, IndexError, ValueError):
        return math.nan


def cpu_budget(cpu: dict[str, float | None], seconds: float, units: int) -> dict[str, Any]:
    """What a measured window cost: CPU per unit of work (a message, a command) for each
    process and for all of them, in ms, and the cores they kept busy on average. Set against
    the machine's cores, it says whether a step ran out of CPU rather than of anything else."""
    # NaN: a process that could not be read; None: a figure not reported (the simulator's).
    measured = {
        name: used
        for name, used in cpu.items()
        if isinstance(used, int | float) and not math.isnan(used)
    }
    total = sum(measured.values())
    per_unit: dict[str, float] = {}
    if units > 0:
        per_unit = {name: round(used * 1000 / units, 3) for name, used in measured.items()}
        per_unit["all"] = round(total * 1000 / units, 3)
    return {
        "cpu_ms_per_unit": per_unit,
        "cores_busy": round(total / seconds, 2) if seconds > 0 else None,
    }


async def poll_until(
    probe: Callable[[], Awaitable[int]],
    done: Callable[[int], bool],
    deadline: float,
    interval: float = 0.25,
) -> tuple[int, float | None]:
    """Probe until `done(value)`; return the last value and the monotonic time it held."""
    value = 0
    while True:
        value = await probe()
        if done(value):
            return value, time.monotonic()
        if time.monotonic() >= deadline:
            return value, None
        await asyncio.sleep(interval)


# 1. boot_storm


async def boot_storm(bench: Bench, target: Target) -> dict[str, Any]:
    """`plan.boot_storms` storms, one after the other on the same target: one storm's time
    varies by a quarter or more on a shared 2-core machine, so the figures are the median
    storm's, with every storm's times beside them."""
    plan = bench.plan
    storms: list[dict[str, Any]] = []
    while len(storms) < plan.boot_storms:
        if storms:
            if bench.remaining() < _boot_wait(bench, plan.boot_stations) + plan.persist_grace_s:
                break
            await settle(target)
        storms.append(await run_boot_storm(bench, target, target.ocpp_urls[:1], plan.boot_stations))
    return median_storm(storms, plan.boot_storms)


def median_storm(storms: list[dict[str, Any]], planned: int) -> dict[str, Any]:
    """The median of the storms by time to all booted (one that did not boot all is the
    slowest; of an even number, the slower middle one), with each storm's times."""
    ranked = sorted(range(len(storms)), key=lambda i: _storm_time(storms[i]))
    chosen = ranked[len(ranked) // 2]
    median = storms[chosen]
    figures = median["figures"] | {
        "storms": len(storms),
        "time_to_all_booted_s_each": [s["figures"]["time_to_all_booted_s"] for s in storms],
    }
    if "all_persisted_s" in median["figures"]:
        figures["all_persisted_s_each"] = [s["figures"].get("all_persisted_s") for s in storms]
    notes = [
        f"storm {number}: {note}" if len(storms) > 1 else note
        for number, storm in enumerate(storms, 1)
        for note in storm["notes"]
    ]
    if len(storms) < planned:
        notes.append(f"{len(storms)} of {planned} storms: the run's time budget ran short")
    return {
        "figures": figures,
        "details": median["details"]
        | {
            "median_storm": chosen + 1,
            "storms": [
                {"figures": s["figures"], "cpu_s": s["details"]["cpu_s"], "notes": s["notes"]}
                for s in storms
            ],
        },
        "notes": notes,
    }


def _storm_time(storm: dict[str, Any]) -> float:
    booted = storm["figures"]["time_to_all_booted_s"]
    return float("inf") if booted is None else float(booted)


async def run_boot_storm(
    bench: Bench, target: Target, urls: list[str], stations: int, code: str = "B"
) -> dict[str, Any]:
    prefix = bench.prefix(code)
    generator = LoadGenerator(
        fleet(bench, urls, stations, prefix), bench.log_path(f"sim-{prefix}"), prefix
    )
    meter = CpuMeter(target)
    await generator.start()
    started = generator.started_monotonic
    assert started is not None
    persisted: asyncio.Task[tuple[int, float | None]] | None = None
    counter = target.counter
    expected_rows = 2 * stations
    if counter is not None:
        # Bounded: the simulator's own limit plus a grace period once it ended.
        deadline = time.monotonic() + _boot_wait(bench, stations) + bench.plan.persist_grace_s
        persisted = asyncio.create_task(
            poll_until(
                lambda: counter.count(CONNECTOR_STATUS, prefix),
                lambda rows: rows >= expected_rows,
                deadline,
            )
        )
    try:
        summary = await generator.finish(_boot_wait(bench, stations) + 10)
        cpu = meter.sample()
        rows, persisted_at = (0, None)
        if persisted is not None:
            # Once the stations are done, wait at most the grace period for the database.
            try:
                async with asyncio.timeout(bench.plan.persist_grace_s):
                    rows, persisted_at = await asyncio.shield(persisted)
            except TimeoutError:
                persisted.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await persisted
                rows = await counter.count(CONNECTOR_STATUS, prefix) if counter else 0
    finally:
        if persisted is not None and not persisted.done():
            persisted.cancel()
        if generator.running:
            await generator.stop()
    cpu["simulator"] = summary.get("cpu_s")
    booted_s = summary.get("time_to_all_booted_s")
    booted = int(summary.get("booted") or 0)
    # Not all booted in time: the rate of those that did, up to the last one that did.
    boot_phase_s = booted_s or _boot_phase_s(generator.progress, booted, summary)
    figures: dict[str, Any] = {
        "stations": stations,
        "booted": booted,
        "time_to_all_booted_s": booted_s,
        "time_to_all_ready_s": summary.get("time_to_all_ready_s"),
        "boots_per_s": round(booted / boot_phase_s, 1) if boot_phase_s else None,
        "boot_p50_ms": _action(summary, "BootNotification", "p50"),
        "boot_p99_ms": _action(summary, "BootNotification", "p99"),
    }
    notes = []
    if counter is not None:
        figures["all_persisted_s"] = (
            round(persisted_at - started, 3) if persisted_at is not None else None
        )
        figures["connector_status_rows"] = rows
        if persisted_at is None:
            notes.append(f"only {rows} of {expected_rows} connector_status rows were written")
    if not booted_s:
        notes.append(f"only {summary.get('booted')} of {stations} stations booted Accepted")
    if summary.get("pending"):
        notes.append(f"{summary['pending']} BootNotifications were answered Pending")
    if summary.get("errors"):
        notes.append(f"stations saw errors: {summary['errors']}")
    return {
        "figures": figures,
        "details": {
            "prefix": prefix,
            "urls": urls,
            "simulator": sim_counters(summary),
            "latency_by_action_ms": summary.get("latency_by_action_ms", {}),
            "cpu_s": cpu,
            "wall_s": meter.wall(),
        },
        "notes": notes,
    }


def _boot_phase_s(progress: list[dict[str, Any]], booted: int, summary: dict[str, Any]) -> float:
    for snapshot in progress:
        if snapshot.get("booted", 0) >= booted:
            return float(snapshot["elapsed_s"])
    return float(summary.get("elapsed_s") or 0.0)


def _action(summary: dict[str, Any], action: str, key: str) -> float | None:
    value = summary.get("latency_by_action_ms", {}).get(action, {}).get(key)
    return float(value) if value is not None else None


# 2. steady_ingest


async def steady_ingest(bench: Bench, target: Target) -> dict[str, Any]:
    plan = bench.plan
    stations = plan.steady_stations
    steps: list[dict[str, Any]] = []
    notes: list[str] = []
    for total_rate in plan.steady_steps:
        # A step costs its duration, the fleet's boot and close, and the drain.
        needed = plan.steady_step_s + plan.steady_warmup_s + stations / plan.connect_rate + 15
        if steps and bench.remaining() < needed:
            notes.append(f"stopped before {total_rate} msg/s: time budget")
            break
        try:
            step = await _steady_step(bench, target, stations, total_rate)
        except LoadGeneratorError as error:
            if not steps:
                raise
            notes.append(f"step {total_rate} msg/s did not run: {error}")
            break
        steps.append(step)
        log.info("  %s steady %d msg/s: %s", target.name, total_rate, _brief(step))
        if step["p99_ms"] is None or step["p99_ms"] > 1000:
            notes.append(f"stopped after {total_rate} msg/s: p99 over 1 s")
            break
        if step["errors"]:
            notes.append(f"stopped after {total_rate} msg/s: {step['errors']} station errors")
            break
        if step.get("saturated"):
            notes.append(
                f"stopped after {total_rate} msg/s: saturated (sent < 80% of asked)"
                + (", the simulator near a full core" if step.get("simulator_bound") else "")
            )
            break
    best = _best_step(steps, target.counter is not None)
    figures: dict[str, Any] = {
        "stations": stations,
        "steps_run": len(steps),
        "max_target_rate": steps[-1]["target_per_s"] if steps else None,
        "max_sent_per_s": max((s["sent_per_s"] for s in steps), default=None),
        "p50_ms": best["p50_ms"] if best else None,
        "p99_ms": best["p99_ms"] if best else None,
    }
    if target.counter is not None:
        figures["max_persisted_per_s"] = max(
            (s["persisted_per_s"] for s in steps if s["persisted_per_s"] is not None),
            default=None,
        )
        figures["best_persisted_per_s_p99_le_100ms"] = max(
            (
                s["persisted_per_s"]
                for s in steps
                if s["persisted_per_s"] is not None and (s["p99_ms"] or math.inf) <= 100
            ),
            default=0.0,
        )
    return {"figures": figures, "details": {"steps": steps}, "notes": notes}


def _best_step(steps: list[dict[str, Any]], persisted: bool) -> dict[str, Any] | None:
    """The highest step still within 1 s p99 and without errors (else the first)."""
    good = [s for s in steps if not s["errors"] and (s["p99_ms"] or math.inf) <= 1000]
    return (good or steps)[-1] if steps else None


def _brief(step: dict[str, Any]) -> str:
    return (
        f"sent {step['sent_per_s']}/s persisted {step.get('persisted_per_s')}/s "
        f"p50 {step['p50_ms']} p99 {step['p99_ms']} ms errors {step['errors']}"
    )


async def _steady_step(
    bench: Bench, target: Target, stations: int, total_rate: int
) -> dict[str, Any]:
    plan = bench.plan
    prefix = bench.prefix("S")
    generator = standing_fleet(
        bench,
        target,
        stations,
        prefix,
        serve_s=plan.steady_step_s + 60,
        message_rate=total_rate / stations,
    )
    counter = target.counter
    await generator.start()
    try:
        await generator.wait_for(
            _ready(stations), _boot_wait(bench, stations), "all stations ready"
        )
        # The fleet is booted; let the boot's backlog clear before the window opens.
        await asyncio.sleep(plan.steady_warmup_s)
        meter = CpuMeter(target, generator.pid)
        rows_before = await counter.count(INGEST_TABLES, prefix) if counter else 0
        counted_before = time.monotonic()
        await generator.open_window()
        await asyncio.sleep(plan.steady_step_s)
        window = await generator.close_window()
        rows_after = await counter.count(INGEST_TABLES, prefix) if counter else 0
        counted_after = time.monotonic()
        cpu = meter.sample()
        metered_s = meter.wall()
    finally:
        summary = await generator.stop()
    if not window.get("available"):
        raise RuntimeError("the simulator could not measure a window")
    seconds = float(window["seconds"])
    latency = window.get("latency_ms") or {}
    sent_per_s = round(window["sent"] / seconds, 1)
    errors = sum(
        int(window.get(key) or 0)
        for key in ("call_errors", "timeouts", "connect_failures", "disconnects")
    )
    step: dict[str, Any] = {
        "target_per_s": total_rate,
        "per_station_per_s": round(total_rate / stations, 3),
        "window_s": round(seconds, 2),
        "sent_per_s": sent_per_s,
        "answered_per_s": round(window["results"] / seconds, 1),
        "p50_ms": latency.get("p50"),
        "p99_ms": latency.get("p99"),
        "max_ms": latency.get("max"),
        "latency_by_action_ms": window.get("latency_by_action_ms", {}),
        "errors": errors,
        "window": {key: window.get(key) for key in ("sent", "results", *_ERROR_KEYS)},
        "simulator": sim_counters(summary),
        "cpu_s": cpu | {"simulator (whole run)": summary.get("cpu_s")},
        # Of one core, over the metered time (the window and its row counts): the simulator is
        # one process.
        "simulator_cpu_share": None
        if math.isnan(cpu.get("simulator", math.nan))
        else round(cpu["simulator"] / metered_s, 2),
    }
    step |= saturation(sent_per_s, total_rate, step["simulator_cpu_share"])
    step |= cpu_budget(cpu, metered_s, int(window["sent"]))
    if counter is not None:
        step["persisted_per_s"] = round(
            (rows_after - rows_before) / (counted_after - counted_before), 1
        )
        # Every answered CALL must end up in the database: wait for the backlog to drain.
        by_action = summary.get("latency_by_action_ms", {})
        expected = sum(
            int(by_action.get(action, {}).get("count", 0))
            for action in ("StatusNotification", "NotifyEvent")
        ) - int(summary.get("call_errors") or 0)
        drained_from = time.monotonic()
        final, drained_at = await poll_until(
            lambda: counter.count(INGEST_TABLES, prefix),
            lambda rows: rows >= expected,
            drained_from + plan.drain_max_s,
            interval=0.5,
        )
        step["answered_messages"] = expected
        step["rows_after_drain"] = final
        step["drain_s"] = round(drained_at - drained_from, 2) if drained_at else None
        if drained_at is None:
            step["note_drain"] = (
                f"{expected - final} answered messages not in the database "
                f"{plan.drain_max_s:.0f} s after the step"
            )
    else:
        step["persisted_per_s"] = None
    return step


_ERROR_KEYS = ("call_errors", "timeouts", "connect_failures", "disconnects")
# A step whose stations sent less than this share of the asked rate saturated the target.
SATURATED = 0.8
# ...or the simulator, if it used this share of its one core over the window.
SIMULATOR_BOUND = 0.85


def saturation(
    sent_per_s: float, asked_per_s: float, simulator_share: float | None
) -> dict[str, Any]:
    """Flags and a note for a step whose stations sent less than asked; {} for one that did not."""
    if sent_per_s >= SATURATED * asked_per_s:
        return {}
    if simulator_share is not None and simulator_share >= SIMULATOR_BOUND:
        return {
            "saturated": True,
            "simulator_bound": True,
            "note": f"the stations sent less than asked: the simulator used "
            f"{simulator_share:.0%} of a core, so it may have been the limit",
        }
    return {
        "saturated": True,
        "note": "the stations sent less than asked: answers came too slowly",
    }


# 3. commands


async def commands(bench: Bench, target: Target) -> dict[str, Any]:
    plan = bench.plan
    if target.api_url is None:
        raise ValueError(f"{target.name} has no HTTP API")
    stations = plan.command_stations
    prefix = bench.prefix("C")
    total = round(plan.command_rate * plan.command_duration_s)
    generator = standing_fleet(
        bench, target, stations, prefix, serve_s=plan.command_duration_s + 120
    )
    station_ids = [f"{prefix}{number:0{len(str(stations))}d}" for number in range(1, stations + 1)]
    await generator.start()
    try:
        await generator.wait_for(_ready(stations), _boot_wait(bench, stations), "stations ready")
        pool = KeepAlivePool(target.api_url, HTTP_CONNECTIONS)
        try:
            for station_id in station_ids[:HTTP_CONNECTIONS]:
                # Warm-up (not measured): connections open, the stations are known.
                await pool.request("GET", f"/stations/{station_id}")
            # CPU of the commands alone, not of the fleet's boot.
            meter = CpuMeter(target, generator.pid)
            results = await _open_loop(pool, station_ids, plan.command_rate, total)
            cpu = meter.sample()
            budget = cpu_budget(cpu, meter.wall(), len(results))
        finally:
            await pool.close()
    finally:
        summary = await generator.stop()
    first_due = min(r[0] for r in results)
    last_due = max(r[0] for r in results)
    statuses = Counter(r[2] for r in results)
    ok_results = [r for r in results if r[2] == "200"]
    ok = sorted(r[1] for r in ok_results)
    every = sorted(r[1] for r in results)
    # Successful commands per second, from the first request due to the last 200 answer.
    ok_window = max((r[0] + r[1] for r in ok_results), default=first_due) - first_due
    figures = {
        "stations": stations,
        "target_rate": plan.command_rate,
        "requests": len(results),
        "sent_per_s": round((len(results) - 1) / (last_due - first_due), 1)
        if last_due > first_due
        else None,
        "achieved_rate": round(len(ok) / ok_window, 1) if ok_window > 0 else 0.0,
        "p50_ms": _ms(_percentile(ok, 50)),
        "p99_ms": _ms(_percentile(ok, 99)),
        "max_ms": _ms(ok[-1] if ok else None),
        "p50_all_ms": _ms(_percentile(every, 50)),
        "p99_all_ms": _ms(_percentile(every, 99)),
        "ok": len(ok),
        "non_200": len(results) - len(ok),
        "cores_busy": budget["cores_busy"],
    }
    notes = []
    if figures["non_200"]:
        notes.append(f"answers other than 200: {dict(statuses)}")
    return {
        "figures": figures,
        "details": {
            "prefix": prefix,
            "statuses": dict(statuses),
            "simulator": sim_counters(summary),
            # Over the commands' window only (the fleet's boot before it not included).
            "cpu_s": cpu,
            "cpu_ms_per_command": budget["cpu_ms_per_unit"],
            # When in the run the slow answers came: a stall shows as one bad second.
            "by_second": by_second(results),
        },
        "notes": notes,
    }


async def _open_loop(
    pool: KeepAlivePool, station_ids: list[str], rate: float, total: int
) -> list[tuple[float, float, str]]:
    """Send `total` resets at `rate` per second whatever the answers take (open loop),
    round-robin over the stations; return (due at, seconds, status) each.

    Each reset names one EVSE (alternately 1 and 2): the EVSE restarts and reports its status
    again, the station stays connected. A whole-station reset reboots the station, so every
    station would be offline for most of the run and the figure would measure reconnects,
    which the boot storm measures already.

    A request's latency counts from when it was due, so a request waiting for a free
    connection (at most HTTP_CONNECTIONS in flight) is not flattered.
    """
    results: list[tuple[float, float, str]] = []
    started = time.perf_counter()

    async def one(number: int) -> None:
        station_id = station_ids[number % len(station_ids)]
        due = started + number / rate
        evse = 1 + number // len(station_ids) % 2
        try:
            # The API answers 504 after its own 30 s; waiting longer only hides a stall.
            async with asyncio.timeout(REQUEST_CAP_S - (time.perf_counter() - due)):
                status_code, _ = await pool.request(
                    "POST", f"/stations/{station_id}/reset", {"type": "OnIdle", "evseId": evse}
                )
            status = str(status_code)
        except HttpError as error:
            status = str(error)
        except TimeoutError:
            status = f"no answer in {REQUEST_CAP_S:.0f} s"
        results.append((due, time.perf_counter() - due, status))

    tasks: list[asyncio.Task[None]] = []
    for number in range(total):
        delay = started + number / rate - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number)))
    await asyncio.gather(*tasks)
    return results


def by_second(results: list[tuple[float, float, str]]) -> list[dict[str, Any]]:
    """The requests grouped by the second of the run they were due in: how many, how many
    answered 200, and their latency (p50, p99 and slowest, of every answer)."""
    if not results:
        return []
    first_due = min(due for due, _, _ in results)
    seconds: dict[int, list[tuple[float, str]]] = {}
    for due, latency, status in results:
        seconds.setdefault(int(due - first_due), []).append((latency, status))
    rows = []
    for second, answers in sorted(seconds.items()):
        latencies = sorted(latency for latency, _ in answers)
        rows.append(
            {
                "second": second,
                "requests": len(answers),
                "ok": sum(1 for _, status in answers if status == "200"),
                "p50_ms": _ms(_percentile(latencies, 50)),
                "p99_ms": _ms(_percentile(latencies, 99)),
                "max_ms": _ms(latencies[-1]),
            }
        )
    return rows


REQUEST_CAP_S = 35.0
# Requests in flight at most (one per keep-alive connection).
HTTP_CONNECTIONS = 256


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None


# 4. idle_memory


async def idle_memory(bench: Bench, target: Target) -> dict[str, Any]:
    plan = bench.plan
    stations = plan.memory_stations
    prefix = bench.prefix("M")
    generator = standing_fleet(bench, target, stations, prefix, serve_s=plan.memory_idle_s + 60)
    before = rss_kb(target.memory_pid, with_children=True)
    notes = []
    await generator.start()
    try:
        try:
            await generator.wait_for(
                _ready(stations), _boot_wait(bench, stations), "stations ready"
            )
        except LoadGeneratorError as error:
            # Measure what did connect, and say so: the per-station figure is then per
            # connected station, with the others still retrying (not idle).
            notes.append(f"not every station was ready: {error}")
        await asyncio.sleep(plan.memory_idle_s)
        after = rss_kb(target.memory_pid, with_children=True)
        connected = int(generator.latest.get("connected") or 0)
    finally:
        summary = await generator.stop()
    if connected != stations:
        notes.append(f"{connected} of {stations} stations connected when measured")
    if summary.get("errors"):
        notes.append(f"stations saw errors: {summary['errors']}")
    return {
        "figures": {
            "stations": stations,
            "connected": connected,
            "rss_before_kb": before,
            "rss_after_kb": after,
            "kb_per_station": round((after - before) / connected, 2) if connected else None,
        },
        "details": {
            "process": target.memory_process,
            "idle_s": plan.memory_idle_s,
            "compression": "permessage-deflate (simulator default)",
            "simulator": sim_counters(summary),
        },
        "notes": notes,
    }


# 5. scale_out


async def scale_out(bench: Bench, target: Target) -> dict[str, Any]:
    """Boot storms through one gateway and through two (round-robin), same N, same stack.

    First as the stack runs, then with each gateway held to `plan.gateway_cpu_cores` of a core
    (a cgroup CPU quota, as a container's `cpus:`). Everything shares this machine's cores:
    without a budget, one gateway already takes what the rest of the stack leaves, and a second
    gateway can only share it; with one, a second gateway brings a budget of its own, as it
    would on a host of its own, and the ratio shows whether gateways add up or share a
    bottleneck (broker, worker, database). The goal is judged on the budgeted storms when the
    machine allows the quota, else on the others."""
    plan = bench.plan
    if len(target.ocpp_urls) < 2:
        raise ValueError("scale_out needs a deployment with two gateways")
    stations = plan.scale_stations
    uncapped = await _storm_pairs(bench, target, stations)
    gateways = {
        name: popen.pid for name, popen in target.processes.items() if name.startswith("gateway")
    }
    with cpu_quota.hold(gateways, plan.gateway_cpu_cores, bench.tag.lower()) as quota:
        capped = await _storm_pairs(bench, target, stations) if quota.applied else None
        throttled = quota.throttled_share()
    judged = capped or uncapped
    notes = [f"uncapped, {note}" for note in _storm_notes(uncapped)]
    if capped is None:
        notes.append(f"gateways not held to a CPU budget: {quota.reason}")
    else:
        notes += [f"with the CPU budget, {note}" for note in _storm_notes(capped)]
    return {
        "figures": {
            "stations": stations,
            "gateway_cpu_cores": quota.cores if capped else None,
            **pair_figures(judged),
            **{f"uncapped_{name}": value for name, value in pair_figures(uncapped).items()},
        },
        "details": {
            "one_gateway": judged.one,
            "two_gateways": judged.two,
            "uncapped": {"one_gateway": uncapped.one, "two_gateways": uncapped.two},
            "cpu_quota": {
                "cores": quota.cores,
                "applied": capped is not None,
                "reason": quota.reason,
                "period_us": cpu_quota.PERIOD_US,
                "throttled_share": throttled,
            },
        },
        "notes": notes,
    }


@dataclass(frozen=True)
class StormPairs:
    """The median storm through one gateway and through two, and each pair's ratio."""

    one: dict[str, Any]
    two: dict[str, Any]
    ratio_each: list[float | None]


async def _storm_pairs(bench: Bench, target: Target, stations: int) -> StormPairs:
    """`plan.boot_storms` storms through one gateway and as many through two, in pairs whose
    order alternates (one then two, two then one, ...) so that the stack's drift weighs on
    both. A single pair's ratio ranged from 0.96 to 1.58 on the same code on a shared 2-core
    machine: the figures are each side's median storm, with every pair's ratio."""
    plan = bench.plan
    storms: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for pair in range(plan.boot_storms):
        if pair and bench.remaining() < 2 * (_boot_wait(bench, stations) + plan.persist_grace_s):
            break
        for gateways in (1, 2) if pair % 2 == 0 else (2, 1):
            await settle(target)
            storm = await run_boot_storm(
                bench, target, target.ocpp_urls[:gateways], stations, "O" if gateways == 1 else "T"
            )
            storms[gateways].append(storm)
    return StormPairs(
        one=median_storm(storms[1], plan.boot_storms),
        two=median_storm(storms[2], plan.boot_storms),
        ratio_each=[
            _ratio(o["figures"]["boots_per_s"], t["figures"]["boots_per_s"])
            for o, t in zip(storms[1], storms[2], strict=True)
        ],
    )


def pair_figures(storms: StormPairs) -> dict[str, Any]:
    one, two = storms.one, storms.two
    ratio = _ratio(one["figures"]["boots_per_s"], two["figures"]["boots_per_s"])
    one_cost, two_cost = storm_cost(one), storm_cost(two)
    return {
        "one_gateway_boots_per_s": one["figures"]["boots_per_s"],
        "two_gateways_boots_per_s": two["figures"]["boots_per_s"],
        "ratio": ratio,
        "ratio_each": storms.ratio_each,
        "ratio_at_equal_cpu_per_boot": _at_equal_cost(
            ratio, one_cost["gateway_cpu_ms_per_boot"], two_cost["gateway_cpu_ms_per_boot"]
        ),
        "one_gateway_all_booted_s": one["figures"]["time_to_all_booted_s"],
        "two_gateways_all_booted_s": two["figures"]["time_to_all_booted_s"],
        **{f"one_gateway_{name}": value for name, value in one_cost.items()},
        **{f"two_gateways_{name}": value for name, value in two_cost.items()},
    }


def _at_equal_cost(ratio: float | None, one_ms: float | None, two_ms: float | None) -> float | None:
    """The ratio had a boot cost the gateways as much CPU through one as through two: it
    separates the gateways' CPU each side got (near 2 with a budget each, if nothing else held
    them back) from a difference in what a boot cost them."""
    return round(ratio * two_ms / one_ms, 3) if ratio and one_ms and two_ms else None


def _storm_notes(storms: StormPairs) -> list[str]:
    return [f"one gateway: {n}" for n in storms.one["notes"]] + [
        f"two gateways: {n}" for n in storms.two["notes"]
    ]


def _ratio(one: float | None, two: float | None) -> float | None:
    return round(two / one, 3) if one and two else None


def storm_cost(storm: dict[str, Any]) -> dict[str, float | None]:
    """What a storm cost: the gateways' CPU per boot (ms), all of them together, and the cores
    the stack and the simulator kept busy. Beside the scale-out ratio, which the machine's
    cores bound: whether a second gateway made each boot cost the gateways more."""
    booted = storm["figures"]["booted"]
    budget = cpu_budget(storm["details"]["cpu_s"], storm["details"]["wall_s"], booted)
    per_boot = budget["cpu_ms_per_unit"]
    gateways = [used for name, used in per_boot.items() if name.startswith("gateway")]
    return {
        "gateway_cpu_ms_per_boot": round(sum(gateways), 3) if per_boot else None,
        "cores_busy": budget["cores_busy"],
    }


async def settle(target: Target, timeout: float = 20.0) -> dict[str, Any]:
    """Between scenarios: wait (each at most `timeout`) until the gateways hold no connection
    and the broker's queues are empty, so that one scenario's backlog does not slow the next.
    A count that stops going down is left as it is (a leak is reported, not waited for)."""
    began = time.monotonic()
    connections = await _wait_down(lambda: _gateway_connections(target), timeout, still_for=3.0)
    backlog = None
    if target.backlog is not None:
        backlog = await _wait_down(target.backlog, timeout, still_for=5.0)
    await asyncio.sleep(1.0)
    return {
        "seconds": round(time.monotonic() - began, 1),
        "connections_left": connections,
        "queued_messages_left": backlog,
    }


async def _wait_down(
    probe: Callable[[], Awaitable[int | None]], timeout: float, still_for: float
) -> int | None:
    """Poll until the value is 0 (or None: not observable), has not changed for `still_for`
    seconds, or `timeout` passed; return the last value."""
    deadline = time.monotonic() + timeout
    value = await probe()
    changed_at = time.monotonic()
    while value and time.monotonic() < deadline and time.monotonic() - changed_at < still_for:
        await asyncio.sleep(0.5)
        latest = await probe()
        if latest != value:
            value, changed_at = latest, time.monotonic()
    return value


async def _gateway_connections(target: Target) -> int | None:
    """Connections the target's gateways hold, from their /metrics (None: no metrics)."""
    total: int | None = None
    async with httpx.AsyncClient(timeout=2) as client:
        for url in target.ocpp_urls:
            metrics = url.replace("ws://", "http://").rsplit("/ocpp", 1)[0] + "/metrics"
            try:
                response = await client.get(metrics)
            except httpx.HTTPError:
                continue
            match = re.search(r"^csms_gateway_connections (\d+)$", response.text, re.M)
            if response.status_code == 200 and match:
                total = (total or 0) + int(match.group(1))
    return total


SCENARIOS: dict[str, Callable[[Bench, Target], Awaitable[dict[str, Any]]]] = {
    "boot_storm": boot_storm,
    "steady_ingest": steady_ingest,
    "commands": commands,
    "idle_memory": idle_memory,
    "scale_out": scale_out,
}
