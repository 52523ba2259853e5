"""report.money_view / money_text and the report page's money: what a billing manager reads first."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from billing_sync import report, store

MONEY = {
    "products": {
        "edr": {
            "huntress_units": 52,
            "connectwise_units_after": 47.0,
            "huntress_amount": "338",
            "connectwise_amount_after": "305.5",
            "difference": "-32.5",
            "recovered": "1234.567",
            "unpriced_units": "0",
        },
        "sat": {
            "huntress_units": 3,
            "connectwise_units_after": 3.0,
            "huntress_amount": "0",
            "connectwise_amount_after": "0",
            "difference": "0",
            "recovered": "0",
            "unpriced_units": "3",
        },
    },
    "recovered": "1234.567",
    "planned": "0",
    "huntress_amount": "338",
    "connectwise_amount_after": "305.5",
    "held": {
        "reasons": [
            {"reason_code": "no_live_addition", "rows": 2, "priced_rows": 1, "amount": "54"},
            {"reason_code": "duplicate_addition", "rows": 1, "priced_rows": 0, "amount": "0"},
        ],
        "rows": 3,
        "priced_rows": 1,
        "amount": "54",
    },
}


def test_money_view_reads_with_two_decimals() -> None:
    view = report.money_view(MONEY, {"edr": "HUNTRESS-EDR"})
    assert view is not None
    edr, sat = view["products"]
    assert (edr["catalog_identifier"], edr["huntress_amount"], edr["connectwise_amount"]) == (
        "HUNTRESS-EDR",
        "338.00",
        "305.50",
    )
    assert (edr["difference"], edr["recovered"], edr["differs"]) == ("−32.50", "+1,234.57", True)
    assert (sat["unpriced_units"], sat["differs"]) == ("3", False)
    assert (view["recovered"], view["held_amount"], view["held_rows"], view["held_unpriced"]) == (
        "+1,234.57",
        "54.00",
        3,
        2,
    )
    assert [(h["reason_code"], h["amount"]) for h in view["held"]] == [
        ("no_live_addition", "54.00"),
        ("duplicate_addition", "—"),  # no amount known: not 0.00
    ]
    assert report.money_view(None) is None and report.money_view({}) is None


def test_money_view_takes_what_is_held_now() -> None:
    now = {
        "reasons": [{"reason_code": "invalid_usage", "rows": 1, "priced_rows": 1, "amount": Decimal("0.1")}]
    }
    view = report.money_view(MONEY, held={**now, "rows": 1, "priced_rows": 1, "amount": Decimal("0.1")})
    assert (
        view is not None
        and view["held_amount"] == "0.10"
        and view["held"][0]["reason_code"] == "invalid_usage"
    )


def test_money_text_ends_with_what_is_held() -> None:
    view = report.money_view(MONEY)
    assert view is not None
    lines = report.money_text(view)
    assert lines[0].startswith("Money per month")
    assert lines[-4:] == [
        "Recovered by this run: +1,234.57 per month",
        "Still held: 54.00 in 3 open quarantine row(s)",
        "  No addition to bill on (no_live_addition): 54.00 (2 row(s), 1 without a known price)",
        "  More than one addition for the product (duplicate_addition): — (1 row(s), 1 without a known price)",
    ]


def test_the_report_leads_with_the_money(tmp_path: Path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.start_run(engine, "r1", "2026-11-01", 5001, "push", {}, tenant="default")
    ref = {
        "tenant": "default",
        "run_id": "r1",
        "billing_date": "2026-11-01",
        "mode": "push",
        "settings": {"products": {"edr": "X"}},
    }
    page = report.write_report(
        engine, ref, {"counts": {"total": 0}, "checks": {"money": MONEY}}, tmp_path
    ).read_text(encoding="utf-8")
    assert page.index('id="money"') < page.index("<h2>Outcomes</h2>")
    assert "Recovered by this run: +1,234.57" in page and "Still held: 54.00" in page
    without = report.write_report(engine, ref, {"counts": {"total": 0}, "checks": {}}, tmp_path)
    assert 'id="money"' not in without.read_text(encoding="utf-8")
    engine.dispose()
