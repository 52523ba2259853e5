"""Overrides and money through the steps of a run, served in memory (billing_sandbox.memory; issue 11
§2, §5; docs/contract.md §3, §4): the run reads the tenant's active overrides, applies them before the guard,
and every ledger row, quarantine row, the run record, the report and the text summary (what
`make demo` prints) carry the money, exactly.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_sandbox.memory import MemorySources
from billing_sync import report, store
from tests.proof.helpers import run_steps

DAY = "2026-11-01"
VARIABLE = {"products": {"edr": "HUNTRESS-EDR"}}
START = "2025-01-01T00:00:00Z"


def scenario() -> dict[str, Any]:
    """Five companies, EDR only: a small change (Acme), a change a minimum decides (Beta), usage
    without an addition (Gamma, priced from the catalog), a change past the guard (Delta), and an
    excluded company (Epsilon)."""
    names = {250: "Acme Corp", 251: "Beta Dental", 252: "Gamma Law", 253: "Delta Farms", 254: "Epsilon Inc"}
    usage = {250: 40, 251: 5, 252: 12, 253: 100, 254: 7}
    additions = {  # company → (addition id, quantity, unit price)
        250: (501, 38, 6.5),
        251: (502, 40, 12.99),
        253: (504, 10, 2),
        254: (505, 3, 9),
    }
    agreement = {"type": "Managed Services", "agreementStatus": "Active", "cancelledFlag": False}
    return {
        "huntress": {
            "api_key": "hk_money",
            "api_secret": "hs_money",
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": [
                {"id": c - 149, "name": n, "key": n.split()[0].lower()} for c, n in names.items()
            ],
            "invoices": [
                {
                    "id": 5001,
                    "created_at": f"{DAY}T06:00:00Z",
                    "status": "paid",
                    "lines": [
                        {"organization_id": c - 149, "actual_usage": {"edr": u}} for c, u in usage.items()
                    ],
                }
            ],
        },
        "connectwise": {
            "company_id": "demomsp",
            "public_key": "pub",
            "private_key": "priv_money",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "companies": [{"id": c, "identifier": n.split()[0].lower(), "name": n} for c, n in names.items()],
            "catalog": [
                {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress EDR", "price": 4.5}
            ],
            "agreements": [
                {
                    **agreement,
                    "id": 1000 + c,
                    "name": f"{names[c]} MSA",
                    "company_id": c,
                    "startDate": START,
                    "additions": [
                        {"id": a, "product_id": 752, "quantity": q, "unit_price": p, "effectiveDate": START}
                    ],
                }
                for c, (a, q, p) in additions.items()
            ],
        },
    }


@pytest.fixture
def sb(monkeypatch, tmp_path: Path) -> MemorySources:
    """The scenario served in memory: these tests are about the run's data, not the wire."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    return MemorySources(scenario())


def test_overrides_and_money_through_a_run(sb: Any, eng: Any) -> None:
    minimum = store.add_override(
        eng,
        cw_company_id=251,
        product="edr",
        rule="minimum",
        quantity=38,
        user="Jane Doe",
        user_id="42",
        tenant="default",
    )
    exclude = store.add_override(
        eng, cw_company_id=254, product="edr", rule="exclude", user="Bob", tenant="default"
    )
    retired = store.add_override(
        eng, cw_company_id=250, product="edr", rule="fixed", quantity=1, user="Old", tenant="default"
    )
    store.retire_override(eng, retired["id"], user="Jane Doe", tenant="default")

    done = run_steps(eng, "r1", DAY, variable=VARIABLE, sources=sb)
    assert done.error is None, done.describe()

    quantities = {a["id"]: a["quantity"] for a in sb.connectwise_state.snapshot()["additions"]}
    assert quantities == {501: 40, 502: 38, 504: 10, 505: 3}  # the minimum decided 502; 505 untouched

    ledger = {r["sync_key"]: r for r in store.changes_for_run(eng, "r1", tenant="default")}
    acme, beta, eps = ledger["company:250:edr"], ledger["company:251:edr"], ledger["company:254:edr"]
    assert (acme["action"], acme["unit_price"], acme["monthly_amount_delta"], acme["override_id"]) == (
        "updated",
        Decimal("6.5"),
        Decimal("13"),
        None,  # the retired override no longer applies
    )
    assert (beta["action"], beta["new_quantity"], beta["huntress_quantity"], beta["override_id"]) == (
        "updated",
        38,
        5,
        minimum["id"],
    )
    assert beta["monthly_amount_delta"] == Decimal("-25.98")  # 12.99 × (38 − 40), exactly
    assert (eps["action"], eps["override_id"], eps["monthly_amount_delta"]) == ("unchanged", exclude["id"], 0)

    held = {
        q["sync_key"]: q for q in store.list_quarantine(eng, run_id="r1", status="open", tenant="default")
    }
    assert held["company:252:edr"]["amount_at_stake"] == Decimal("54")  # catalog 4.5 × 12
    assert held["company:253:edr"]["amount_at_stake"] == Decimal("180")  # 2 × |100 − 10|

    money = store.get_run(eng, "r1", tenant="default")["checks"]["money"]
    assert Decimal(money["recovered"]) == Decimal("-12.98")  # 13 − 25.98: net
    assert Decimal(money["products"]["edr"]["connectwise_amount_before"]) == Decimal("813.6")
    assert Decimal(money["products"]["edr"]["connectwise_amount_after"]) == Decimal("800.62")
    assert Decimal(money["products"]["edr"]["huntress_amount"]) == Decimal("641.95")
    assert {r["reason_code"]: Decimal(r["amount"]) for r in money["held"]["reasons"]} == {
        "no_live_addition": Decimal("54"),
        "change_exceeds_limit": Decimal("180"),
    }
    assert "(2 key(s) under an override)" in " ".join(
        store.get_run(eng, "r1", tenant="default")["checks"]["mismatches"]
    )

    page = (Path(store.get_run(eng, "r1", tenant="default")["report_path"]) / report.REPORT_FILE).read_text(
        encoding="utf-8"
    )
    assert page.index("Money: Huntress vs ConnectWise") < page.index("<h2>Outcomes</h2>")
    assert "Recovered by this run: −12.98" in page and "Still held: 234.00" in page
    assert f"override #{minimum['id']}: minimum 38 by Jane Doe" in page  # the Changes table's "decided by"

    text = report.run_summary_text(eng, DAY, tenant="default")
    tail = text.splitlines()[-4:]
    assert tail == [
        "Recovered by this run: −12.98 per month",
        "Still held: 234.00 in 2 open quarantine row(s)",
        "  No addition to bill on (no_live_addition): 54.00 (1 row(s))",
        "  Change too large (needs approval) (change_exceeds_limit): 180.00 (1 row(s))",
    ]
    assert "Money per month" in text


def test_a_dry_run_plans_the_money(sb: Any, eng: Any) -> None:
    done = run_steps(eng, "r1", DAY, variable={**VARIABLE, "dry_run": True}, sources=sb)
    assert done.error is None, done.describe()
    money = store.get_run(eng, "r1", tenant="default")["checks"]["money"]
    assert Decimal(money["recovered"]) == 0
    assert Decimal(money["planned"]) == Decimal("13") + Decimal("9") * 4  # Acme +2 at 6.5, Epsilon 3 → 7 at 9
    assert "Planned, not written: +49.00 per month" in report.run_summary_text(eng, DAY, tenant="default")
