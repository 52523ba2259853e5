from __future__ import annotations

import json

import pytest
import requests

from billing_sync.http import ApiError, ApiSession, RetryPolicy, SlidingWindowLimiter, parse_retry_after


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


# --- 429s with no headers at all (reference: "Rate-limit answers") -----------------------------------


def response(status: int, body: object = None, headers: dict | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body if body is not None else {"ok": True}).encode()
    resp._content_consumed = True  # as a streamed response reads once its body is in
    resp.headers.update({"Content-Type": "application/json", **(headers or {})})
    return resp


class FakeServer:
    """A session whose answers are scripted; records when (on the fake clock) each request came."""

    def __init__(self, clock: FakeClock, answers: list[requests.Response] | None = None, default: int = 200):
        self.clock, self.answers, self.default, self.times = clock, list(answers or []), default, []

    def request(self, method, url, **kw):
        self.times.append(self.clock.now)
        return self.answers.pop(0) if self.answers else response(self.default)


def huntress_session(
    clock: FakeClock,
    server: FakeServer,
    *,
    limit: int = 5,
    window: float = 10,
    attempts: int = 2,
    max_wait: float | None = 100,
) -> ApiSession:
    limiter = SlidingWindowLimiter(limit, window=window, margin=0.0, clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(attempts=attempts, base_delay=0.01, max_rate_limit_wait=max_wait)
    return ApiSession(
        "Huntress", lambda: server, "https://api.example", retry=retry, limiter=limiter, sleep=clock.sleep
    )


def test_headerless_429_waits_until_the_oldest_known_start_leaves_the_window():
    clock = FakeClock()
    server = FakeServer(clock)
    api = huntress_session(clock, server)
    for _ in range(3):  # three requests at t = 0, 1, 2
        api.request("GET", "v1/account", label="/v1/account")
        clock.now += 1
    server.answers = [response(429, {"status": 429, "error": "Rate limit exceeded"})]  # no headers at all
    api.request("GET", "v1/organizations", label="/v1/organizations")
    # Refused at t=3: the window counts as full, so the retry waits for the start at t=0 to leave.
    assert server.times[-2:] == [3, 10]
    assert api.stats.retries["HTTP 429"] == 1


def test_headerless_429_with_no_known_start_waits_a_full_window():
    clock = FakeClock()
    server = FakeServer(clock, [response(429)])
    limiter = SlidingWindowLimiter(5, window=10, margin=0.0, clock=clock, sleep=clock.sleep)
    assert limiter.rate_limited() == 10  # nothing known: a full window
    api = huntress_session(clock, server)
    api.request("GET", "v1/account", label="/v1/account")
    assert server.times == [0, 10]  # its own refused start is the only one it knows


def test_429s_do_not_spend_the_retry_budget_but_the_wait_is_bounded():
    clock = FakeClock()
    server = FakeServer(clock, [response(429) for _ in range(5)])
    api = huntress_session(clock, server, attempts=2, max_wait=100)
    api.request("GET", "v1/account", label="/v1/account")  # 5 refusals, 2 attempts: still fine
    assert len(server.times) == 6 and clock.now <= 100

    clock = FakeClock()
    server = FakeServer(clock, default=429)
    api = huntress_session(clock, server, max_wait=35)
    with pytest.raises(ApiError) as err:
        api.request("GET", "v1/organizations", label="/v1/organizations")
    text = str(err.value)
    assert err.value.status == 429
    assert text.startswith(
        "Huntress GET /v1/organizations is still rate limited (HTTP 429) after waiting 30s"
    )
    assert "max_rate_limit_wait_s=35" in text
    assert clock.now <= 35 and len(server.times) == 4  # t = 0, 10, 20, 30; the next wait would pass 35 s


def test_retry_after_is_the_servers_word_and_counts_toward_the_bound():
    clock = FakeClock()
    server = FakeServer(
        clock, [response(429, headers={"Retry-After": "3"}), response(429, headers={"Retry-After": "0"})]
    )
    api = huntress_session(clock, server, max_wait=100)
    api.request("GET", "v1/account", label="/v1/account")
    # 3 s as told; then "0" (which could spin) waits for the window: the starts at 0 and 3 are known.
    assert server.times == [0, 3, 10]


def test_without_the_bound_a_429_is_retried_like_a_5xx():
    clock = FakeClock()
    server = FakeServer(clock, default=429)
    api = huntress_session(clock, server, attempts=3, max_wait=None)
    with pytest.raises(ApiError, match=r"Huntress GET /v1/account failed after 3 attempts: HTTP 429"):
        api.request("GET", "v1/account", label="/v1/account")
    assert len(server.times) == 3
