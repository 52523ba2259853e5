"""Preflight against the sandbox (issue 22 §3): `python -m billing_sync preflight` under the role
Huntress documents for its billing sync passes; without Edit on agreements, or without Product
Catalog Inquire, it fails with the line that says what to change; a managed account answering 403
fails its own line. Read-only: the sandbox records no write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from billing_sync.__main__ import main
from tests.helpers.sandbox_setup import HUNTRESS_ROLE, ROLE_VARIABLE, role_scenario, use_connections

TODAY = "2026-11-20"  # the coming billing date is 2026-12-01: no invoice yet, so the newest (2026-11-01)


@pytest.fixture
def start(sandbox_factory, monkeypatch):
    def started(data: dict[str, Any]) -> Any:
        sb = sandbox_factory(data)
        use_connections(monkeypatch, sb)
        monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", json.dumps(ROLE_VARIABLE))
        monkeypatch.delenv("BILLING_SYNC_TENANTS_FILE", raising=False)
        return sb

    return started


def preflight(capsys) -> tuple[int, dict[str, tuple[str, str]]]:
    code = main(["preflight", "--today", TODAY])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        for status in (" ok ", " fail ", " unverified "):
            if status in line:
                name, _, note = line.partition(status)
                rows[name.strip()] = (status.strip(), note.strip())
                break
    return code, rows


def writes(sb: Any) -> int:
    counts = httpx.get(f"{sb.connectwise_url}/_sandbox/requests", timeout=10).json()["by_route"]
    return sum(n for route, n in counts.items() if not route.startswith("GET"))


def test_the_role_huntress_documents_passes(start, capsys) -> None:
    sb = start(role_scenario(HUNTRESS_ROLE))
    code, rows = preflight(capsys)
    assert code == 0, rows
    assert (
        rows["Huntress invoice"][0] == "ok"
        and "invoice 5001 created 2026-11-01" in rows["Huntress invoice"][1]
    )
    assert rows["Huntress account 7"] == ("ok", "1 organizations readable")
    assert rows["Catalog item HUNTRESS-EDR"][0] == rows["Agreement type Managed Services"][0] == "ok"
    assert rows["Finance → Agreements: Edit"] == ("ok", "All")
    assert rows["Procurement → Product Catalog: Inquire"] == ("ok", "All")
    assert (
        rows["Finance → Agreements: Add"][0] == "ok" and "needs Add" in rows["Finance → Agreements: Add"][1]
    )
    assert "demomsp" in rows["ConnectWise connection connectwise_default"][1]
    assert writes(sb) == 0


def test_without_edit_it_fails_saying_what_to_change(start, capsys) -> None:
    role = json.loads(json.dumps(HUNTRESS_ROLE))
    role["levels"]["finance/agreements"]["edit"] = "none"
    start(role_scenario(role))
    code, rows = preflight(capsys)
    assert code == 1
    status, note = rows["Finance → Agreements: Edit"]
    assert status == "fail" and "set Finance → Agreements: Edit to All" in note
    assert [name for name, (s, _) in rows.items() if s == "fail"] == ["Finance → Agreements: Edit"]


def test_without_catalog_inquire_it_fails_saying_what_to_change(start, capsys) -> None:
    role = json.loads(json.dumps(HUNTRESS_ROLE))
    role["levels"]["procurement/catalog"]["inquire"] = "none"
    start(role_scenario(role))
    code, rows = preflight(capsys)
    assert code == 1
    assert rows["Procurement → Product Catalog: Inquire"] == (
        "fail",
        "is None: set Procurement → Product Catalog: Inquire to All "
        "(ConnectWise: System → Security Roles → the API member's role)",
    )
    assert (
        rows["Catalog items"][0] == "fail" and "Product Catalog: Inquire to All" in rows["Catalog items"][1]
    )


def test_a_refused_account_a_missing_item_and_a_wrong_type_fail_their_lines(
    start, capsys, monkeypatch
) -> None:
    start(role_scenario(HUNTRESS_ROLE, forbidden_account=True))
    variable = {
        **ROLE_VARIABLE,
        "products": {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR"},
        "agreement_types": ["managed services"],
    }
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", json.dumps(variable))
    code, rows = preflight(capsys)
    assert code == 1
    assert rows["Huntress account 7"][0] == "fail" and "403" in rows["Huntress account 7"][1]
    assert rows["Catalog item HUNTRESS-ITDR"][0] == "fail"
    assert "spells it 'Managed Services'" in rows["Agreement type managed services"][1]


# A fresh interpreter and a sandbox, as an operator runs it: seconds of a CPU, so `make test` runs
# it, the fast loop does not.
@pytest.mark.integration
def test_the_command_line(sandbox_factory, tmp_path) -> None:
    """`python -m billing_sync preflight` as an operator runs it: exit 0, the table on stdout."""
    sb = sandbox_factory(role_scenario(HUNTRESS_ROLE))
    env = {
        **os.environ,
        **sb.connections(),
        "AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG": json.dumps(ROLE_VARIABLE),
    }
    env.pop("BILLING_SYNC_TENANTS_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "billing_sync", "preflight", "--tenant", "default"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Finance → Agreements: Edit" in done.stdout and "Nothing fails" in done.stdout
    assert "cw_private_preflight" not in done.stdout + done.stderr
    print(done.stdout)
