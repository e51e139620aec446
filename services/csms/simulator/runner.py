"""Runs a fleet of simulated stations: paced start, progress once a second, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from csms.simulator.config import SimulationConfig
from csms.simulator.station import SimulatedStation
from csms.simulator.stats import SimulationStats

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
# How often the supervisor looks at the clock, the stop event and the counters.
_TICK = 0.05
# Never sleep less than this between two batches of new connections.
_MIN_LAUNCH_PAUSE = 0.005


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit (one socket per station); return
    the limit now in force, or -1 where there is no such limit to raise."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, hard)
    return soft


async def run_simulation(
    config: SimulationConfig,
    *,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Start `config.stations` stations at `config.connect_rate` per second, wait until every
    one booted and sent its statuses (at most `boot_timeout` after the last start), run
    `config.duration` seconds more, then close every socket and return the summary.

    `progress` gets a snapshot of the counters once a second, with `sent_per_s` added.
    Setting `stop` ends the run early, in any phase; the summary is returned all the same.
    """
    open_files = raise_open_file_limit()
    stop = stop or asyncio.Event()
    stats = SimulationStats(config.stations)
    rng = random.Random()
    tasks: list[asyncio.Task[None]] = []
    supervisor = _Supervisor(stats, progress)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        while len(tasks) < config.stations and not stop.is_set():
            due = min(config.stations, int((loop.time() - started) * config.connect_rate) + 1)
            for number in range(len(tasks) + 1, due + 1):
                station = SimulatedStation(number, config, stats, rng)
                task = asyncio.create_task(station.run(), name=station.station_id)
                task.add_done_callback(lambda done: _note_crash(done, stats))
                tasks.append(task)
            supervisor.tick()
            await _sleep_or_stop(stop, max(1 / config.connect_rate, _MIN_LAUNCH_PAUSE))
        boot_deadline = loop.time() + config.boot_timeout
        while not stats.all_ready and loop.time() < boot_deadline and not stop.is_set():
            supervisor.tick()
            await _sleep_or_stop(stop, _TICK)
        end = loop.time() + config.duration
        while loop.time() < end and not stop.is_set():
            supervisor.tick()
            await _sleep_or_stop(stop, min(_TICK, end - loop.time()))
    finally:
        # Taken before the stop: cancelling the stations empties both gauges.
        connected_at_stop, in_flight_at_stop = stats.connected, stats.in_flight
        for task in tasks:
            task.cancel()
        # Each cancelled station closes its socket (close handshake, bounded by a timeout).
        await asyncio.gather(*tasks, return_exceptions=True)
    summary = stats.summary()
    summary["connected_at_stop"] = connected_at_stop
    # sent == results + call_errors + timeouts + in_flight_at_stop
    summary["in_flight_at_stop"] = in_flight_at_stop
    summary["open_file_limit"] = open_files
    return summary


class _Supervisor:
    """Reports progress once a second, with the message rate since the previous report."""

    def __init__(self, stats: SimulationStats, progress: Progress | None) -> None:
        self._stats = stats
        self._progress = progress
        self._last_at = stats.elapsed()
        self._last_sent = 0

    def tick(self) -> None:
        if self._progress is None:
            return
        now = self._stats.elapsed()
        if now - self._last_at < 1.0:
            return
        snapshot = self._stats.snapshot()
        snapshot["sent_per_s"] = round((snapshot["sent"] - self._last_sent) / (now - self._last_at))
        self._last_at, self._last_sent = now, snapshot["sent"]
        self._progress(snapshot)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


def _note_crash(task: asyncio.Task[None], stats: SimulationStats) -> None:
    """A station task only ends by cancellation; anything else is a bug, counted and logged."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        stats.error(f"station crashed: {type(error).__name__}")
        log.error("station %s crashed", task.get_name(), exc_info=error)
