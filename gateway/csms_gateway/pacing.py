"""Load shedding for reconnect storms.

Each admitted connection costs broker round trips and database work until its registration
is recorded. Past a bound of such connections in progress, new ones are refused at once with
503 and Retry-After: the station backs off and comes back, instead of waiting in a queue until
it gives up and retries, which would waste the work already done for it.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict


class AdmissionWindow:
    def __init__(self, limit: int, expiry: float) -> None:
        self._limit = limit
        # An admission not released within `expiry` (its handshake was abandoned) lapses.
        self._expiry = expiry
        # Token -> lapse time. Every token gets the same expiry, so insertion order is lapse
        # order and lapsed tokens are always at the front: dropping them is O(1) each, which
        # matters when a storm is refused thousands of times a second.
        self._open: OrderedDict[int, float] = OrderedDict()
        self._tokens = itertools.count(1)

    def try_admit(self) -> int | None:
        """A token for a new connection, or None when too many are in progress."""
        now = time.monotonic()
        while self._open and next(iter(self._open.values())) <= now:
            self._open.popitem(last=False)
        if len(self._open) >= self._limit:
            return None
        token = next(self._tokens)
        self._open[token] = now + self._expiry
        return token

    def release(self, token: int | None) -> None:
        if token is not None:
            self._open.pop(token, None)

    def in_progress(self) -> int:
        return len(self._open)
