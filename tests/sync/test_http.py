from __future__ import annotations

from billing_sync.http import RetryPolicy, SlidingWindowLimiter, parse_retry_after


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_limiter_never_exceeds_limit_in_any_window():
    clock = FakeClock()
    lim = SlidingWindowLimiter(5, window=10, margin=0.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(23):
        lim.acquire()
        starts.append(clock.now)
        clock.now += 0.3
    for i, t in enumerate(starts):
        assert sum(1 for u in starts if t <= u < t + 10) <= 5, f"window at {i} over the limit"
    assert starts[5] >= starts[0] + 10


def test_retry_after_and_backoff():
    p = RetryPolicy(base_delay=1, max_delay=8)
    assert p.delay(1, 3.0) == 3.0
    assert 0.5 <= p.delay(1, None) <= 1
    assert 4 <= p.delay(10, None) <= 8
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None
