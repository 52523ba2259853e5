"""reconcile: every usage row has exactly one outcome, and a naive restatement of the rules agrees.

Hypothesis draws the cases and shrinks a failing one to a small one. How many it draws is the
profile's (tests/conftest.py): a few seconds' worth by default, HYPOTHESIS_PROFILE=thorough for more.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.config import Settings
from tests.sync.reconcile import (
    ABSENT,
    BILLING,
    CATALOG,
    PRODUCTS,
    addition,
    additions_of,
    check_shape,
    line,
    org_map_of,
    usage_of,
)

# --------------------------------------------------------------------------------------------
# Property: every usage row is accounted for by exactly one key; numbers add up; a naive
# per-row reference implementation of the rules agrees on every key.

VALUES = [0, 0, 1, 3, 12, 40, 55]
BAD_VALUES = [-1, 2.5, "7", None, ABSENT]
QUANTITIES = [0, 1, 3, 12, 38, 40, 52, 55] * 3 + [2.5, -2, None]
NAMES = ["Acme Corp", "ACME corp.", "Beta", "Gamma LLC", "gamma, llc", "Delta", None, "..."]
IDENTS = ["acme", "ACME", "beta", "gamma", "delta", None, ""]
DATES = [None, "2025-01-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-10-01T00:00:00Z"]


def _below(draw: st.DrawFn, n: int) -> int:
    """Uniform in range(n), as random.randrange was. Hypothesis's integers lean to 0 and the ends,
    which would thin out the organizations, additions and rarities the property needs. Shrinks to 0."""
    return draw(st.sampled_from(range(n)))


def _chance(draw: st.DrawFn, percent: int) -> bool:
    """True `percent` times in 100. Shrinks to False, so a failing case sheds its rarities."""
    return _below(draw, 100) >= 100 - percent


@st.composite
def _odd_addition(draw: st.DrawFn, addition_id: int, company_ids: list[int]) -> tuple[dict, dict]:
    """An addition of any state: cancelled, expired, not yet effective, of another product or type."""
    pick = st.sampled_from
    return addition(
        addition_id,
        draw(pick(company_ids or [100])),
        draw(pick(PRODUCTS + ("other",))),
        draw(pick(QUANTITIES)),
        agreement_id=1 + _below(draw, 12),  # shared ids: the last agreement record wins, as in frames
        agreement_type=draw(pick(["Managed Services", "Block Time", None])),
        agreement_status=draw(pick(["Active"] * 8 + ["Expired", None])),
        agreement_cancelled=draw(pick([False] * 8 + [True, None])),
        effective=draw(pick(DATES[1:] * 3 + [None])),
        cancelled=draw(pick([None] * 8 + DATES[1:])),
        status=draw(pick(["Active"] * 8 + ["Cancelled", None])),
        start=draw(pick(DATES)),
        end=draw(pick([None] * 6 + DATES[1:])),
    )


@st.composite
def _clean_customer(draw: st.DrawFn, j: int) -> tuple[dict, dict, dict, list[tuple[dict, dict]]]:
    """Organization, company, invoice line and one live addition per product, near the usage."""
    org_id, company_id = 200 + j, 300 + j
    counts = {p: draw(st.sampled_from(VALUES)) for p in PRODUCTS}
    pairs = []
    for k, (p, v) in enumerate(counts.items()):
        drift = draw(st.sampled_from([0, 0, 0, 1, -1, 5, 11, 30]))
        pairs.append(addition(5000 + 10 * j + k, company_id, p, max(v + drift, 0), agreement_id=company_id))
    return (
        {"id": org_id, "name": f"Clean {j}", "key": f"clean{j}"},
        {"id": company_id, "identifier": f"CLEAN{j}", "name": f"Clean {j}"},
        line(org_id, f"Clean {j}", line_id=100 + j, **counts),
        pairs,
    )


@st.composite
def raw_cases(draw: st.DrawFn) -> dict[str, Any]:
    """One run's API-shaped records and settings. Lists and pools put first what is plainest, so
    a shrunk case is small and ordinary except where it fails."""
    pick = st.sampled_from
    org_ids = draw(st.permutations(range(1, 40)))[: _below(draw, 13)]
    company_ids = draw(st.permutations(range(100, 130)))[: _below(draw, 9)]

    # Half the organizations carry a key equal to a company's unique identifier; the rest draw from
    # small pools of keys and names, so ambiguity and near-miss names are common.
    def org_key() -> str | None:
        return f"c{draw(pick(company_ids))}" if company_ids and not _chance(draw, 50) else draw(pick(IDENTS))

    # Mostly the own account; some managed ones (keys are unique only per account), rarely unknown.
    orgs = [
        {
            "id": o,
            "name": draw(pick(NAMES)),
            "key": org_key(),
            "account_id": draw(pick([1, 1, 1, 1, 2, 3, None])),
        }
        for o in org_ids
        if not _chance(draw, 10)
    ]
    comps = [
        {
            "id": c,
            "identifier": draw(pick(IDENTS)) if _chance(draw, 30) else f"C{c}",
            "name": draw(pick(NAMES)),
        }
        for c in company_ids
    ]
    org_map = [(o, draw(pick(company_ids + [999]))) for o in org_ids if company_ids and _chance(draw, 15)]
    twice = draw(st.permutations(org_ids))[: _below(draw, 3)]
    lines = []
    for i, o in enumerate(org_ids + twice + [None] * _below(draw, 2)):
        counts = {p: draw(pick(BAD_VALUES if _chance(draw, 8) else VALUES)) for p in PRODUCTS}
        lines.append(line(o, draw(pick(NAMES)), line_id=i + 1, **counts))
    lines = list(draw(st.permutations(lines)))
    pairs = [draw(_odd_addition(1000 + n, company_ids)) for n in range(_below(draw, 26))]
    # Well-kept customers: unique key match, one live addition per product near the usage.
    for j in range(_below(draw, 7)):
        org, comp, clean_line, clean_pairs = draw(_clean_customer(j))
        orgs.append(org)
        comps.append(comp)
        lines.append(clean_line)
        pairs += clean_pairs
    products = dict(draw(st.permutations(sorted(CATALOG.items())))[: 1 + _below(draw, 4)])
    settings = Settings(
        products=products,
        max_change_units=draw(pick([0, 5, 10])),
        max_change_ratio=draw(pick([0.0, 0.5, 1.0])),
        allow_drop_to_zero=_chance(draw, 50),
        agreement_types=draw(pick([(), (), (), ("managed services",), ("Block Time",)])),
    )
    # One usage row per line and product; now and then a few of them failed a GX check.
    issues = (
        [("expect_x" if _chance(draw, 5) else None) for _ in range(len(lines) * len(PRODUCTS))]
        if _chance(draw, 30)
        else None
    )
    return {
        "orgs": orgs,
        "comps": comps,
        "org_map": org_map,
        "lines": lines,
        "pairs": pairs,
        "issues": issues,
        "settings": settings,
    }


def _case(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw_cases` records → reconcile's arguments, through the frames helpers as in a run."""
    usage = usage_of(*raw["lines"])
    if raw["issues"] is not None:
        usage["issue"] = pd.array(raw["issues"], dtype="string")
    return {
        "usage": usage,
        "organizations": frames.organizations_frame(raw["orgs"]),
        "companies": frames.companies_frame(raw["comps"]),
        "additions": additions_of(*raw["pairs"]),
        "org_map": org_map_of(*raw["org_map"]),
        "settings": raw["settings"],
        "billing_date": BILLING,
    }


@given(raw_cases())
def test_every_usage_row_has_exactly_one_outcome(raw: dict[str, Any]) -> None:
    case = _case(raw)
    before = {k: v.copy() for k, v in case.items() if isinstance(v, pd.DataFrame)}
    out = rc.reconcile(**case)
    check_shape(out)
    for name, frame in before.items():  # pure: the inputs are left as they were
        pd.testing.assert_frame_equal(case[name], frame)
    products = case["settings"].products
    usage = case["usage"][case["usage"]["product"].isin(products)]
    ids = {
        k: set(v.split(",")) for k, v in zip(out["sync_key"], out["organization_ids"].fillna(""), strict=True)
    }
    fed: dict[str, list[dict]] = {}
    for r in usage.to_dict("records"):
        if pd.isna(r["organization_id"]):
            owners = [f"line:{r['line_id']}:{r['product']}"]
        else:
            owners = [
                k for k, v in ids.items() if k.endswith(":" + r["product"]) and str(r["organization_id"]) in v
            ]
        assert len(owners) == 1, (r, owners)
        assert owners[0] in ids
        fed.setdefault(owners[0], []).append(r)
    for r in out.to_dict("records"):
        rows = fed.get(r["sync_key"], [])
        if not rows:  # only companies with live additions and no usage row get keys of their own
            assert r["reason_code"] in ("missing_from_invoice", "invalid_usage") and r["sync_key"].startswith(
                "company:"
            )
            continue
        if not pd.isna(r["huntress_quantity"]):  # absent or null counts add nothing
            assert r["huntress_quantity"] == sum(x["quantity"] for x in rows if not pd.isna(x["quantity"]))
    expected = _naive_reconcile(case)
    got = {
        r["sync_key"]: (
            r["outcome"],
            _na(r["reason_code"]),
            _na(r["huntress_quantity"]),
            _na(r["previous_quantity"]),
            _na(r["new_quantity"]),
        )
        for r in out.to_dict("records")
    }
    assert got == expected


def _na(v: Any) -> Any:
    return None if pd.isna(v) else v


def _naive_reconcile(case: dict[str, Any]) -> dict[str, tuple]:
    """The rules of docs/contract.md §2–3 written the slow, obvious way, row by row."""
    s: Settings = case["settings"]
    usage = [r for r in case["usage"].to_dict("records") if r["product"] in s.products]
    orgs: dict[int, dict] = {}
    for o in case["organizations"].to_dict("records"):
        orgs.setdefault(o["organization_id"], o)
    comps = {c["company_id"]: c for c in case["companies"].to_dict("records")}
    org_map = [(m["organization_id"], m["company_id"]) for m in case["org_map"].to_dict("records")]
    live = [a for a in case["additions"].to_dict("records") if _naive_live(a, s)]

    def fold(v: Any) -> str | None:
        return None if pd.isna(v) or not str(v).strip() else str(v).strip().casefold()

    def norm(v: Any) -> str | None:
        return None if pd.isna(v) else (rc.normalize_name(v) or None)

    def loose(v: str | None) -> str:  # never guess: only the letters and digits count
        return "".join(ch for ch in v or "" if ch.isalnum())

    # A key carried by organizations of two accounts (or of an unknown one) is no key match.
    holders: dict[str, dict[int, Any]] = {}
    for o in case["organizations"].to_dict("records"):
        if fold(o["key"]) and not pd.isna(o["organization_id"]):
            holders.setdefault(fold(o["key"]), {})[o["organization_id"]] = _na(o["account_id"])

    def key_of(o: dict) -> str | None:
        held = holders.get(fold(o["key"]) or "", {})
        accounts = set(held.values())
        return None if len(held) > 1 and (len(accounts) > 1 or None in accounts) else fold(o["key"])

    line_names: dict[int, Any] = {}  # an organization's first named line stands in for a missing name
    for r in usage:
        if pd.isna(line_names.get(r["organization_id"], pd.NA)):
            line_names[r["organization_id"]] = r["organization_name"]

    def company_of(org_id: int) -> tuple[str, int | None]:
        o = orgs.get(org_id, {"name": pd.NA, "key": None})
        name = line_names[org_id] if pd.isna(o["name"]) else o["name"]
        by_key = {c for c, x in comps.items() if key_of(o) and fold(x["identifier"]) == key_of(o)}
        by_name = {c for c, x in comps.items() if norm(name) and norm(x["name"]) == norm(name)}
        # A key or name match counts only with every company alike in letters and digits beside it.
        if by_key:
            by_key = {c for c, x in comps.items() if loose(fold(x["identifier"])) == loose(key_of(o))}
        if by_name:
            by_name = {c for c, x in comps.items() if loose(norm(x["name"])) == loose(norm(name))}
        for candidates in ({c for m, c in org_map if m == org_id}, by_key, by_name):
            if len(candidates) > 1:
                return "ambiguous", None
            if len(candidates) == 1:
                c = candidates.pop()
                return ("matched", c) if c in comps else ("unmapped", None)
        return "unmapped", None

    copies: dict[tuple, int] = {}
    for r in usage:
        copies[(r["organization_id"], r["product"])] = copies.get((r["organization_id"], r["product"]), 0) + 1
    groups: dict[str, list] = {}
    status: dict[str, str] = {}
    on_invoice: set[int] = set()
    for r in usage:
        absent = pd.isna(r["raw_quantity"]) or r["raw_quantity"] == "null"  # 0 unless a live addition
        invalid = (
            pd.isna(r["organization_id"])
            or copies[(r["organization_id"], r["product"])] > 1
            or (pd.isna(r["quantity"]) and not absent)
            or not pd.isna(r.get("issue", pd.NA))
        )
        if pd.isna(r["organization_id"]):
            k, st = f"line:{r['line_id']}:{r['product']}", "line"
        else:
            st, c = company_of(r["organization_id"])
            k = (
                f"company:{c}:{r['product']}"
                if st == "matched"
                else f"organization:{r['organization_id']}:{r['product']}"
            )
            if c is not None:
                on_invoice.add(c)
        groups.setdefault(k, []).append((invalid, absent, r["quantity"]))
        status[k] = st
    catalog = {v: p for p, v in s.products.items()}
    by_pair: dict[tuple, list] = {}
    for a in live:
        if a["product_identifier"] in catalog and not pd.isna(a["company_id"]):
            by_pair.setdefault((a["company_id"], catalog[a["product_identifier"]]), []).append(a)
    result = {}
    for k, rows in groups.items():
        valid = not any(inv for inv, _, _ in rows)
        if status[k] == "matched":
            _, c, p = k.split(":")
            valid = valid and not (any(a for _, a, _ in rows) and by_pair.get((int(c), p)))
        total = sum(q for _, a, q in rows if not a) if valid else None
        if status[k] == "line":
            result[k] = ("quarantined", "invalid_usage", None, None, None)
        elif status[k] != "matched":
            if valid and total == 0:
                result[k] = ("not_applicable", None, 0, None, None)
            else:
                code = "ambiguous_company_match" if status[k] == "ambiguous" else "unmapped_organization"
                result[k] = ("quarantined", code, total, None, None)
        else:
            _, c, p = k.split(":")
            result[k] = _naive_company(by_pair.get((int(c), p), []), valid, total, s)
    for (c, p), adds in by_pair.items():
        k = f"company:{c}:{p}"
        if k not in result:
            prev = adds[0]["quantity"] if len(adds) == 1 else None
            code = "invalid_usage" if c in on_invoice else "missing_from_invoice"
            result[k] = ("quarantined", code, None, _na(prev), None)
    return result


def _naive_company(adds: list[dict], valid: bool, total: int | None, s: Settings) -> tuple:
    prev = _na(adds[0]["quantity"]) if len(adds) == 1 else None
    if not valid:
        return ("quarantined", "invalid_usage", None, prev, None)
    if not adds:
        return (
            ("not_applicable", None, 0, None, None)
            if total == 0
            else ("quarantined", "no_live_addition", total, None, None)
        )
    if len(adds) > 1:
        return ("quarantined", "duplicate_addition", total, None, None)
    if prev is None or prev < 0 or prev != int(prev):
        return ("quarantined", "invalid_addition", total, prev, None)
    if total == prev:
        return ("unchanged", None, total, prev, total)
    diff = abs(total - prev)
    if (diff > s.max_change_units and diff > s.max_change_ratio * prev) or (
        total == 0 and prev > 0 and not s.allow_drop_to_zero
    ):
        return ("quarantined", "change_exceeds_limit", total, prev, None)
    return ("change", None, total, prev, total)


def _naive_live(a: dict, s: Settings) -> bool:
    day = pd.Timestamp("2026-11-01", tz="UTC")
    types = {t.strip().casefold() for t in s.agreement_types}
    starts = a["agreement_start_date"] if pd.isna(a["effective_date"]) else a["effective_date"]
    return (
        a["agreement_cancelled"] is False
        and a["agreement_status"] == "Active"
        and (pd.isna(a["agreement_end_date"]) or a["agreement_end_date"].date() >= day.date())
        and (
            not types
            or (not pd.isna(a["agreement_type"]) and a["agreement_type"].strip().casefold() in types)
        )
        and (pd.isna(a["addition_status"]) or a["addition_status"] == "Active")
        and (pd.isna(a["cancelled_date"]) or a["cancelled_date"].date() > day.date())
        and (pd.isna(starts) or starts.date() <= day.date())
    )
