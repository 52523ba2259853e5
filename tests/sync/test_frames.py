from __future__ import annotations

import pandas as pd

from billing_sync import frames

PRODUCTS = ["edr", "itdr", "sat", "siem"]


def test_usage_frame_keeps_raw_and_parses_only_plain_integers():
    lines = [
        {
            "id": 7,
            "organization": {"id": 101, "name": "Acme <b>"},
            "actual_usage": {"edr": 40, "itdr": -1, "sat": 2.5, "siem": "12"},
        },
        {
            "id": 8,
            "organization": {"id": 102, "name": "Bob"},
            "actual_usage": {"edr": True, "itdr": None, "sat": 10**12},
        },
    ]
    df = frames.usage_frame(5001, lines, PRODUCTS)
    assert list(df.columns) == list(frames.SCHEMAS["usage"])
    assert str(df["quantity"].dtype) == "Int64"
    got = {(r.organization_id, r.product): (r.raw_quantity, r.quantity) for r in df.itertuples()}
    assert got[(101, "edr")] == ("40", 40)
    assert got[(101, "itdr")][0] == "-1" and pd.isna(got[(101, "itdr")][1])
    assert got[(101, "sat")][0] == "2.5" and pd.isna(got[(101, "sat")][1])
    assert got[(101, "siem")][0] == '"12"' and pd.isna(got[(101, "siem")][1])
    assert got[(102, "edr")][0] == "true" and pd.isna(got[(102, "edr")][1])
    assert got[(102, "itdr")][0] == "null" and pd.isna(got[(102, "itdr")][1])
    assert pd.isna(got[(102, "siem")][0])  # absent key: no raw value at all
    assert pd.isna(got[(102, "sat")][1])  # beyond MAX_USAGE


def test_usage_frame_tolerates_broken_lines():
    df = frames.usage_frame(1, [{"organization": None, "actual_usage": "x"}, {}], ["edr"])
    assert len(df) == 2
    assert df["organization_id"].isna().all() and df["quantity"].isna().all()
    # A non-object actual_usage is broken (each product carries it), no line at all is absent.
    assert df["raw_quantity"].iloc[0] == '"x"' and pd.isna(df["raw_quantity"].iloc[1])


def test_organizations_frame_keeps_the_account():
    df = frames.organizations_frame(
        [{"id": 1, "name": "A", "key": "a", "account_id": 7}, {"id": 2, "key": "b"}]
    )
    assert df["account_id"].tolist()[0] == 7 and pd.isna(df["account_id"].iloc[1])


def test_additions_frame_flattens_agreement_and_types():
    agreements = {
        10: {
            "id": 10,
            "name": "MS",
            "type": {"name": "Managed Services"},
            "company": {"id": 250},
            "agreementStatus": "Active",
            "cancelledFlag": False,
            "startDate": "2024-03-01T00:00:00Z",
            "endDate": "2027-02-28T00:00:00Z",
        }
    }
    adds = [
        {
            "id": 1,
            "agreementId": 10,
            "product": {"identifier": "HUNTRESS-EDR"},
            "quantity": 38,
            "unitPrice": 6.5,
            "effectiveDate": "2025-01-01T00:00:00Z",
            "agreementStatus": "Cancelled",
        },
        {"id": 2, "agreementId": 99, "product": None, "quantity": "abc", "additionStatus": "Active"},
    ]
    df = frames.additions_frame(agreements, adds)
    first, second = df.iloc[0], df.iloc[1]
    assert (first.company_id, first.agreement_type, first.product_identifier, first.quantity) == (
        250,
        "Managed Services",
        "HUNTRESS-EDR",
        38.0,
    )
    assert first.effective_date == pd.Timestamp("2025-01-01", tz="UTC") and pd.isna(first.cancelled_date)
    assert bool(first.agreement_cancelled) is False
    # The addition's own status is its agreementStatus; ConnectWise has no additionStatus.
    assert first.addition_status == "Cancelled" and pd.isna(second.addition_status)
    assert first.unit_price == 6.5 and pd.isna(second.unit_price)
    assert first.agreement_start_date == pd.Timestamp("2024-03-01", tz="UTC")
    assert first.agreement_end_date == pd.Timestamp("2027-02-28", tz="UTC")
    assert pd.isna(second.company_id) and pd.isna(second.quantity) and pd.isna(second.product_identifier)


def test_companies_frame_drops_deleted():
    df = frames.companies_frame(
        [
            {"id": 1, "identifier": "a", "name": "A"},
            {"id": 2, "identifier": "b", "name": "B", "deletedFlag": True},
        ]
    )
    assert df["company_id"].tolist() == [1]


def test_empty_frames_have_schema_dtypes():
    for name, schema in frames.SCHEMAS.items():
        df = frames.empty(name)
        assert {c: str(t) for c, t in df.dtypes.items()} == schema


def test_unreadable_dates_are_named_not_taken_for_absent():
    agreements = {7: {"id": 7, "startDate": "2025-01-01T00:00:00Z", "endDate": "soon"}}
    adds = [
        {"id": 1, "agreementId": 7, "effectiveDate": None, "cancelledDate": ""},
        {"id": 2, "agreementId": 7, "effectiveDate": "last tuesday", "cancelledDate": 20260101},
    ]
    df = frames.additions_frame(agreements, adds)
    assert df["unreadable_dates"].tolist() == ["endDate", "endDate,effectiveDate,cancelledDate"]
    ok = frames.additions_frame({7: {"id": 7, "startDate": "2025-01-01T00:00:00Z"}}, adds[:1])
    assert ok["unreadable_dates"].isna().all()
