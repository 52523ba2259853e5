from __future__ import annotations

import pandas as pd

from billing_sync import frames

PRODUCTS = ["edr", "itdr", "sat", "siem"]


def test_usage_frame_keeps_raw_and_parses_only_plain_integers():
    lines = [{"id": 7, "organization": {"id": 101, "name": "Acme <b>"},
              "actual_usage": {"edr": 40, "itdr": -1, "sat": 2.5, "siem": "12"}},
             {"id": 8, "organization": {"id": 102, "name": "Bob"},
              "actual_usage": {"edr": True, "itdr": None, "sat": 10**12}}]
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


def test_additions_frame_flattens_agreement_and_types():
    agreements = {10: {"id": 10, "name": "MS", "type": {"name": "Managed Services"}, "company": {"id": 250},
                       "agreementStatus": "Active", "cancelledFlag": False}}
    adds = [{"id": 1, "agreementId": 10, "product": {"identifier": "HUNTRESS-EDR"}, "quantity": 38,
             "effectiveDate": "2025-01-01T00:00:00Z", "cancelledDate": None, "additionStatus": "Active"},
            {"id": 2, "agreementId": 99, "product": None, "quantity": "abc"}]
    df = frames.additions_frame(agreements, adds)
    first, second = df.iloc[0], df.iloc[1]
    assert (first.company_id, first.agreement_type, first.product_identifier, first.quantity) == (
        250, "Managed Services", "HUNTRESS-EDR", 38.0)
    assert first.effective_date == pd.Timestamp("2025-01-01", tz="UTC")
    assert bool(first.agreement_cancelled) is False
    assert pd.isna(second.company_id) and pd.isna(second.quantity) and pd.isna(second.product_identifier)


def test_companies_frame_drops_deleted():
    df = frames.companies_frame([{"id": 1, "identifier": "a", "name": "A"},
                                 {"id": 2, "identifier": "b", "name": "B", "deletedFlag": True}])
    assert df["company_id"].tolist() == [1]


def test_empty_frames_have_schema_dtypes():
    for name, schema in frames.SCHEMAS.items():
        df = frames.empty(name)
        assert {c: str(t) for c, t in df.dtypes.items()} == schema
