"""Load shedding for reconnect storms.

Each admitted connection costs broker round trips and database work until its registration
is recorded. Past a bound of such connections in progress, new ones are refused at once with
503 and Retry-After: the station backs off and comes back, instead of waiting in a queue until
it gives up and retries, which would waste the work already done for it.
"""

from __future__ import annotations

import itertools
import time


class AdmissionWindow:
    def __init__(self, limit: int, expiry: float) -> None:
        self._limit = limit
        # An admission not released within `expiry` (its handshake was abandoned) lapses.
        self._expiry = expiry
        self._open: dict[int, float] = {}
        self._tokens = itertools.count(1)

    def try_admit(self) -> int | None:
        """A token for a new connection, or None when too many are in progress."""
        now = time.monotonic()
        if len(self._open) >= self._limit:
            self._open = {token: until for token, until in self._open.items() if until > now}
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
