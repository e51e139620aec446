"""Counters and call latencies of a simulation run.

Everything here is updated from the one event-loop thread, so plain attributes suffice (no
locks). Latencies go into a bounded reservoir: a long run at a high rate must not grow memory
without limit, and a uniform sample of 100k calls gives stable percentiles.
"""

from __future__ import annotations

import math
import random
import time
from array import array
from collections import Counter
from typing import Any

DEFAULT_RESERVOIR = 100_000
# Per-action reservoirs are smaller: they only show which action is slow.
ACTION_RESERVOIR = 10_000


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list; 0.0 for an empty one."""
    if not ordered:
        return 0.0
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


class Reservoir:
    """A uniform sample of at most `capacity` values (Vitter's algorithm R), plus the exact
    count, sum and maximum of everything added."""

    def __init__(self, capacity: int = DEFAULT_RESERVOIR, seed: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.count = 0
        self.total = 0.0
        self.maximum = 0.0
        self._samples = array("d")
        self._random = random.Random(seed)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value > self.maximum:
            self.maximum = value
        if len(self._samples) < self.capacity:
            self._samples.append(value)
            return
        # random() rather than randrange(): about half the cost, and uniform to within 2**-53.
        slot = int(self._random.random() * self.count)
        if slot < self.capacity:
            self._samples[slot] = value

    def summary(self, scale: float = 1.0) -> dict[str, float | int]:
        """count, mean, p50, p95, p99 and max, each value multiplied by `scale`."""
        ordered = sorted(self._samples)
        mean = self.total / self.count if self.count else 0.0
        return {
            "count": self.count,
            "mean": round(mean * scale, 3),
            "p50": round(percentile(ordered, 50) * scale, 3),
            "p95": round(percentile(ordered, 95) * scale, 3),
            "p99": round(percentile(ordered, 99) * scale, 3),
            "max": round(self.maximum * scale, 3),
        }


class SimulationStats:
    """What happened so far. Gauges (`connecting`, `connected`) go up and down; everything
    else only counts up. `*_once` counters count distinct stations."""

    def __init__(self, stations: int, reservoir: int = DEFAULT_RESERVOIR) -> None:
        self.stations = stations
        self.started_at = time.monotonic()
        # Gauges.
        self.connecting = 0
        self.connected = 0
        # CALLs sent and not yet answered (nor timed out).
        self.in_flight = 0
        # Distinct stations that reached a state at least once, and when all of them did.
        self.connected_once = 0
        self.booted_once = 0
        self.ready_once = 0
        self.all_connected_after: float | None = None
        self.all_booted_after: float | None = None
        self.all_ready_after: float | None = None
        # Station -> CSMS traffic.
        self.sent = 0
        self.results = 0
        self.call_errors = 0
        self.timeouts = 0
        self.accepted = 0
        self.pending = 0
        self.rejected = 0
        # Connections.
        self.connect_failures = 0
        self.disconnects = 0
        self.reconnects = 0
        # CSMS -> station traffic.
        self.csms_calls = 0
        self.resets = 0
        self.bad_frames = 0
        self.errors: Counter[str] = Counter()
        self.latency = Reservoir(reservoir)
        self._by_action: dict[str, Reservoir] = {}
        self._action_capacity = min(reservoir, ACTION_RESERVOIR)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    # Events, called by the stations.

    def station_connected(self, first_time: bool) -> None:
        self.connected += 1
        if first_time:
            self.connected_once += 1
            if self.connected_once == self.stations:
                self.all_connected_after = self.elapsed()
        else:
            self.reconnects += 1

    def station_booted(self, first_time: bool) -> None:
        self.accepted += 1
        if first_time:
            self.booted_once += 1
            if self.booted_once == self.stations:
                self.all_booted_after = self.elapsed()

    def station_ready(self) -> None:
        """A station sent its first StatusNotifications after its first Accepted boot."""
        self.ready_once += 1
        if self.ready_once == self.stations:
            self.all_ready_after = self.elapsed()

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def answered(self, action: str, seconds: float, error_code: str | None) -> None:
        """A CALL of ours got its CALLRESULT (error_code None) or CALLERROR."""
        if error_code is None:
            self.results += 1
        else:
            self.call_errors += 1
            self.errors[f"CALLERROR {action} {error_code}"] += 1
        self.latency.add(seconds)
        reservoir = self._by_action.get(action)
        if reservoir is None:
            reservoir = self._by_action[action] = Reservoir(self._action_capacity)
        reservoir.add(seconds)

    # Reports.

    @property
    def all_booted(self) -> bool:
        return self.booted_once == self.stations

    @property
    def all_ready(self) -> bool:
        return self.ready_once == self.stations

    def snapshot(self) -> dict[str, Any]:
        """The counters now: cheap enough to take every second."""
        return {
            "elapsed_s": round(self.elapsed(), 3),
            "stations": self.stations,
            "connecting": self.connecting,
            "connected": self.connected,
            "connected_once": self.connected_once,
            "booted": self.booted_once,
            "ready": self.ready_once,
            "sent": self.sent,
            "in_flight": self.in_flight,
            "results": self.results,
            "call_errors": self.call_errors,
            "timeouts": self.timeouts,
            "accepted": self.accepted,
            "pending": self.pending,
            "rejected": self.rejected,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "csms_calls": self.csms_calls,
            "resets": self.resets,
            "bad_frames": self.bad_frames,
        }

    def summary(self) -> dict[str, Any]:
        """The whole run: counters, times to all connected/booted, latency percentiles in ms."""
        elapsed = self.elapsed()
        return self.snapshot() | {
            "all_booted": self.all_booted,
            "time_to_all_connected_s": _rounded(self.all_connected_after),
            "time_to_all_booted_s": _rounded(self.all_booted_after),
            "time_to_all_ready_s": _rounded(self.all_ready_after),
            "sent_per_s": round(self.sent / elapsed, 1) if elapsed > 0 else 0.0,
            "latency_ms": self.latency.summary(scale=1000),
            "latency_by_action_ms": {
                action: reservoir.summary(scale=1000)
                for action, reservoir in sorted(self._by_action.items())
            },
            "errors": dict(self.errors.most_common(20)),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
