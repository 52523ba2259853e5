"""The Huntress limiter counts requests other processes spent in the per-account window: those the
server reports, and those the account's earlier tasks recorded (seeded in wall-clock seconds)."""

from __future__ import annotations

import threading
import time

import pytest

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


# --- seeded with the starts of the account's earlier tasks (billing_api_calls, steps) ------------

WALL = 1_780_000_000.123  # the wall clock at FakeClock 0: any epoch, far from the monotonic one


def limiter(limit: int, clock: FakeClock) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        limit, window=10, margin=0.0, clock=clock, sleep=clock.sleep, wall_clock=lambda: WALL + clock.now
    )


def test_seeded_starts_take_slots_until_they_leave_the_window() -> None:
    clock = FakeClock()
    clock.now = 100.0
    lim = limiter(3, clock)
    wall = WALL + clock.now
    lim.seed([wall - 6, wall - 4, wall - 2])  # an earlier task filled the window 6, 4 and 2 s ago
    lim.acquire()  # waits for the oldest to leave: 4 s from now
    assert clock.now == pytest.approx(104.0)
    lim.acquire()
    assert clock.now == pytest.approx(106.0)


def test_starts_read_back_as_the_wall_clock_seconds_they_came_with() -> None:
    clock = FakeClock()
    lim = limiter(5, clock)
    seeded = WALL - 6.789  # read back exactly, so a store can tell it from a new start by value
    lim.seed([seeded, WALL - 60])  # the second left the window long ago: not counted
    lim.acquire()
    clock.sleep(3)
    lim.acquire()
    assert lim.starts() == [seeded, WALL, WALL + 3]
    clock.sleep(4)  # the seeded start is now 13.8 s old
    assert lim.starts() == [WALL, WALL + 3]


def test_seeding_twice_counts_each_start_once_and_phantoms_read_back() -> None:
    clock = FakeClock()
    lim = limiter(4, clock)
    lim.seed([WALL - 1, WALL - 1])  # two starts that share a stamp (a 429's phantoms)
    lim.seed([WALL - 1, WALL - 1, WALL - 2])  # what the record says next time: one more start
    assert lim.starts() == [WALL - 2, WALL - 1, WALL - 1]
    assert lim.rate_limited() == pytest.approx(8.0)  # the window is full: the oldest leaves in 8 s
    assert lim.starts() == [WALL - 2, WALL - 1, WALL - 1, WALL]


def test_a_start_stamped_ahead_of_this_clock_counts_from_now() -> None:
    clock = FakeClock()
    lim = limiter(1, clock)
    lim.seed([WALL + 30])  # another machine's clock is ahead
    lim.acquire()
    assert clock.now == pytest.approx(10.0)  # a full window from now, not 40 s


def test_seeding_and_acquiring_from_threads_never_exceed_the_limit() -> None:
    """The limiter is shared by a client's threads: seeding while they acquire keeps its bound."""
    lim = SlidingWindowLimiter(50, window=60)
    now = time.time()
    threads = [threading.Thread(target=lim.acquire) for _ in range(30)]
    threads.append(threading.Thread(target=lim.seed, args=([now - 1.0 - i / 100 for i in range(20)],)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(lim.starts()) == 50
