"""Tenants of one Huntress account share its rate-limit window across tasks (docs/contract.md §1
Tenants): each Huntress task builds a fresh client, as a task process does, and its limiter starts
from the starts the account's earlier tasks recorded in the billing database, so a task right after
one that filled the window waits instead of being refused.

Real parts only: the sandbox over HTTP enforcing a short window, clients built from Airflow
connections through HttpHook, the steps the DAG's tasks run, a SQLite billing database.
"""

from __future__ import annotations

from datetime import date

import httpx

from billing_sync import steps, store
from billing_sync.huntress import HuntressClient
from tests.helpers.sandbox_setup import small_scenario

ACCOUNT = "huntress_north"  # the connection both tenants' entries name
LIMIT, WINDOW_S = 4, 6  # fewer than the two tenants' Huntress tasks make (3 requests each)
DAY = date(2026, 11, 1)  # the scenario's invoice's
RUN_ID = "scheduled__2026-11-01T00:00:00+00:00"  # every tenant's DAG has the same run ids


def served(huntress_url: str) -> dict[str, int]:
    """The Huntress sandbox's answers by status."""
    return httpx.get(f"{huntress_url}/_sandbox/requests", timeout=10).json()["by_status"]


def huntress_tasks(eng, tenant: str, variable: dict) -> None:
    """`wait_for_invoice` then `extract_huntress` of one tenant's run, each with its own client."""
    ref = steps.resolve(eng, RUN_ID, DAY, variable, {}, tenant)
    found = steps.find_invoice(eng, ref, HuntressClient.from_connection(ACCOUNT))
    assert found is not None
    steps.extract_huntress(eng, found, HuntressClient.from_connection(ACCOUNT))


def test_tenants_of_one_account_never_get_a_429_back_to_back(sandbox_factory, monkeypatch, eng) -> None:
    sb = sandbox_factory(small_scenario(rate=LIMIT, window=WINDOW_S))
    for key, value in sb.connections(huntress_conn_id=ACCOUNT).items():
        monkeypatch.setenv(key, value)

    # north's run is a dry run: it writes nothing to ConnectWise, but its requests spent the window.
    huntress_tasks(eng, "north", {"dry_run": True})
    assert served(sb.huntress_url) == {"200": 3}
    recorded = store.recent_api_calls(eng, steps.HUNTRESS_API, ACCOUNT, within_s=WINDOW_S)
    assert len(recorded) == 3

    huntress_tasks(eng, "west", {})  # 3 more in the same window: one of them must wait
    assert served(sb.huntress_url) == {"200": 6}, "the account refused a request (429)"
    for tenant in ("north", "west"):
        staged = store.read_frame(eng, RUN_ID, "usage", tenant=tenant)
        assert set(staged["organization_id"]) == {1000, 1001, 1002}, tenant
