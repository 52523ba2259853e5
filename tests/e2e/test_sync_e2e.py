"""A generated scenario → `dag.test()` → ConnectWise holds exactly the quantities this test expects.

The expectation is computed here, from the scenario file alone, by a deliberately plain
re-statement of the contract's rules (loops over dicts, no pandas, nothing of billing_sync), so a
bug in the product's reconciliation cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from datetime import date, datetime, timedelta

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


class AmbiguousInvoice(Exception):
    """Two standing invoices for the billing date: the run must fail naming them (docs/contract.md §2)."""


def invoice_of(invoices: list[dict], billing: date) -> dict:
    """The standing usage invoice created on the date, else the newest of the 3 days before."""
    standing = [
        i
        for i in invoices
        if i["status"] not in ("voided", "full_refund", "draft") and i.get("has_usage", bool(i["lines"]))
    ]
    chosen = [i for i in standing if _when(i["created_at"]) == billing]
    if not chosen:
        earlier = [i for i in standing if billing - timedelta(days=3) <= _when(i["created_at"]) < billing]
        newest = max((_when(i["created_at"]) for i in earlier), default=None)
        chosen = [i for i in earlier if _when(i["created_at"]) == newest]
    if len(chosen) > 1:
        raise AmbiguousInvoice(sorted(i["id"] for i in chosen))
    if not chosen:
        raise LookupError(f"no invoice for {billing}")
    return chosen[0]


def expected_state(scenario: dict, billing: date) -> tuple[dict[int, float], set[str]]:
    """(addition id → quantity after the sync, the reason codes that must be quarantined)."""
    h, cw = scenario["huntress"], scenario["connectwise"]
    invoice = invoice_of(h["invoices"], billing)
    companies = [c for c in cw["companies"] if not c.get("deletedFlag")]
    # The own account's organizations, and those of each managed account the invoice names.
    account_of = {o["id"]: h["account"]["id"] for o in h["organizations"]}
    managed = {
        o["id"]: (a["id"], o) for a in h.get("managed_accounts", []) for o in a.get("organizations", [])
    }
    named = {
        managed[line["organization_id"]][0] for line in invoice["lines"] if line["organization_id"] in managed
    }
    orgs = {o["id"]: o for o in h["organizations"]}
    for org_id, (account, org) in managed.items():
        if account in named:
            orgs[org_id], account_of[org_id] = org, account
    # Keys are unique within an account only: one carried in two accounts is no key match.
    accounts_of_key: dict[str, set[int]] = {}
    for org_id, org in orgs.items():
        if org.get("key"):
            accounts_of_key.setdefault(org["key"].lower(), set()).add(account_of[org_id])
    catalog = {p["id"]: p["identifier"] for p in cw["catalog"]}
    reasons: set[str] = set()

    def company_of(org_id: int) -> tuple[int | None, str | None]:
        """(company id, None) or (None, the reason it has none)."""
        org = orgs.get(org_id, {})
        key = (org.get("key") or "").lower()
        key = key if len(accounts_of_key.get(key, ())) <= 1 else ""
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
    # Per (company, product): the sum of the counts, whether one is bad, whether one is absent or null.
    usage: dict[tuple[int, str], dict] = {}
    for line in invoice["lines"]:
        company, why = company_of(line["organization_id"])
        counts = line.get("actual_usage")
        for product in PRODUCTS:
            absent = counts is None or (isinstance(counts, dict) and counts.get(product) is None)
            value = _count(counts.get(product)) if isinstance(counts, dict) else None
            bad = (value is None and not absent) or lines_per_org[line["organization_id"]] > 1
            if company is None:
                if bad or (value or 0) != 0:  # absent or null: 0, as there is no addition
                    reasons.add(why)
                continue
            entry = usage.setdefault((company, product), {"sum": 0, "bad": False, "absent": False})
            entry["bad"] |= bad
            entry["absent"] |= absent
            entry["sum"] += value or 0

    live: dict[tuple[int, str], list[dict]] = {}
    quantities: dict[int, float] = {}
    for ag in cw["agreements"]:
        for add in ag.get("additions", []):
            quantities[add["id"]] = (
                float(add["quantity"]) if _count(add["quantity"]) is not None else add["quantity"]
            )
        if ag.get("cancelledFlag") or ag.get("agreementStatus", "Active") != "Active":
            continue
        ended = _when(ag.get("endDate"))
        if ended and ended < billing:
            continue
        for add in ag.get("additions", []):
            cancelled = _when(add.get("cancelledDate"))
            # No effectiveDate: it bills from its agreement's start; neither date: it has started.
            effective = _when(add.get("effectiveDate") or ag.get("startDate"))
            if (cancelled and cancelled <= billing) or (effective and effective > billing):
                continue
            # The addition's own status (served as its agreementStatus; the scenario may say either).
            if (
                add.get("additionStatus", "Active") != "Active"
                or add.get("agreementStatus", "Active") != "Active"
            ):
                continue
            ident = catalog.get(add["product_id"])
            product = next((p for p, i in PRODUCTS.items() if i == ident), None)
            if product:
                live.setdefault((ag["company_id"], product), []).append(add)

    expected = dict(quantities)
    on_invoice = {company for company, _ in usage}
    if any(company not in on_invoice for company, _ in live):
        reasons.add("missing_from_invoice")
    for key, entry in usage.items():
        adds = live.get(key, [])
        qty = entry["sum"]
        if entry["bad"] or (entry["absent"] and adds):  # absence never lowers a quantity
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
