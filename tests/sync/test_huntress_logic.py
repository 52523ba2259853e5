from __future__ import annotations

import json
from datetime import date

import pytest

from billing_sync.huntress import (
    InvoiceChoiceError,
    invoice_account_ids,
    newest_invoice_date,
    select_invoice,
    undated_invoices,
    usage_from_actual_usages,
)


def inv(i, created, status="paid"):
    return {"id": i, "created_at": created, "has_usage": True, "status": status}


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
    got = usage_from_actual_usages(
        {
            "edr": {"billable_agents_count": 42},
            "sat": {"learners_count": 25},
            "siem": {"billable_log_sources_count": 5},
            "itdr": [{"billable_identities_count": 100}, {"billable_identities_count": 50}],
        }
    )
    assert got == {"edr": 42, "sat": 25, "siem": 5, "itdr": 150}


def test_actual_usages_bad_tenant_count_is_passed_on_not_summed():
    got = usage_from_actual_usages(
        {"itdr": [{"billable_identities_count": 100}, {"billable_identities_count": "x"}]}
    )
    assert got["itdr"] == "x"
    assert usage_from_actual_usages({"itdr": [{}]})["itdr"] is None
    assert usage_from_actual_usages("nope") == {}


def test_actual_usages_tenants_without_counts():
    assert usage_from_actual_usages({"itdr": []})["itdr"] == 0  # no tenants: no identities
    assert usage_from_actual_usages({"itdr": [{}, {"billable_identities_count": None}]})["itdr"] is None
    # Some tenants counted, some not: a partial sum would undercount, so it is no count.
    assert usage_from_actual_usages({"itdr": [{"billable_identities_count": 5}, {}]})["itdr"] == [5, None]
    assert "edr" not in usage_from_actual_usages({"edr": None, "sat": {}})  # absent, as on an invoice line


# --- invoice choice (docs/contract.md §2) ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["voided", "full_refund", "draft", "uncollectible", None])
def test_invoices_that_do_not_stand_never_bill(status):
    invoices = [inv(4, "2026-11-01T09:00:00Z", status), inv(3, "2026-10-30T06:00:00Z")]
    assert select_invoice(invoices, date(2026, 11, 1))["id"] == 3  # the look-back's standing one
    assert select_invoice(invoices[:1], date(2026, 11, 1)) is None
    assert newest_invoice_date(invoices) == date(2026, 10, 30)  # a voided or draft one proves nothing


@pytest.mark.parametrize("status", ["open", "paid", "partial_refund", "processing", "failed"])
def test_standing_statuses_bill(status):
    assert select_invoice([inv(4, "2026-11-01T09:00:00Z", status)], date(2026, 11, 1))["id"] == 4


def test_two_standing_invoices_of_one_day_fail_naming_both():
    invoices = [
        inv(7, "2026-11-01T09:00:00Z", "open"),
        inv(6, "2026-11-01T06:00:00Z"),
        inv(5, "2026-11-01T07:00:00Z", "voided"),
    ]
    with pytest.raises(InvoiceChoiceError) as err:
        select_invoice(invoices, date(2026, 11, 1))
    text = str(err.value)
    assert "6 (created 2026-11-01T06:00:00Z, paid), 7 (created 2026-11-01T09:00:00Z, open)" in text
    assert text.startswith("2 standing") and "5 (created" not in text  # the voided one does not count
    assert "invoice_id" in text
    assert select_invoice(invoices, date(2026, 11, 1), invoice_id=6)["id"] == 6  # unless one is pinned


def test_two_standing_invoices_of_the_look_back_day_fail_too():
    invoices = [
        inv(7, "2026-10-30T09:00:00Z"),
        inv(6, "2026-10-30T06:00:00Z"),
        inv(5, "2026-10-29T06:00:00Z"),
    ]
    with pytest.raises(InvoiceChoiceError, match="6 .*7"):
        select_invoice(invoices, date(2026, 11, 1))
    # Invoices of different days in the look-back: the newest day's one is the date's.
    assert select_invoice(invoices[1:], date(2026, 11, 1))["id"] == 6


def test_a_pinned_invoice_that_does_not_stand_fails():
    with pytest.raises(InvoiceChoiceError, match=r"invoice 4 \(pinned by the invoice_id param\) is 'voided'"):
        select_invoice([inv(4, "2026-11-01T09:00:00Z", "voided")], date(2026, 11, 1), invoice_id=4)


def test_invoice_account_ids():
    lines = [
        {"account": {"id": 7}},
        {"account": {"id": 1}},
        {"account": {"id": 7}},
        {"account": None},
        {"account": {"id": "8"}},
        {},
    ]
    assert invoice_account_ids(lines) == [1, 7]


def test_actual_usages_as_object_or_json_string_else_broken() -> None:
    """Issue 22 §4: Huntress types `actual_usages` as `string`; its example is an object."""
    from billing_sync.frames import usage_frame
    from billing_sync.huntress import actual_usage_of

    block = {"edr": {"billable_agents_count": 4}, "sat": {"learners_count": 2}}
    assert actual_usage_of(block) == actual_usage_of(json.dumps(block)) == {"edr": 4, "sat": 2}
    assert actual_usage_of(None) == {}  # absent, as on an invoice line
    for bad in ("not json", "[1, 2]", "null", "7", 7, [block]):
        usage = actual_usage_of(bad)
        assert usage == bad
        line = {"id": None, "organization": {"id": 1, "name": "A"}, "actual_usage": usage}
        frame = usage_frame(1, [line], ["edr", "sat"])
        assert frame["quantity"].isna().all() and frame["raw_quantity"].notna().all()  # never a 0
