"""Garbage-collector settings for the long-running processes (services and simulator); see
docs/adr/0011-garbage-collector-settings.md.

CPython's collector, left at its defaults, was the largest single cost under load:

- a full collection walks every tracked object. Right after start-up that is the imported
  world (SQLAlchemy, FastAPI, pydantic, the OCPP schemas: about 100,000 objects, 40 ms a
  walk), none of which ever becomes garbage;
- a young collection every 700 allocations promotes whatever is in flight at that moment, so
  under load full collections of 100-170 ms came every few seconds, and in a boot storm, with
  the station population growing, a gateway spent 3 of its 6 CPU seconds collecting.
"""

from __future__ import annotations

import gc

# Allocations between young collections. Their cost is what survives them (messages in flight),
# not this number, so rarer collections promote less and make full collections rare too.
YOUNG_GENERATION_THRESHOLD = 10_000
# Middle-generation collections before a full one is considered. Cyclic garbage still reaches
# the old generation (a closed client socket in the simulator, for one: websockets keeps it in
# cycles, zlib contexts included; the gateway breaks them, see csms_gateway.station_socket), so full
# collections must still come: at most every 200,000 net allocations, and then only if what
# was promoted since the last one exceeds a quarter of the long-lived heap.
OLD_GENERATION_THRESHOLD = 2


def tune_garbage_collector() -> None:
    """Call once, when start-up is done: exempt everything alive now from later collections (it
    is still freed by reference counting) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, OLD_GENERATION_THRESHOLD)
