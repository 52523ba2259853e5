"""reconcile/live.py: which additions bill on the billing date, and the words when none does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_sync import push
from billing_sync import reconcile as rc
from billing_sync.config import Settings
from billing_sync.reconcile.live import _why_not_live
from tests.sync.reconcile import (
    BILLING,
    acme,
    addition,
    additions_of,
    key,
    line,
    run,
    usage_of,
)

LIVE_CASES = [
    ({}, True),
    ({"agreement_cancelled": True}, False),
    ({"agreement_cancelled": None}, False),  # flag absent: state unknown, never billed on
    ({"agreement_status": "Expired"}, False),
    ({"agreement_status": "Cancelled"}, False),
    ({"agreement_status": None}, False),
    ({"status": "Cancelled"}, False),
    ({"status": "Inactive"}, False),
    ({"status": None}, True),  # the addition's agreementStatus absent: the dates decide
    ({"status": "Expired"}, False),
    ({"cancelled": "2026-10-15T00:00:00Z"}, False),  # cancelled in the past
    ({"cancelled": "2026-11-01T00:00:00Z"}, False),  # cancelled on the billing date
    ({"cancelled": "2026-11-01T23:59:00Z"}, False),
    ({"cancelled": "2026-11-02T00:00:00Z"}, True),  # cancelled in the future
    ({"cancelled": "2026-12-31T00:00:00Z"}, True),
    ({"effective": "2026-11-02T00:00:00Z"}, False),  # effective after the billing date
    ({"effective": "2026-11-01T00:00:00Z"}, True),  # effective on the billing date
    ({"effective": "2026-11-01T18:30:00Z"}, True),  # later that day (UTC) still counts
    ({"effective": "2026-11-01T20:00:00-05:00"}, False),  # = 2026-11-02T01:00Z
    # effectiveDate is optional: without it the addition bills from its agreement's start.
    ({"effective": None}, True),  # no start date either: started (docs/contract.md §2, "empty")
    ({"effective": None, "start": "2024-06-01T00:00:00Z"}, True),
    ({"effective": None, "start": "2026-11-01T23:00:00Z"}, True),  # starts on the billing date
    ({"effective": None, "start": "2026-11-02T00:00:00Z"}, False),  # starts after it
    ({"effective": "2026-10-01T00:00:00Z", "start": "2026-12-01T00:00:00Z"}, True),  # effectiveDate decides
    # An agreement that ended before the billing date is not live; ending on it still is.
    ({"end": "2026-10-31T00:00:00Z"}, False),
    ({"end": "2026-10-31T23:59:59Z"}, False),
    ({"end": "2026-11-01T00:00:00Z"}, True),
    ({"end": "2027-12-31T00:00:00Z"}, True),
]


@pytest.mark.parametrize(("changes", "live"), LIVE_CASES)
def test_live_additions(changes: dict, live: bool) -> None:
    adds = additions_of(addition(501, 250, **changes))
    assert len(rc.live_additions(adds, BILLING, ())) == int(live)


def test_no_live_addition_detail_names_end_start_and_addition_status() -> None:
    adds = additions_of(
        addition(501, 250, "edr", 38, agreement_id=1, end="2026-09-30T00:00:00Z"),
        addition(502, 250, "edr", 2, agreement_id=2, effective=None, start="2026-12-01T00:00:00Z"),
        addition(503, 250, "edr", 5, agreement_id=3, status="Inactive"),
    )
    detail = key(run(usage_of(line(101, edr=7)), additions=adds), "company:250:edr")["detail"]
    assert "(agreement ended 2026-09-30)" in detail
    assert "(no effective date, agreement starts 2026-12-01)" in detail
    assert "(addition status Inactive)" in detail


def test_addition_without_effective_date_is_live_and_synced() -> None:
    adds = additions_of(addition(501, 250, "edr", 38, effective=None, start="2025-01-01T00:00:00Z"))
    row = key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")
    assert (row["outcome"], row["addition_id"], row["new_quantity"]) == ("change", 501, 40)


def test_live_additions_agreement_types() -> None:
    adds = additions_of(
        addition(501, 250, agreement_type="Managed Services", agreement_id=1),
        addition(502, 250, agreement_type="Block Time", agreement_id=2),
        addition(503, 250, agreement_type=None, agreement_id=3),
    )
    assert rc.live_additions(adds, BILLING, [])["addition_id"].tolist() == [501, 502, 503]
    assert rc.live_additions(adds, BILLING, ["managed services "])["addition_id"].tolist() == [501]
    assert rc.live_additions(adds, BILLING, ["Block Time", "Managed Services"])["addition_id"].tolist() == [
        501,
        502,
    ]


def test_live_additions_accepts_an_airflow_datetime() -> None:
    adds = additions_of(addition(501, 250, effective="2026-11-01T12:00:00Z"))
    assert len(rc.live_additions(adds, datetime(2026, 11, 1, 0, 0, tzinfo=UTC), ())) == 1
    assert len(rc.live_additions(adds, datetime(2026, 10, 31, 23, 0, tzinfo=UTC), ())) == 0


def test_disallowed_agreement_type_means_no_live_addition() -> None:
    settings = Settings(agreement_types=("Block Time",))
    row = acme(edr=40, quantity=38, settings=settings)
    assert row["reason_code"] == "no_live_addition"
    assert "agreement type 'Managed Services' not in agreement_types" in row["detail"]


def test_cancelled_addition_next_to_a_live_one_is_ignored() -> None:
    adds = additions_of(
        addition(500, 250, "edr", 10, agreement_id=1, cancelled="2026-03-01T00:00:00Z"),
        addition(501, 250, "edr", 38, agreement_id=2),
    )
    row = key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")
    assert (row["outcome"], row["addition_id"]) == ("change", 501)


# -- one rule, asked by every reader: when in doubt, nothing is created or written ---------------------
IN_DOUBT = [
    ({"effective": "soon"}, "unreadable effectiveDate"),
    ({"cancelled": "2026-13-40T00:00:00Z"}, "unreadable cancelledDate"),
    ({"effective": 20261101}, "unreadable effectiveDate"),  # a number where ConnectWise writes text
    ({"status": ""}, "addition status "),  # no status of ConnectWise's enum; absent would be null
]


@pytest.mark.parametrize(("changes", "words"), IN_DOUBT)
def test_every_reader_of_the_rule_writes_nothing_on_an_addition_in_doubt(changes: dict, words: str) -> None:
    """reconcile bills nothing on it (no quantity is written to it), the held key's words say why,
    and the push's re-read counts it in the way of a new addition (nothing is created)."""
    agreement, record = addition(501, 250, **changes)
    adds = additions_of((agreement, record))
    assert rc.live_additions(adds, BILLING, ()).empty
    assert words in _why_not_live(adds.iloc[0].to_dict(), BILLING, ())
    assert push._in_the_way(agreement, [record], BILLING) == [{**record, "agreementId": 2500}]


def test_a_readable_field_still_rules_an_addition_out_when_another_is_in_doubt() -> None:
    agreement, record = addition(501, 250, status="Cancelled", effective="soon")
    assert push._in_the_way(agreement, [record], BILLING) == []
    assert "addition status Cancelled" in _why_not_live(
        additions_of((agreement, record)).iloc[0].to_dict(), BILLING, ()
    )
    agreement, record = addition(501, 250)  # readable and live: live to reconcile, in the way of a create
    assert len(rc.live_additions(additions_of((agreement, record)), BILLING, ())) == 1
    assert push._in_the_way(agreement, [record], BILLING) == [{**record, "agreementId": 2500}]
