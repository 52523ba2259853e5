"""Huntress sandbox: the sliding-window rate limit and its faults."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.sandbox import API_KEY, API_SECRET, make_scenario
from tests.sandbox.huntress import get_json

# --- rate limit ---------------------------------------------------------------------------------------------


def test_sliding_window_rate_limit(sandbox_factory: Any) -> None:
    window = 1.0
    sb = sandbox_factory(make_scenario(rate_limit_per_minute=5, rate_limit_window_s=window))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET)) as api:
        first = time.monotonic()
        remaining = [api.get("/v1/account").headers["x-huntress-api-call-remaining"] for _ in range(5)]
        assert remaining == ["4", "3", "2", "1", "0"]
        refused = api.get("/v1/account")
        assert refused.status_code == 429 and refused.json()["status"] == 429
        assert refused.headers["x-huntress-api-call-remaining"] == "0"
        # Not promised by Huntress: clients must wait out the window.
        assert "retry-after" not in refused.headers
        assert api.get("/_sandbox/state").status_code == 200  # admin routes are outside the limit
        time.sleep(max(0.0, first + window - time.monotonic()) + 0.05)
        assert api.get("/v1/account").status_code == 200
        log = api.get("/_sandbox/requests", params={"log": 1}).json()["log"]
    admitted = [e["time"] for e in log if e["status"] == "200"]
    assert len(admitted) == 6 and [e["status"] for e in log].count("429") == 1
    # No rolling window ever held more than the limit.
    assert all(sum(1 for t in admitted if start <= t < start + window) <= 5 for start in admitted)


def test_rate_limit_retry_after_can_be_switched_on(sandbox_factory: Any) -> None:
    sb = sandbox_factory(
        make_scenario(rate_limit_per_minute=1, rate_limit_window_s=30, rate_limit_retry_after=True)
    )
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET)) as api:
        assert api.get("/v1/account").status_code == 200
        refused = api.get("/v1/account")
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 30
        # Refused requests do not extend the window, and reset starts a fresh one.
        assert api.post("/_sandbox/reset").status_code == 200
        assert api.get("/v1/account").status_code == 200


# --- rate-limit faults: bare 429s, another tool on the same key -------------------------------------------------


def test_rate_limit_headers_false_leaves_429s_bare(sandbox_factory: Any) -> None:
    sb = sandbox_factory(
        make_scenario(rate_limit_per_minute=2, rate_limit_window_s=60, rate_limit_retry_after=True)
    )
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as api:
        effective = api.post("/_sandbox/faults", json={"rate_limit_headers": False}).json()
        assert (effective["rate_limit_headers"], effective["foreign_requests_per_minute"]) == (False, 0)
        ok = api.get("/v1/account")
        assert ok.status_code == 200 and ok.headers["x-huntress-api-call-remaining"] == "1"  # 200s keep them
        api.get("/v1/account")
        refused = api.get("/v1/account")
        assert refused.status_code == 429 and refused.json()["status"] == 429
        assert not [h for h in refused.headers if h.startswith("x-huntress") or h == "retry-after"]
        # Injected 429s are bare too; with the fault cleared, rate-limit 429s carry the headers again.
        api.post("/_sandbox/faults", json={"rate_limit_headers": False, "status_rate": {"429": 1.0}})
        assert "retry-after" not in api.get("/v1/account").headers
        api.post("/_sandbox/faults", json={}).raise_for_status()
        again = api.get("/v1/account")
        assert again.status_code == 429 and "x-huntress-api-call-limit" in again.headers
        assert "retry-after" in again.headers


def test_foreign_requests_fill_the_same_window() -> None:
    from billing_sandbox.huntress import SlidingWindow

    now = [0.0]
    window = SlidingWindow(10, 10, clock=lambda: now[0])
    window.set_foreign(60)  # one a second, from t=1
    now[0] = 3.5
    assert window.remaining() == 7 and window.admit()  # phantoms at 1, 2, 3; ours at 3.5
    now[0] = 10.5
    assert window.remaining() == 0 and not window.admit()  # 1..10 and ours: full
    now[0] = 11.2  # the phantom at 1 left at 11, and the one at 11 took its slot (the one at 10 was refused)
    assert window.remaining() == 0
    now[0] = 13.6  # phantoms at 12 and 13 took the slots of 2 and 3; ours (3.5) has left
    assert window.remaining() == 1
    window.set_foreign(0)
    now[0] = 15.0  # 4 and 5 left, nothing came: 6..9, 11..13 remain
    assert window.remaining() == 3 and window.admit()
    # After a long quiet spell only a window's worth of phantoms is replayed.
    window.set_foreign(600)
    now[0] = 10_000.0
    assert window.remaining() == 0


def test_foreign_requests_over_http_and_refused_keys(sandbox_factory: Any) -> None:
    sb = sandbox_factory(make_scenario(rate_limit_per_minute=5, rate_limit_window_s=60))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as api:
        api.post(
            "/_sandbox/faults", json={"foreign_requests_per_minute": 6000}
        ).raise_for_status()  # one per 10 ms
        time.sleep(0.2)
        assert api.get("/v1/account").status_code == 429  # another tool took the whole window
        assert get_json(api, "/_sandbox/state")["rate_limit"]["remaining"] == 0
        assert api.get("/_sandbox/requests").json()["total"] == 1  # phantoms are not requests it served
        assert api.post("/_sandbox/faults", json={"foreign_requests_per_minute": -1}).status_code == 400
        api.post("/_sandbox/reset").raise_for_status()
        assert api.get("/v1/account").status_code == 200
    # Only the Huntress server takes these keys.
    for body in ({"rate_limit_headers": False}, {"foreign_requests_per_minute": 1}):
        assert httpx.post(f"{sb.connectwise_url}/_sandbox/faults", json=body, timeout=10).status_code == 400
