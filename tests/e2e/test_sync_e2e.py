"""A generated scenario → `dag.test()` → ConnectWise holds exactly the quantities this test expects.

The expectation is tests/helpers/oracle.py's: computed from the scenario file alone, by a
deliberately plain re-statement of the contract's rules.
"""

from __future__ import annotations

import copy
import json
from datetime import date

import httpx
import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from tests.helpers.oracle import BILLING_DATE, AmbiguousInvoice, expected_state

pytestmark = pytest.mark.e2e


def cw_quantities(sb) -> dict[int, float]:
    state = httpx.get(f"{sb.connectwise_url}/_sandbox/state", timeout=30).json()
    return {a["id"]: a["quantity"] for a in state["additions"]}


def requests_of(sb) -> dict:
    return httpx.get(f"{sb.connectwise_url}/_sandbox/requests", timeout=30).json()


def patches(sb) -> int:
    return sum(n for route, n in requests_of(sb)["by_route"].items() if route.startswith("PATCH"))


def billing_db(tmp_path):
    return sa.create_engine(f"sqlite:///{tmp_path / 'billing.db'}")


@pytest.fixture
def scenario():
    return generate(40, 7)


def test_sync_end_to_end(sandbox_factory, run_dag, tmp_path, scenario):
    sb = sandbox_factory(scenario)
    want, reasons = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    before = cw_quantities(sb)
    assert want != before, "the scenario must need changes"

    dr = run_dag(sb, BILLING_DATE)
    assert dr.state == "success"
    assert cw_quantities(sb) == want

    eng = billing_db(tmp_path)
    with eng.connect() as c:
        run = c.execute(sa.text("select * from billing_runs")).mappings().one()
        quarantined = c.execute(
            sa.text("select sync_key, reason_code from billing_quarantine where status = 'open'")
        ).all()
        ledger = c.execute(sa.text("select sync_key, action from billing_changes")).all()
    counts = json.loads(run["counts"])
    assert run["mode"] == "push" and run["status"] == "success"
    outcome_total = sum(
        counts[k] for k in ("updated", "unchanged", "planned", "not_applicable", "quarantined")
    )
    assert outcome_total == counts["total"]
    assert (
        sum(
            v
            for k, v in counts.items()
            if k
            not in ("updated", "unchanged", "planned", "not_applicable", "quarantined", "total", "change")
        )
        == counts["quarantined"]
    )
    keys = [k for k, _ in quarantined]
    assert len(keys) == len(set(keys)) == counts["quarantined"], "one open quarantine row per key"
    assert {r for _, r in quarantined} == reasons
    assert counts["updated"] == sum(1 for i in want if want[i] != before[i])
    assert len(ledger) == len({k for k, _ in ledger})
    assert set(keys).isdisjoint({k for k, a in ledger if a in ("updated", "unchanged")})

    # Same billing date again: nothing left to write.
    patches_before = patches(sb)
    dr2 = run_dag(sb, BILLING_DATE)
    assert dr2.state == "success"
    assert patches(sb) == patches_before
    assert cw_quantities(sb) == want
    with eng.connect() as c:
        open_rows = c.execute(
            sa.text("select count(*) from billing_quarantine where status = 'open'")
        ).scalar()
    assert open_rows == len(keys), "a re-run must not duplicate open quarantine rows"


def test_dry_run_writes_nothing(sandbox_factory, run_dag, tmp_path, scenario):
    sb = sandbox_factory(scenario)
    before = cw_quantities(sb)
    dr = run_dag(sb, BILLING_DATE, {"dry_run": True})
    assert dr.state == "success"
    assert patches(sb) == 0
    assert cw_quantities(sb) == before
    with billing_db(tmp_path).connect() as c:
        run = c.execute(sa.text("select mode, counts from billing_runs")).one()
        actions = {a for (a,) in c.execute(sa.text("select distinct action from billing_changes"))}
    assert run.mode == "dry_run"
    assert json.loads(run.counts)["planned"] > 0 and "updated" not in actions


def test_historical_billing_date_reports_only(sandbox_factory, run_dag, scenario):
    sb = sandbox_factory(scenario)
    older = sorted({i["created_at"][:10] for i in scenario["huntress"]["invoices"]})[0]
    dr = run_dag(sb, older)
    assert dr.state == "success"
    assert patches(sb) == 0


def test_account_invoice_source_reads_actual_usages(sandbox_factory, run_dag, monkeypatch, scenario):
    """Non-reseller accounts: usage from /v1/organizations/{id}, one request per organization."""
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", json.dumps({"invoice_source": "account"}))
    sb = sandbox_factory(scenario)
    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    dr = run_dag(sb, BILLING_DATE)
    assert dr.state == "success"
    served = httpx.get(f"{sb.huntress_url}/_sandbox/requests", timeout=30).json()["by_route"]
    assert served.get("GET /v1/organizations/{id}") == len(scenario["huntress"]["organizations"])
    assert "GET /v1/reseller/invoices/{id}/organization_usage_line_items" not in served
    assert cw_quantities(sb) == want


# -- a reseller's invoice: managed accounts, invoices that do not stand, absent counts (docs/contract.md §2, §5) --


def reseller_scenario(scenario: dict) -> dict:
    """The generated scenario, with some organizations moved to managed accounts (one with a key an
    own organization also carries), voided and draft invoices of the billing date with other counts,
    zero itdr counts left out and zero siem counts sent as null."""
    s = copy.deepcopy(scenario)
    h = s["huntress"]
    newest = max(h["invoices"], key=lambda i: i["created_at"])
    on_invoice = {line["organization_id"] for line in newest["lines"]}
    billed = [o for o in h["organizations"] if o["id"] in on_invoice]
    west, north, own_twin = billed[:4], billed[4:6], billed[6]
    north[0]["key"] = own_twin["key"]  # keys are unique within an account only
    moved = {o["id"] for o in west + north}
    h["organizations"] = [o for o in h["organizations"] if o["id"] not in moved]
    h["managed_accounts"] = [
        {"id": 7, "name": "West Client", "subdomain": "westclient", "organizations": west},
        {"id": 8, "name": "North Client", "subdomain": "northclient", "organizations": north},
        {
            "id": 9,
            "name": "Not Billed",
            "subdomain": "notbilled",
            "organizations": [{"id": 9901, "name": "Idle Co", "key": "idle"}],
        },
    ]
    for line in newest["lines"]:
        usage = line["actual_usage"]
        if usage.get("itdr") == 0:
            del usage["itdr"]
        if usage.get("siem") == 0:
            usage["siem"] = None
    for invoice_id, status in ((5998, "voided"), (5999, "draft")):
        lines = [
            {
                **line,
                "id": line["id"] + invoice_id * 100,
                "actual_usage": {**line["actual_usage"], "edr": 999},
            }
            for line in newest["lines"]
        ]
        h["invoices"].append(
            {
                **newest,
                "id": invoice_id,
                "status": status,
                "lines": lines,
                "created_at": newest["created_at"].replace("T06", "T09"),
                "quantity": 999 * len(lines),
            }
        )
    return s


def test_reseller_invoice_spanning_managed_accounts(sandbox_factory, run_dag, tmp_path, scenario):
    scn = reseller_scenario(scenario)
    sb = sandbox_factory(scn)
    want, reasons = expected_state(scn, date.fromisoformat(BILLING_DATE))
    assert want != cw_quantities(sb), "the scenario must need changes"

    dr = run_dag(sb, BILLING_DATE)
    assert dr.state == "success"
    assert cw_quantities(sb) == want
    with billing_db(tmp_path).connect() as c:
        run = c.execute(sa.text("select invoice_id, mode from billing_runs")).one()
        quarantined = {
            r
            for (r,) in c.execute(sa.text("select reason_code from billing_quarantine where status = 'open'"))
        }
    assert (run.invoice_id, run.mode) == (5003, "push")  # the voided and draft invoices never bill
    assert quarantined == reasons
    log = httpx.get(f"{sb.huntress_url}/_sandbox/requests", params={"log": 1}, timeout=30).json()["log"]
    read = sorted(e["path"] for e in log if e["route"] == "GET /v1/accounts/{account_id}/organizations")
    assert read == [
        "/v1/accounts/7/organizations",
        "/v1/accounts/8/organizations",
    ]  # not 9: not on the invoice


def test_two_standing_invoices_for_the_date_fail_the_run_for_good(sandbox_factory, run_dag, scenario, capfd):
    from tests.proof.conftest import task_states

    scn = copy.deepcopy(scenario)
    h = scn["huntress"]
    newest = max(h["invoices"], key=lambda i: i["created_at"])
    lines = [{**line, "id": line["id"] + 500_000} for line in newest["lines"]]
    h["invoices"].append(
        {
            **newest,
            "id": 5004,
            "status": "open",
            "lines": lines,
            "created_at": newest["created_at"].replace("T06", "T08"),
        }
    )
    with pytest.raises(AmbiguousInvoice):
        expected_state(scn, date.fromisoformat(BILLING_DATE))
    sb = sandbox_factory(scn)
    before = cw_quantities(sb)

    dr = run_dag(sb, BILLING_DATE)
    assert dr.state == "failed"
    assert task_states(dr)["wait_for_invoice"] == ("failed", 1), "permanent: no retry, no more pokes"
    output = capfd.readouterr()
    assert (
        "2 standing Huntress usage invoices are of the billing date 2026-11-01: 5003 ("
        in output.out + output.err
    )
    assert "5004 (created 2026-11-01T08:00:00Z, open)" in output.out + output.err
    assert patches(sb) == 0 and cw_quantities(sb) == before

    # Pinning one of them runs the date with it.
    dr = run_dag(sb, BILLING_DATE, {"invoice_id": 5003})
    assert dr.state == "success"
    assert cw_quantities(sb) == expected_state(scenario, date.fromisoformat(BILLING_DATE))[0]
