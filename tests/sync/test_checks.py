"""The GX suites flag exactly the rows that break them, naming the expectation."""

from __future__ import annotations

import pandas as pd

from billing_sync import checks, frames

PRODUCTS = ["edr", "itdr"]


def test_usage_suite_flags_each_bad_row_and_only_those():
    lines = [
        {"id": 1, "organization": {"id": 101, "name": "Ok"}, "actual_usage": {"edr": 40, "itdr": 0}},
        {"id": 2, "organization": {"id": 102, "name": "Bad"}, "actual_usage": {"edr": -1, "itdr": 2.5}},
        {"id": 3, "organization": {"id": 103, "name": "Str"}, "actual_usage": {"edr": "12"}},
        {"id": 4, "organization": {"id": 104, "name": "Dup"}, "actual_usage": {"edr": 1, "itdr": 1}},
        {"id": 5, "organization": {"id": 104, "name": "Dup"}, "actual_usage": {"edr": 1, "itdr": 1}},
        {"id": 6, "organization": {"name": "NoId"}, "actual_usage": {"edr": 1, "itdr": 1}},
        {
            "id": 7,
            "organization": {"id": 107, "name": "Huge"},
            "actual_usage": {"edr": 10**12, "itdr": 10_000_000},
        },
        {"id": 8, "organization": {"id": 108, "name": "Null"}, "actual_usage": {"edr": None}},
    ]
    usage = frames.usage_frame(9, lines, PRODUCTS)
    usage.index = usage.index + 100  # positions, not labels, must be what GX reports
    issues, result = checks.run_suite("usage", usage, checks.usage_checks(PRODUCTS))
    flagged = {(r["line_id"], r["product"]): issues[i] for i, r in usage.iterrows() if pd.notna(issues[i])}
    # Absent or null is no error by itself (docs/contract.md §2): reconcile decides, against the additions.
    ok = {(1, "edr"), (1, "itdr"), (7, "itdr"), (3, "itdr"), (8, "edr"), (8, "itdr")}
    assert set(flagged) == {(r["line_id"], r["product"]) for _, r in usage.iterrows()} - ok
    assert "whole number" in flagged[(2, "edr")] and "whole number" in flagged[(2, "itdr")]
    assert "once per invoice" in flagged[(4, "edr")] and "once per invoice" in flagged[(5, "itdr")]
    assert "organization id" in flagged[(6, "edr")]
    assert "whole number" in flagged[(7, "edr")]
    assert result["success"] is False
    assert all(x["expectation"].startswith("expect_") for x in result["results"])


def test_issue_text_is_the_clerks_words_without_gx_names():
    """What reaches a quarantine detail is the check in plain words (issue 20 §3): no GX class or
    expectation name; those stay in the validation result."""
    lines = [{"id": 1, "organization": {"id": 101, "name": "Bad"}, "actual_usage": {"edr": -1}}]
    usage = frames.usage_frame(9, lines, PRODUCTS)
    issues, result = checks.run_suite("usage", usage, checks.usage_checks(PRODUCTS))
    text = str(issues[0])
    assert text == f"the usage count, unless absent or null, is a whole number from 0 to {frames.MAX_USAGE:,}"
    assert "expect_column_values_to_match_regex" in {x["expectation"] for x in result["results"]}


def test_live_additions_suite_finds_duplicates_and_bad_quantities():
    live = frames.conform(
        pd.DataFrame(
            {
                "addition_id": [1, 2, 3, 4],
                "company_id": [250, 250, 251, 252],
                "product_identifier": ["HUNTRESS-EDR", "HUNTRESS-EDR", "HUNTRESS-EDR", "HUNTRESS-EDR"],
                "quantity": [1.0, 2.0, None, -4.0],
            }
        ),
        "additions",
    )
    issues, _ = checks.run_suite("live_additions", live, checks.live_addition_checks())
    assert "one live addition" in issues[0] and "one live addition" in issues[1]
    assert "is a number" in issues[2]
    assert "not negative" in issues[3]


def test_clean_and_empty_frames_pass():
    usage = frames.usage_frame(
        1, [{"id": 1, "organization": {"id": 1}, "actual_usage": {"edr": 3, "itdr": 0}}], PRODUCTS
    )
    issues, result = checks.run_suite("usage", usage, checks.usage_checks(PRODUCTS))
    assert issues.isna().all() and result["success"]
    issues, result = checks.run_suite("usage", frames.empty("usage"), checks.usage_checks(PRODUCTS))
    assert issues.empty and result["success"]
