"""The Huntress limiter counts requests other processes spent in the per-account window."""

from __future__ import annotations

from billing_sync.http import SlidingWindowLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_foreign_requests_reported_by_the_server_take_slots() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter(5, window=10, margin=0.0, clock=clock, sleep=clock.sleep)
    lim.acquire()
    lim.observe(5, remaining=2)  # the server counts 3: ours and two made elsewhere
    for _ in range(2):
        lim.acquire()
    assert clock.now == 0.0
    lim.acquire()  # the window is full (1 + 2 foreign + 2): wait for the oldest to leave
    assert clock.now >= 10.0


def test_own_requests_and_other_limits_add_nothing() -> None:
    clock = FakeClock()
    lim = SlidingWindowLimiter(5, window=10, margin=0.0, clock=clock, sleep=clock.sleep)
    for sent in range(1, 4):
        lim.acquire()
        lim.observe(5, remaining=5 - sent)  # the server counts exactly what we sent
    lim.observe(60, remaining=0)  # a server with another limit: not comparable
    for _ in range(2):
        lim.acquire()
    assert clock.now == 0.0
