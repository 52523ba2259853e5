from __future__ import annotations

from datetime import date

from billing_sync.huntress import (
    newest_invoice_date,
    select_invoice,
    undated_invoices,
    usage_from_actual_usages,
)


def inv(i, created):
    return {"id": i, "created_at": created, "has_usage": True}


INVOICES = [inv(3, "2026-11-01T06:00:00Z"), inv(2, "2026-10-01T06:00:00Z"), inv(1, "2026-09-29T06:00:00Z")]


def test_invoice_of_the_day_wins():
    assert select_invoice(INVOICES, date(2026, 11, 1))["id"] == 3


def test_latest_within_three_days_before():
    assert select_invoice(INVOICES, date(2026, 10, 2))["id"] == 2
    assert select_invoice(INVOICES, date(2026, 10, 4))["id"] == 2
    assert select_invoice(INVOICES, date(2026, 10, 5)) is None  # four days after: not this date's
    assert select_invoice(INVOICES, date(2026, 9, 30))["id"] == 1


def test_invoice_after_the_billing_date_is_never_taken():
    assert select_invoice(INVOICES, date(2026, 9, 28)) is None


def test_pinned_invoice():
    assert select_invoice(INVOICES, date(2020, 1, 1), invoice_id=1)["id"] == 1
    assert select_invoice(INVOICES, date(2026, 11, 1), invoice_id=42) is None


def test_unparseable_dates_are_ignored():
    assert select_invoice([{"id": 9, "created_at": "garbage"}, {"id": 8}], date(2026, 11, 1)) is None
    assert newest_invoice_date(INVOICES + [{"id": 9, "created_at": None}]) == date(2026, 11, 1)
    assert undated_invoices(INVOICES + [{"id": 9, "created_at": "garbage"}, {"id": 8}]) == [9, 8]


def test_actual_usages_mapping():
    got = usage_from_actual_usages({
        "edr": {"billable_agents_count": 42}, "sat": {"learners_count": 25},
        "siem": {"billable_log_sources_count": 5},
        "itdr": [{"billable_identities_count": 100}, {"billable_identities_count": 50}],
    })
    assert got == {"edr": 42, "sat": 25, "siem": 5, "itdr": 150}


def test_actual_usages_bad_tenant_count_is_passed_on_not_summed():
    got = usage_from_actual_usages({"itdr": [{"billable_identities_count": 100}, {"billable_identities_count": "x"}]})
    assert got["itdr"] == "x"
    assert usage_from_actual_usages({"itdr": [{}]})["itdr"] is None
    assert usage_from_actual_usages("nope") == {}
