"""How fast this machine's CPU was: a fixed piece of pure-Python work, timed at the start and at
the end of a run.

Shared and virtual machines differ in speed from one run to the next, by a factor of two here
(the unchanged baseline sent at most 905 msg/s in one full run and 1,883 in another), and
sometimes during one run. The figure lets runs on different machines be compared, and shows
whether a machine's speed changed during a run. Lower is faster.
"""

from __future__ import annotations

import json
import time

# A StatusNotification as a station sends it: the work is what a CSMS does most (JSON in and
# out, dicts, strings), in the standard library only, so that it does not change with the
# project's dependencies.
_MESSAGE = json.dumps(
    [
        2,
        "7a5e4f0c-2d4b-4c9e-9d0e-3f1b2a6c8d90",
        "StatusNotification",
        {
            "timestamp": "2026-11-30T04:00:00.000Z",
            "connectorStatus": "Occupied",
            "evseId": 1,
            "connectorId": 2,
        },
    ]
)
_MESSAGES_PER_ROUND = 5000


def cpu_calibration_ms(rounds: int = 5) -> float:
    """Milliseconds the fixed work took, best of `rounds`."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        _work()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def _work() -> None:
    for number in range(_MESSAGES_PER_ROUND):
        _, message_id, action, payload = json.loads(_MESSAGE)
        row = {key.lower(): value for key, value in payload.items()}
        row["station"] = f"CS{number:05d}"
        json.dumps([3, message_id, {"action": action, "stored": sorted(row)}])
