"""A generated scenario → `dag.test()` → ConnectWise holds exactly the quantities this test expects.

The expectation is computed here, from the scenario file alone, by a deliberately plain
re-statement of the contract's rules (loops over dicts, no pandas, nothing of billing_sync), so a
bug in the product's reconciliation cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import date, datetime

import httpx
import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate

pytestmark = pytest.mark.e2e

PRODUCTS = {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR", "sat": "HUNTRESS-SAT", "siem": "HUNTRESS-SIEM"}
BILLING_DATE = "2026-11-01"


def _norm(s: str | None) -> str | None:
    if not isinstance(s, str):
        return None
    folded = "".join(c for c in unicodedata.normalize("NFKC", s).casefold() if c.isalnum() or c.isspace())
    return " ".join(folded.split()) or None


def _when(s: str | None) -> date | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).date() if s else None


def _count(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000_000 else None


def expected_state(scenario: dict, billing: date) -> tuple[dict[int, float], set[str]]:
    """(addition id → quantity after the sync, the reason codes that must be quarantined)."""
    h, cw = scenario["huntress"], scenario["connectwise"]
    invoice = max((i for i in h["invoices"] if _when(i["created_at"]) == billing), key=lambda i: i["created_at"])
    companies = [c for c in cw["companies"] if not c.get("deletedFlag")]
    orgs = {o["id"]: o for o in h["organizations"]}
    catalog = {p["id"]: p["identifier"] for p in cw["catalog"]}
    reasons: set[str] = set()

    def company_of(org_id: int) -> tuple[int | None, str | None]:
        """(company id, None) or (None, the reason it has none)."""
        org = orgs.get(org_id, {})
        key = (org.get("key") or "").lower()
        by_key = [c["id"] for c in companies if key and (c.get("identifier") or "").lower() == key]
        name = _norm(org.get("name"))
        by_name = [c["id"] for c in companies if name and _norm(c["name"]) == name]
        for found in (by_key, by_name):
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                return None, "ambiguous_company_match"
        return None, "unmapped_organization"

    lines_per_org: dict[int, int] = {}
    for line in invoice["lines"]:
        lines_per_org[line["organization_id"]] = lines_per_org.get(line["organization_id"], 0) + 1
    usage: dict[tuple[int, str], int | None] = {}
    for line in invoice["lines"]:
        company, why = company_of(line["organization_id"])
        for product in PRODUCTS:
            value = _count((line.get("actual_usage") or {}).get(product))
            if lines_per_org[line["organization_id"]] > 1:
                value = None  # which of the duplicate lines is right cannot be known
            if company is None:
                if value != 0:
                    reasons.add(why)
                continue
            key = (company, product)
            usage[key] = None if value is None or (key in usage and usage[key] is None) else usage.get(key, 0) + value

    live: dict[tuple[int, str], list[dict]] = {}
    quantities: dict[int, float] = {}
    for ag in cw["agreements"]:
        for add in ag.get("additions", []):
            quantities[add["id"]] = float(add["quantity"]) if _count(add["quantity"]) is not None else add["quantity"]
        if ag.get("cancelledFlag") or ag.get("agreementStatus", "Active") != "Active":
            continue
        for add in ag.get("additions", []):
            cancelled, effective = _when(add.get("cancelledDate")), _when(add.get("effectiveDate"))
            if (cancelled and cancelled <= billing) or not effective or effective > billing:
                continue
            if add.get("additionStatus", "Active") != "Active":
                continue
            ident = catalog.get(add["product_id"])
            product = next((p for p, i in PRODUCTS.items() if i == ident), None)
            if product:
                live.setdefault((ag["company_id"], product), []).append(add)

    expected = dict(quantities)
    on_invoice = {company for company, _ in usage}
    if any(company not in on_invoice for company, _ in live):
        reasons.add("missing_from_invoice")
    for key, qty in usage.items():
        adds = live.get(key, [])
        if qty is None:
            reasons.add("invalid_usage")
        elif len(adds) > 1:
            reasons.add("duplicate_addition")
        elif not adds:
            if qty > 0:
                reasons.add("no_live_addition")
        else:
            old = float(adds[0]["quantity"])
            delta = abs(qty - old)
            if (delta > 10 and delta > 0.5 * old) or (qty == 0 and old > 0):
                reasons.add("change_exceeds_limit")
            else:
                expected[adds[0]["id"]] = float(qty)
    return expected, reasons


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
        quarantined = c.execute(sa.text(
            "select sync_key, reason_code from billing_quarantine where status = 'open'")).all()
        ledger = c.execute(sa.text("select sync_key, action from billing_changes")).all()
    counts = json.loads(run["counts"])
    assert run["mode"] == "push" and run["status"] == "success"
    outcome_total = sum(counts[k] for k in ("updated", "unchanged", "planned", "not_applicable", "quarantined"))
    assert outcome_total == counts["total"]
    assert sum(v for k, v in counts.items() if k not in ("updated", "unchanged", "planned", "not_applicable",
                                                          "quarantined", "total", "change")) == counts["quarantined"]
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
        open_rows = c.execute(sa.text("select count(*) from billing_quarantine where status = 'open'")).scalar()
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
