"""The collector settings a service applies once started (run in a child interpreter: freezing
the test process's own heap would outlive the test)."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json, weakref
from csms.heap import OLD_GENERATION_THRESHOLD, YOUNG_GENERATION_THRESHOLD, tune_garbage_collector

class Node:
    pass

before = Node(); before.self = before
tune_garbage_collector()
after = Node(); after.self = after
frozen = gc.get_freeze_count()
gone_after, gone_before = weakref.ref(after), weakref.ref(before)
del after, before
gc.collect()
print(json.dumps({
    "frozen": frozen,
    "thresholds": gc.get_threshold()[::2] == (YOUNG_GENERATION_THRESHOLD, OLD_GENERATION_THRESHOLD),
    "later_cycle_collected": gone_after() is None,
    "startup_object_kept": gone_before() is not None,
}))
"""


def test_startup_heap_is_frozen_and_later_garbage_still_collected() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    probe = json.loads(result.stdout)
    assert probe["frozen"] > 1000
    assert probe["thresholds"]
    # Cyclic garbage made after start-up is still found; what start-up left is not walked.
    assert probe["later_cycle_collected"]
    assert probe["startup_object_kept"]
