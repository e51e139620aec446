"""Load shedding for reconnect storms.

Each admitted connection costs broker round trips and database work until its registration
is recorded. Past a bound of such connections in progress, new ones are refused at once with
503 and Retry-After: the station backs off and comes back, instead of waiting in a queue until
it gives up and retries, which would waste the work already done for it.

A refusal costs the gateway a TLS/HTTP handshake too, so the refused must not come back in
waves that are refused again: each is given its own later turn, spaced at the rate the window
has been completing admissions, so that a storm returns as a stream the gateway can take.

A refusal and the retry cost the station and the gateway more than the wait they save when
the gateway keeps up, so the bound grows with the rate at which admissions complete: past
`limit`, the window admits as many as complete in `_TARGET_WAIT` seconds at the recent rate
(ADR 0020). The admitted then wait their turn about that long at most.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import OrderedDict, deque

# Admissions completed within this many seconds make the window's measured rate.
_RATE_WINDOW = 10.0
# The rate assumed before any admission completed (the start of a storm).
_INITIAL_RATE = 200.0
# Turns are spaced for this multiple of the measured rate: a turn given too early costs one
# more refusal and a later turn, one given too late leaves the gateway idle, which costs more.
_OPTIMISM = 2.0
# Seconds of completed admissions the window may hold in progress beyond its limit.
_TARGET_WAIT = 10.0


class AdmissionWindow:
    def __init__(
        self, limit: int, expiry: float, min_retry_after: int = 1, max_retry_after: int = 600
    ) -> None:
        self._limit = limit
        self._min_retry_after = min_retry_after
        self._max_retry_after = max_retry_after
        # When the last refused connection was told to come back (monotonic).
        self._last_turn = 0.0
        self._completed: deque[float] = deque()
        # An admission not released within `expiry` (its handshake was abandoned) lapses.
        self._expiry = expiry
        # Token -> lapse time. Every token gets the same expiry, so insertion order is lapse
        # order and lapsed tokens are always at the front: dropping them is O(1) each, which
        # matters when a storm is refused thousands of times a second.
        self._open: OrderedDict[int, float] = OrderedDict()
        self._tokens = itertools.count(1)

    def try_admit(self) -> int | None:
        """A token for a new connection, or None when too many are in progress: `limit`, or
        as many as complete in `_TARGET_WAIT` seconds at the recent rate if that is more."""
        now = time.monotonic()
        while self._open and next(iter(self._open.values())) <= now:
            self._open.popitem(last=False)
        in_progress = len(self._open)
        if in_progress >= self._limit and in_progress >= _TARGET_WAIT * self._measured(now):
            return None
        token = next(self._tokens)
        self._open[token] = now + self._expiry
        return token

    def release(self, token: int | None) -> None:
        if token is not None and self._open.pop(token, None) is not None:
            now = time.monotonic()
            self._completed.append(now)
            # Pruned here too, not only when refusing: a gateway that never refuses would
            # otherwise keep the time of every admission it ever completed.
            self._forget_completed_before(now - _RATE_WINDOW)

    def retry_after(self) -> int:
        """Seconds a refused connection should wait: its turn after every earlier refusal's."""
        now = time.monotonic()
        turn = max(now + self._min_retry_after, self._last_turn + 1.0 / self._rate(now))
        self._last_turn = turn
        return max(self._min_retry_after, min(self._max_retry_after, math.ceil(turn - now)))

    def _rate(self, now: float) -> float:
        """The rate to space turns for: from the admissions completed recently."""
        measured = self._measured(now)
        if not measured:
            return _INITIAL_RATE
        return max(1.0, _OPTIMISM * measured)

    def _measured(self, now: float) -> float:
        """Admissions completed per second recently; 0 if none."""
        self._forget_completed_before(now - _RATE_WINDOW)
        if not self._completed:
            return 0.0
        return len(self._completed) / max(1.0, now - self._completed[0])

    def in_progress(self) -> int:
        return len(self._open)

    def _forget_completed_before(self, oldest: float) -> None:
        while self._completed and self._completed[0] < oldest:
            self._completed.popleft()
