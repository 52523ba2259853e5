"""reconcile.apply_approvals: a pending approval releases a held key only when the run computes
exactly the approved numbers; anything else makes it stale (issue 11 §1, §4; docs/contract.md §3)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest

from billing_sync import frames
from billing_sync import reconcile as rc

DAY = date(2026, 11, 1)
HELD = {
    "sync_key": "company:251:edr",
    "company_id": 251,
    "product": "edr",
    "catalog_identifier": "HUNTRESS-EDR",
    "agreement_id": 1579,
    "addition_id": 502,
    "huntress_quantity": 5,
    "previous_quantity": 40.0,
    "outcome": "quarantined",
    "reason_code": "change_exceeds_limit",
    "detail": "edr 40 → 5 trips the guard",
}
MISSING = {
    "sync_key": "company:252:edr",
    "company_id": 252,
    "product": "edr",
    "catalog_identifier": "HUNTRESS-EDR",
    "huntress_quantity": 12,
    "outcome": "quarantined",
    "reason_code": "no_live_addition",
    "detail": "no live addition",
}
IN_STEP = {
    "sync_key": "company:250:edr",
    "company_id": 250,
    "product": "edr",
    "agreement_id": 1578,
    "addition_id": 501,
    "huntress_quantity": 40,
    "previous_quantity": 40.0,
    "new_quantity": 40,
    "outcome": "unchanged",
}


def outcomes(*rows: dict[str, Any]) -> pd.DataFrame:
    return frames.conform(pd.DataFrame(list(rows)), "outcomes")


def agreements(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {
        "status": "Active",
        "cancelled": False,
        "type": "Managed Services",
        "start_date": "2025-01-01T00:00:00Z",
    }
    return frames.conform(pd.DataFrame([{**base, **r} for r in rows]), "agreements")


GAMMA = agreements({"agreement_id": 1580, "company_id": 252, "name": "Gamma MSA"})


def change(**over: Any) -> dict[str, Any]:
    approval = {
        "id": 7, "sync_key": HELD["sync_key"], "cw_company_id": 251, "product": "edr", "kind": "change",
        "addition_id": 502, "agreement_id": 1579, "from_quantity": 40.0, "to_quantity": 5.0,
        "approved_by": "Alice Example", "approved_at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
    }  # fmt: skip
    return {**approval, **over}


def creation(**over: Any) -> dict[str, Any]:
    approval = {
        "id": 8, "sync_key": MISSING["sync_key"], "cw_company_id": 252, "product": "edr",
        "kind": "create_addition", "addition_id": None, "agreement_id": 1580, "from_quantity": None,
        "to_quantity": 12.0, "approved_by": "Bob", "approved_at": None,
    }  # fmt: skip
    return {**approval, **over}


def apply(rows: pd.DataFrame, *approvals: dict[str, Any], found: pd.DataFrame = GAMMA, types=()) -> Any:
    return rc.apply_approvals(rows, approvals, found, DAY, types)


def test_an_exact_approval_releases_the_held_change() -> None:
    out, stale = apply(outcomes(HELD, IN_STEP), change())
    assert stale == []
    row = out.set_index("sync_key").loc[HELD["sync_key"]]
    assert (row["outcome"], row["new_quantity"], row["approval_id"]) == ("change", 5, 7)
    assert pd.isna(row["reason_code"])
    assert row["detail"] == "40 → 5: approved by Alice Example on 2026-11-02 09:30 UTC (approval 7)"
    assert (row["addition_id"], row["previous_quantity"], row["huntress_quantity"]) == (502, 40, 5)
    untouched = out.set_index("sync_key").loc[IN_STEP["sync_key"]]
    assert untouched["outcome"] == "unchanged" and pd.isna(untouched["approval_id"])


def test_a_held_drop_to_zero_is_approved_like_any_change() -> None:
    to_zero = {**HELD, "huntress_quantity": 0, "detail": "drop to zero not allowed"}
    out, stale = apply(outcomes(to_zero), change(to_quantity=0))
    assert stale == [] and out.loc[0, "outcome"] == "change" and out.loc[0, "new_quantity"] == 0


@pytest.mark.parametrize(
    "moved",
    [
        {"from_quantity": 41.0},  # ConnectWise holds something else now
        {"to_quantity": 6.0},  # Huntress counts something else now
        {"addition_id": 999},  # another addition
        {"sync_key": "company:999:edr"},  # a key this run did not produce
        {"product": "sat"},
        {"cw_company_id": 250},
    ],
    ids=["from", "to", "addition", "key", "product", "company"],
)
def test_an_approval_never_carries_over_to_other_numbers(moved: dict[str, Any]) -> None:
    rows = outcomes(HELD)
    out, stale = apply(rows, change(**moved))
    assert stale == [7]
    pd.testing.assert_frame_equal(out, rows)


def test_a_key_in_step_or_held_for_another_reason_makes_the_approval_stale() -> None:
    in_step = {
        **HELD,
        "outcome": "unchanged",
        "reason_code": None,
        "previous_quantity": 5.0,
        "new_quantity": 5,
    }
    assert apply(outcomes(in_step), change())[1] == [7]
    invalid = {**HELD, "reason_code": "invalid_usage"}
    assert apply(outcomes(invalid), change())[1] == [7]


def test_the_same_change_let_through_by_the_guard_names_the_approval() -> None:
    passing = {**HELD, "outcome": "change", "reason_code": None, "new_quantity": 5}
    out, stale = apply(outcomes(passing), change())
    assert stale == [] and (out.loc[0, "outcome"], out.loc[0, "approval_id"]) == ("change", 7)


def test_an_approved_addition_is_created_on_a_live_agreement_of_the_company() -> None:
    out, stale = apply(outcomes(MISSING, HELD), creation())
    assert stale == []
    row = out.set_index("sync_key").loc[MISSING["sync_key"]]
    assert (row["outcome"], row["agreement_id"], row["new_quantity"], row["approval_id"]) == (
        "create",
        1580,
        12,
        8,
    )
    assert pd.isna(row["addition_id"]) and pd.isna(row["previous_quantity"])
    assert row["detail"] == "new addition of 12 on agreement 1580: approved by Bob (approval 8)"
    assert out.set_index("sync_key").loc[HELD["sync_key"], "outcome"] == "quarantined"


@pytest.mark.parametrize(
    "found",
    [
        agreements({"agreement_id": 1580, "company_id": 250}),  # another company's
        agreements({"agreement_id": 1580, "company_id": 252, "cancelled": True}),
        agreements({"agreement_id": 1580, "company_id": 252, "status": "Inactive"}),
        agreements({"agreement_id": 1580, "company_id": 252, "end_date": "2026-10-31T00:00:00Z"}),
        agreements({"agreement_id": 1580, "company_id": 252, "start_date": "2026-11-02T00:00:00Z"}),
        agreements({"agreement_id": 1581, "company_id": 252}),  # the approved one is gone
    ],
    ids=["other-company", "cancelled", "inactive", "ended", "not-started", "gone"],
)
def test_an_addition_approved_for_an_agreement_that_no_longer_fits_is_stale(found: pd.DataFrame) -> None:
    out, stale = apply(outcomes(MISSING), creation(), found=found)
    assert stale == [8] and out.loc[0, "outcome"] == "quarantined"


def test_an_agreement_of_a_type_no_longer_allowed_is_stale() -> None:
    assert apply(outcomes(MISSING), creation(), types=("Other",))[1] == [8]
    assert apply(outcomes(MISSING), creation(), types=(" managed services ",))[1] == []


def test_an_addition_approval_needs_the_key_still_missing_with_the_same_count() -> None:
    assert apply(outcomes({**MISSING, "huntress_quantity": 13}), creation())[1] == [8]
    now_there = {**MISSING, "outcome": "unchanged", "reason_code": None, "addition_id": 600, "agreement_id": 1580,
                 "previous_quantity": 12.0, "new_quantity": 12}  # fmt: skip
    assert apply(outcomes(now_there), creation())[1] == [8]


def test_a_change_approval_does_not_release_a_missing_addition_nor_the_reverse() -> None:
    assert apply(outcomes(MISSING), change(sync_key=MISSING["sync_key"], cw_company_id=252))[1] == [7]
    assert apply(outcomes(HELD), creation(sync_key=HELD["sync_key"], cw_company_id=251))[1] == [8]


def test_what_a_held_row_offers_to_approve() -> None:
    assert rc.proposal(HELD, "change_exceeds_limit") == {
        "cw_company_id": 251,
        "product": "edr",
        "to_quantity": 5,
        "kind": "change",
        "addition_id": 502,
        "agreement_id": 1579,
        "from_quantity": 40.0,
    }
    assert rc.proposal(MISSING, "no_live_addition") == {
        "cw_company_id": 252,
        "product": "edr",
        "to_quantity": 12,
        "kind": "create_addition",
    }
    assert rc.proposal({**HELD, "huntress_quantity": None}, "change_exceeds_limit") is None
    assert rc.proposal({**HELD, "addition_id": None}, "change_exceeds_limit") is None
    assert rc.proposal(HELD, "invalid_usage") is None


def test_live_agreements_lists_the_companys_by_name() -> None:
    found = agreements(
        {"agreement_id": 3, "company_id": 252, "name": "Zeta"},
        {"agreement_id": 2, "company_id": 252, "name": "Alpha"},
        {"agreement_id": 4, "company_id": 252, "name": "Old", "end_date": "2026-01-01T00:00:00Z"},
        {"agreement_id": 5, "company_id": 253, "name": "Other"},
    )
    assert rc.live_agreements(found, 252, DAY)["agreement_id"].tolist() == [2, 3]


def test_a_key_an_override_decides_is_approved_for_the_overrides_quantity() -> None:
    """A `minimum 30` override on a 5-seat Huntress count aims for 30: 40 → 30 is what is offered and
    released, never 40 → 5 (Huntress's count past the override)."""
    overridden = {**HELD, "override_id": 3, "target": 30}
    offered = rc.proposal(overridden, "change_exceeds_limit")
    assert offered is not None and (offered["from_quantity"], offered["to_quantity"]) == (40.0, 30)
    released, stale = apply(outcomes(overridden), change(to_quantity=30.0))
    assert stale == [] and released.loc[0, ["outcome", "new_quantity", "approval_id"]].tolist() == [
        "change",
        30,
        7,
    ]
    assert apply(outcomes(overridden), change())[1] == [7]  # 40 → 5 is not what this run aims for


def test_a_row_recorded_before_target_under_an_override_is_neither_offered_nor_released() -> None:
    overridden = {**HELD, "override_id": 3}  # staged before revision 0006: the aim is not known
    assert rc.proposal(overridden, "change_exceeds_limit") is None
    assert apply(outcomes(overridden), change())[1] == [7]
