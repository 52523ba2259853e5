"""The per-account sliding-window rate limit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# --- rate limit, auth ---------------------------------------------------------------------------------


class SlidingWindow:
    """At most `limit` admitted requests in any rolling `window_s`; refused requests do not count.

    After `set_foreign(n)`, n phantom requests a minute (another tool using the same key: the
    reference's limit is per account, docs/contract.md §5 `foreign_requests_per_minute`) arrive evenly
    spaced, 60 / n seconds apart, and are admitted like any request while the window has room.
    They are never counted as requests the sandbox served. Decision: "per minute" is per 60 s of
    wall time whatever `window_s` is (a short test window then holds fewer of them).
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.admitted: deque[float] = deque()
        self.foreign_interval: float | None = None
        self.next_foreign = 0.0

    def set_foreign(self, per_minute: float) -> None:
        """Phantom requests from now on (0: none); the first arrives one interval from now."""
        self.foreign_interval = 60.0 / per_minute if per_minute > 0 else None
        self.next_foreign = self.clock() + (self.foreign_interval or 0.0)

    def _expire(self, now: float) -> None:
        cutoff = now - self.window_s
        while self.admitted and self.admitted[0] <= cutoff:
            self.admitted.popleft()

    def _catch_up(self, now: float) -> None:
        """Admit the phantom requests due by `now`, in time order (each sees the window at its time)."""
        step = self.foreign_interval
        if step is None:
            return
        # Phantoms that arrived a full window ago or earlier can no longer hold a slot: skip them.
        if self.next_foreign < now - self.window_s:
            self.next_foreign += step * ((now - self.window_s - self.next_foreign) // step + 1)
        while self.next_foreign <= now:
            self._expire(self.next_foreign)
            if len(self.admitted) < self.limit:
                self.admitted.append(self.next_foreign)
            self.next_foreign += step

    def admit(self) -> bool:
        now = self.clock()
        self._catch_up(now)
        self._expire(now)
        if len(self.admitted) >= self.limit:
            return False
        self.admitted.append(now)
        return True

    def remaining(self) -> int:
        now = self.clock()
        self._catch_up(now)
        self._expire(now)
        return self.limit - len(self.admitted)

    def seconds_until_free(self) -> float:
        return max(0.0, self.admitted[0] + self.window_s - self.clock()) if self.admitted else 0.0
