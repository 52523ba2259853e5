"""A product kept in step on a billable and an informational catalog item, end to end on the
sandbox's data served in memory (issue 21 §2; docs/contract.md, Variable `products`): a run of the steps, then an apply of
the desk, and every addition ends at the invoice's count, each with its own ledger row, outcome,
quarantine row and totals, and the informational item (price 0) coming to 0 in the money."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_sandbox.memory import MemorySources
from billing_sync import apply, report, store
from tests.proof.helpers import run_steps

DAY = "2026-11-01"
EDR, INFO = "HUNTRESS-EDR", "HUNTRESS-EDR-INFO"
VARIABLE = {"products": {"edr": [EDR, INFO]}}
START = "2025-01-01T00:00:00Z"
NAMES = {250: "Acme Corp", 251: "Beta Dental", 252: "Gamma Law"}
USAGE = {250: 40, 251: 12, 252: 5}  # the invoice's EDR count per company: 57 in all
# company → [(addition id, catalog item id, quantity)]: Acme drifted on both items, Beta on the
# informational one only, Gamma never had the informational one.
ADDITIONS = {
    250: [(501, 752, 38), (601, 760, 38)],
    251: [(502, 752, 12), (602, 760, 10)],
    252: [(503, 752, 5)],
}


def key(company: int, item: str) -> str:
    return f"company:{company}:edr:{item}"


def scenario() -> dict[str, Any]:
    """Three companies on one EDR invoice; ConnectWise's catalog has the billable item (6.50) and
    Huntress's informational item, priced 0 and added as NoCharge, as an MSP sets it up."""
    agreement = {"type": "Managed Services", "agreementStatus": "Active", "cancelledFlag": False}
    return {
        "huntress": {
            "api_key": "hk_items",
            "api_secret": "hs_items",
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": [
                {"id": c - 149, "name": n, "key": n.split()[0].lower()} for c, n in NAMES.items()
            ],
            "invoices": [
                {
                    "id": 5001,
                    "created_at": f"{DAY}T06:00:00Z",
                    "status": "paid",
                    "quantity": sum(USAGE.values()),
                    "lines": [
                        {"organization_id": c - 149, "actual_usage": {"edr": u}} for c, u in USAGE.items()
                    ],
                }
            ],
        },
        "connectwise": {
            "company_id": "demomsp",
            "public_key": "pub",
            "private_key": "priv_items",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "companies": [{"id": c, "identifier": n.split()[0].lower(), "name": n} for c, n in NAMES.items()],
            "catalog": [
                {"id": 752, "identifier": EDR, "description": "Huntress Managed EDR", "price": 6.5},
                {
                    "id": 760,
                    "identifier": INFO,
                    "description": "Huntress Managed EDR (informational)",
                    "price": 0,
                },
            ],
            "agreements": [
                {
                    **agreement,
                    "id": 1000 + c,
                    "name": f"{NAMES[c]} MSA",
                    "company_id": c,
                    "startDate": START,
                    "additions": [
                        {
                            "id": a,
                            "product_id": p,
                            "quantity": q,
                            "effectiveDate": START,
                            **({"billCustomer": "NoCharge"} if p == 760 else {}),
                        }
                        for a, p, q in adds
                    ],
                }
                for c, adds in ADDITIONS.items()
            ],
        },
    }


@pytest.fixture
def eng(db_url: str) -> Any:
    """SQLite, and PostgreSQL where TEST_DATABASE_URL names one: the new columns on both."""
    engine = store.make_engine(db_url)
    store.ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sb(monkeypatch, tmp_path: Path) -> MemorySources:
    """The scenario served in memory: these tests are about the run's data, not the wire."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    return MemorySources(scenario())


def quantities(sb: Any) -> dict[tuple[int, str], list[float]]:
    """(company, catalog identifier) → the quantities of its additions in ConnectWise now."""
    state = sb.connectwise_state.snapshot()
    company_of = {a["id"]: a["company"]["id"] for a in state["agreements"]}
    out: dict[tuple[int, str], list[float]] = {}
    for a in state["additions"]:
        out.setdefault((company_of[a["agreementId"]], a["product"]["identifier"]), []).append(a["quantity"])
    return out


def test_both_items_end_at_the_invoice_count(sb: Any, eng: Any) -> None:
    done = run_steps(eng, "r1", DAY, variable=VARIABLE, sources=sb)
    assert done.error is None, done.describe()

    now = quantities(sb)
    for company in (250, 251):
        assert now[(company, EDR)] == now[(company, INFO)] == [USAGE[company]], company
    assert now[(252, EDR)] == [5] and (252, INFO) not in now

    # Each item's key has its own ledger row, outcome and catalog identifier.
    ledger = {r["sync_key"]: r for r in store.changes_for_run(eng, "r1", tenant="default")}
    seen = {
        k: (r["action"], r["addition_id"], r["catalog_identifier"], r["product"]) for k, r in ledger.items()
    }
    assert seen == {
        key(250, EDR): ("updated", 501, EDR, "edr"),
        key(250, INFO): ("updated", 601, INFO, "edr"),
        key(251, EDR): ("unchanged", 502, EDR, "edr"),
        key(251, INFO): ("updated", 602, INFO, "edr"),
        key(252, EDR): ("unchanged", 503, EDR, "edr"),
    }
    assert ledger[key(250, EDR)]["monthly_amount_delta"] == Decimal("13")  # 6.50 × 2
    assert ledger[key(250, INFO)]["monthly_amount_delta"] == 0  # the informational item bills nothing
    (held,) = store.list_quarantine(eng, run_id="r1", status="open", tenant="default")
    assert (held["sync_key"], held["reason_code"], held["catalog_identifier"]) == (
        key(252, INFO),
        "no_live_addition",
        INFO,
    )
    assert held["amount_at_stake"] == 0  # priced at 0: a known nothing, not an unknown

    # Totals per item: the billable item agrees with the invoice, the informational one lacks Gamma.
    run = store.get_run(eng, "r1", tenant="default")
    units = run["checks"]["products"]
    assert (units[f"edr:{EDR}"]["connectwise_after"], units[f"edr:{INFO}"]["connectwise_after"]) == (57, 52)
    assert units[f"edr:{EDR}"]["huntress"] == units[f"edr:{INFO}"]["huntress"] == 57
    assert run["checks"]["mismatches"] == [
        f"edr:{INFO}: Huntress bills 57, ConnectWise bills 52 after the push"
    ]
    money = run["checks"]["money"]["products"]
    assert Decimal(money[f"edr:{EDR}"]["connectwise_amount_after"]) == Decimal("370.5")  # 57 × 6.50
    info = money[f"edr:{INFO}"]
    for amount in ("huntress_amount", "connectwise_amount_before", "connectwise_amount_after", "recovered"):
        assert Decimal(info[amount]) == 0, amount  # units at price 0: nothing to bill, nothing divided
    assert (info["huntress_units"], info["connectwise_units_after"]) == (57, 52)
    assert Decimal(run["checks"]["money"]["recovered"]) == Decimal("13")

    folder = Path(run["report_path"])
    with (folder / report.TOTALS_CSV).open(encoding="utf-8") as f:
        totals = {r["catalog_identifier"]: r for r in csv.DictReader(f)}
    assert set(totals) == {EDR, INFO} and {r["product"] for r in totals.values()} == {"edr"}
    assert (float(totals[EDR]["connectwise_after"]), float(totals[INFO]["connectwise_after"])) == (57, 52)
    text = report.run_summary_text(eng, DAY, tenant="default")
    assert f"edr:{INFO}" in text and f"edr:{EDR}" in text

    # The desk approves the missing informational addition; an apply of Gamma creates it.
    approval = store.add_approval(
        eng, billing_date=DAY, sync_key=key(252, INFO), cw_company_id=252, product="edr",
        kind="create_addition", agreement_id=1252, to_quantity=5,
        user="Alice Example", user_id="alice", tenant="default",
    )  # fmt: skip
    applied = apply.run(
        eng,
        "manual__apply_1",
        {"billing_date": DAY, "companies": [252], "organizations": []},
        VARIABLE,
        tenant="default",
        huntress=sb.huntress,
        connectwise=sb.connectwise_factory(),
    )
    assert applied["keys"] == [key(252, EDR), key(252, INFO)]
    assert (applied["counts"]["created"], applied["counts"]["unchanged"]) == (1, 1)
    assert quantities(sb)[(252, INFO)] == [5], "every company's items now match the invoice"
    rows = {r["sync_key"]: r for r in store.changes_for_run(eng, "manual__apply_1", tenant="default")}
    created = rows[key(252, INFO)]
    assert (created["action"], created["catalog_identifier"], created["approval_id"]) == (
        "created",
        INFO,
        approval["id"],
    )
    assert store.list_quarantine(eng, status="open", tenant="default") == []
