"""The station simulator in a process of its own, so that its CPU use does not skew the
harness's own timing (database polling, HTTP latency).

Child: `python -m benchmarks.loadgen '<SimulationConfig fields as JSON>'` runs
`csms.simulator.run_simulation` and writes one JSON object per line on stdout: `start` (with
the CLOCK_MONOTONIC time, comparable across processes), `progress` once a second, and the
final `summary`. SIGTERM or SIGINT stop the run cleanly (the summary is still written).

Parent: `LoadGenerator` starts that process and follows its lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


class LoadGeneratorError(RuntimeError):
    pass


class LoadGenerator:
    """One simulation run in a child process."""

    def __init__(self, config: dict[str, Any], log_path: Path, label: str = "") -> None:
        self.config = config
        self.label = label
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._log_file: Any = None
        self.started_monotonic: float | None = None
        self.latest: dict[str, Any] = {}
        self.progress: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.window: dict[str, Any] | None = None
        self.window_open: dict[str, Any] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Start the child and wait until its simulation clock runs."""
        self._log_file = self._log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            json.dumps(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file,
            cwd=REPO_ROOT,
            limit=1 << 22,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda _: self.started_monotonic is not None, timeout, "start")

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            async for raw in self._process.stdout:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                event = line.pop("event", None)
                if event == "start":
                    self.started_monotonic = line["monotonic"]
                elif event == "progress":
                    self.latest = line
                    self.progress.append(line)
                elif event == "window_open":
                    self.window_open = line
                elif event == "window":
                    self.window = line
                elif event == "summary":
                    self.summary = line["summary"]
                self._changed.set()
        finally:
            self._changed.set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str = ""
    ) -> dict[str, Any]:
        """Wait until `predicate(latest progress)` holds; return that progress snapshot."""
        deadline = time.monotonic() + timeout
        while not predicate(self.latest):
            if self.summary is not None or (self._reader is not None and self._reader.done()):
                raise LoadGeneratorError(f"simulator ended while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadGeneratorError(
                    f"simulator: no {what} in {timeout:.0f} s (last: {_short(self.latest)})"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._changed.wait()
        return dict(self.latest)

    async def open_window(self, timeout: float = 10.0) -> dict[str, Any]:
        """Start a measurement window: latencies and counters from now on are kept apart."""
        self.window_open = self.window = None
        self._signal(signal.SIGUSR1)
        await self._wait_line(lambda: self.window_open is not None, timeout, "window start")
        assert self.window_open is not None
        return self.window_open

    async def close_window(self, timeout: float = 10.0) -> dict[str, Any]:
        """End the window; return its counters and latencies (ms), as the child measured."""
        self._signal(signal.SIGUSR2)
        await self._wait_line(lambda: self.window is not None, timeout, "window end")
        assert self.window is not None
        return self.window

    def _signal(self, number: int) -> None:
        if self._process is None or self._process.returncode is not None:
            raise LoadGeneratorError("simulator not running")
        self._process.send_signal(number)

    async def _wait_line(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self._reader is None or self._reader.done():
                raise LoadGeneratorError(f"simulator ended while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadGeneratorError(f"simulator: no {what} in {timeout:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._changed.wait()

    async def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for the run to end by itself (duration over); stop it if it takes too long."""
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._reader)
        return await self.stop()

    async def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """Ask the child to stop (sockets closed cleanly) and return its summary."""
        process = self._process
        try:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(timeout):
                        await process.wait()
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            if self._reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._reader, 5)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        if self.summary is None:
            raise LoadGeneratorError(f"simulator gave no summary; see {self._log_path}")
        return self.summary


def _short(snapshot: dict[str, Any]) -> str:
    keys = ("elapsed_s", "connected", "booted", "ready", "sent", "timeouts", "connect_failures")
    return ", ".join(f"{key} {snapshot[key]}" for key in keys if key in snapshot) or "nothing"


# The child process.

# Counters whose change over a window is reported with it.
_WINDOW_COUNTERS = (
    "sent",
    "results",
    "call_errors",
    "timeouts",
    "connect_failures",
    "disconnects",
    "reconnects",
)
# Latency samples kept per action in a window (a uniform sample beyond that).
_WINDOW_RESERVOIR = 50_000


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class _Windows:
    """Measurement windows on top of the simulator's own statistics.

    `run_simulation` builds its `SimulationStats` itself; the subclass installed here also
    copies each answered CALL's latency into the open window, through the public `answered`
    method only. If the simulator ever stops building its stats that way, no stats register
    and a window reports `available: false` instead of wrong numbers.
    """

    def __init__(self) -> None:
        self.stats: list[Any] = []
        self.opened_at: float | None = None
        self.counters: dict[str, int] = {}

    def install(self) -> None:
        from csms.simulator import runner
        from csms.simulator.stats import Reservoir

        windows = self
        base = runner.SimulationStats

        class WindowStats(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.window: dict[str, Any] | None = None
                windows.stats.append(self)

            def answered(self, action: str, seconds: float, error_code: str | None) -> None:
                super().answered(action, seconds, error_code)
                if self.window is not None:
                    for key in (action, "all"):
                        reservoir = self.window.get(key)
                        if reservoir is None:
                            reservoir = self.window[key] = Reservoir(_WINDOW_RESERVOIR)
                        reservoir.add(seconds)

        runner.SimulationStats = WindowStats

    def open(self) -> None:
        self.opened_at = time.monotonic()
        for stats in self.stats:
            stats.window = {}
        self.counters = self._counters()
        _emit("window_open", monotonic=self.opened_at, **self.counters)

    def close(self) -> None:
        closed_at = time.monotonic()
        if self.opened_at is None or not self.stats:
            _emit("window", available=False, monotonic=closed_at)
            return
        now = self._counters()
        latency: dict[str, Any] = {}
        for stats in self.stats:
            window, stats.window = stats.window or {}, None
            for key, reservoir in window.items():
                latency[key] = reservoir.summary(scale=1000)
        _emit(
            "window",
            available=True,
            monotonic=closed_at,
            seconds=round(closed_at - self.opened_at, 3),
            latency_ms=latency.pop("all", None),
            latency_by_action_ms=latency,
            **{key: now[key] - self.counters.get(key, 0) for key in now},
        )
        self.opened_at = None

    def _counters(self) -> dict[str, int]:
        return {
            key: sum(int(getattr(stats, key, 0)) for stats in self.stats)
            for key in _WINDOW_COUNTERS
        }


class _FullCollections:
    """Keeps a growing fleet out of later full collections.

    A fleet's objects live as long as the run, yet each full collection walks all of them: in
    a 10,000-station storm the load generator spent about 2.3 s of its 15 s of CPU in four of
    them, with pauses up to 1.5 s that the stations' latencies would carry. After a full
    collection, whatever survived it is frozen (at the next progress report, not inside the
    collector), so the next one walks only what came since. A cycle that becomes garbage once
    frozen is never freed: fine for a run of minutes, which is why only the benchmark's child
    does this and not `csms simulate`.
    """

    def __init__(self) -> None:
        self._pending = False

    def watch(self) -> None:
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self._pending = True

    def freeze_survivors(self) -> None:
        if self._pending:
            self._pending = False
            gc.freeze()


async def _child(fields: dict[str, Any]) -> None:
    from csms.heap import tune_garbage_collector
    from csms.simulator import SimulationConfig, run_simulation

    windows = _Windows()
    windows.install()
    fields = dict(fields)
    fields["source_addresses"] = tuple(fields.get("source_addresses") or ())
    config = SimulationConfig(**fields)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, windows.open)
    loop.add_signal_handler(signal.SIGUSR2, windows.close)

    collected = _FullCollections()

    def progress(snapshot: dict[str, Any]) -> None:
        collected.freeze_survivors()
        _emit("progress", monotonic=time.monotonic(), **snapshot)

    # The stations' latencies must not carry the load generator's own collector pauses.
    tune_garbage_collector()
    collected.watch()
    _emit("start", monotonic=time.monotonic(), pid=os.getpid())
    summary = await run_simulation(config, progress=progress, stop=stop)
    summary["cpu_s"] = round(time.process_time(), 2)
    _emit("summary", summary=summary)


def main() -> None:
    fields = json.loads(sys.argv[1])
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_child(fields))
    else:
        uvloop.run(_child(fields))


if __name__ == "__main__":
    main()
