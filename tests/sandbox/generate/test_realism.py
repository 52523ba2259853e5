"""Generator: realistic names, agreements, additions, invoices and meta."""

from __future__ import annotations

from collections import Counter

from billing_sandbox import generate as gen
from tests.sandbox.generate import CHECKED_CODES, PRODUCTS, _fold_with, reconcile

# --------------------------------------------------------------------------------------------
# Realism


def test_clean_structure_is_present(demo_like: dict, demo_result: dict) -> None:
    rules = Counter(rule for rule, _ in demo_result["matches"].values())
    assert rules["key"] >= 20 and rules["name"] >= 3
    multi = [c for c, orgs in demo_result["orgs_of"].items() if len(orgs) > 1]
    assert multi, "a company fed by several organizations"
    assert all(
        demo_result["outcomes"][(c, p)] in ("changed", "unchanged", "not_applicable")
        for c in multi
        for p in PRODUCTS
    )
    outcomes = Counter(demo_result["outcomes"].values())
    assert outcomes["unchanged"] > outcomes["changed"] > 0 and outcomes["not_applicable"] > 0


def test_names_are_realistic_and_tricky(demo_like: dict, demo_result: dict) -> None:
    names = [c["name"] for c in demo_like["connectwise"]["companies"]]
    assert any("'" in n for n in names) and any("&" in n for n in names)
    assert any(not n.isascii() for n in names)
    html = [o for o in demo_like["huntress"]["organizations"] if "<" in o["name"]]
    assert any("<script>" in o["name"] for o in html)
    assert all(demo_result["matches"][o["id"]][0] in ("key", "name") for o in html), (
        "markup names stay matchable"
    )
    fold = _fold_with("")
    active = Counter(
        fold(c["name"]) for c in demo_like["connectwise"]["companies"] if not c.get("deletedFlag")
    )
    ambiguous: set[str] = set()
    for e in demo_like["meta"]["planted"]["ambiguous_company_match"]:
        ambiguous |= {
            fold(c["name"]) for c in demo_like["connectwise"]["companies"] if c["id"] in e["company_ids"]
        }
    assert all(n == 1 for name, n in active.items() if name not in ambiguous), "unplanned name collisions"


def test_agreements_and_additions_are_varied(demo_like: dict) -> None:
    agreements = demo_like["connectwise"]["agreements"]
    types = {a["type"] for a in agreements}
    assert {"Managed Services", "Security Bundle", "Block Time", "Project"} <= types
    assert any(
        a["cancelledFlag"] and a["agreementStatus"] == "Cancelled" and a.get("dateCancelled")
        for a in agreements
    )
    assert any(a["agreementStatus"] == "Expired" and a.get("endDate") for a in agreements)
    catalog = {c["id"]: c["identifier"] for c in demo_like["connectwise"]["catalog"]}
    assert set(PRODUCTS.values()) <= set(catalog.values())
    used = {catalog[a["product_id"]] for ag in agreements for a in ag["additions"]}
    assert {"M365-E3", "BACKUP-SERVER"} & used and len(used - set(PRODUCTS.values())) >= 4
    billing = demo_like["meta"]["billing_date"]
    additions = [a for ag in agreements for a in ag["additions"]]
    assert any(a["cancelledDate"] and a["cancelledDate"][:10] < billing for a in additions)
    assert any(a["effectiveDate"][:10] > billing for a in additions)
    assert all(isinstance(a["quantity"], int) and a["quantity"] >= 0 for a in additions)


def test_ids_unique_and_references_resolve(demo_like: dict) -> None:
    h, cw = demo_like["huntress"], demo_like["connectwise"]
    lists = {
        "organizations": [o["id"] for o in h["organizations"]],
        "org keys": [o["key"] for o in h["organizations"]],
        "invoices": [i["id"] for i in h["invoices"]],
        "lines": [line["id"] for i in h["invoices"] for line in i["lines"]],
        "companies": [c["id"] for c in cw["companies"]],
        "identifiers": [c["identifier"].casefold() for c in cw["companies"]],
        "catalog": [c["id"] for c in cw["catalog"]],
        "agreements": [a["id"] for a in cw["agreements"]],
        "additions": [a["id"] for ag in cw["agreements"] for a in ag["additions"]],
    }
    for name, ids in lists.items():
        assert len(ids) == len(set(ids)), name
    companies, catalog, orgs = set(lists["companies"]), set(lists["catalog"]), set(lists["organizations"])
    assert all(a["company_id"] in companies for a in cw["agreements"])
    assert all(a["product_id"] in catalog for ag in cw["agreements"] for a in ag["additions"])
    assert all(line["organization_id"] in orgs for i in h["invoices"] for line in i["lines"])
    assert all(len(c["identifier"]) <= 25 for c in cw["companies"])


def test_invoices_are_monthly_and_drift() -> None:
    scenario = gen.generate(60, 11, months=5, billing_date="2026-01-31")
    invoices = scenario["huntress"]["invoices"]
    assert [i["created_at"] for i in invoices] == [
        "2025-09-30T06:00:00Z",
        "2025-10-31T06:00:00Z",
        "2025-11-30T06:00:00Z",
        "2025-12-31T06:00:00Z",
        "2026-01-31T06:00:00Z",
    ]
    assert scenario["meta"]["billing_dates"][-1] == "2026-01-31"
    assert all(i["period_end"][:10] == i["created_at"][:10] for i in invoices)
    for older, newer in zip(invoices, invoices[1:], strict=False):
        a = {line["organization_id"]: line["actual_usage"] for line in older["lines"]}
        b = {line["organization_id"]: line["actual_usage"] for line in newer["lines"]}
        same = [o for o in a if o in b]
        assert len(same) >= 0.8 * len(a)
        if newer is invoices[-1]:
            continue  # the newest carries the planted values
        moved = [(a[o][p], b[o][p]) for o in same for p in PRODUCTS if a[o][p] != b[o][p]]
        assert moved, "usage drifts month to month"
        assert all(abs(x - y) <= max(3, 0.1 * max(x, y)) for x, y in moved), "drift stays realistic"
        assert all(isinstance(v, int) and v >= 0 for u in a.values() for v in u.values())


def test_change_share_is_honoured() -> None:
    scenario = gen.generate(1000, 3, change_share=0.10, months=1)
    keys = Counter(reconcile(scenario)["outcomes"].values())
    assert 0.07 <= keys["changed"] / (keys["changed"] + keys["unchanged"]) <= 0.13


def test_change_share_moves_quantities_only() -> None:
    low, high = gen.generate(200, 8, change_share=0.1), gen.generate(200, 8, change_share=0.3)
    assert low["huntress"]["organizations"] == high["huntress"]["organizations"]
    assert low["connectwise"]["companies"] == high["connectwise"]["companies"]
    shape = [[(a["id"], a["product_id"]) for a in ag["additions"]] for ag in low["connectwise"]["agreements"]]
    assert shape == [
        [(a["id"], a["product_id"]) for a in ag["additions"]] for ag in high["connectwise"]["agreements"]
    ]
    changed = [{k for k, v in reconcile(s)["outcomes"].items() if v == "changed"} for s in (low, high)]
    assert changed[0] < changed[1]


def test_meta_records_generator_and_shares(demo_like: dict) -> None:
    meta = demo_like["meta"]
    assert meta["generator"] == {
        "version": gen.GENERATOR_VERSION,
        "seed": 42,
        "organizations": 40,
        **gen.DEFAULTS,
    }
    assert meta["billing_date"] == "2026-11-01"
    newest = max(demo_like["huntress"]["invoices"], key=lambda i: i["created_at"])
    assert newest["created_at"] == "2026-11-01T06:00:00Z"
    assert set(meta["shares"]["problems"]) == CHECKED_CODES
    assert meta["counts"]["planted"] == {k: len(v) for k, v in meta["planted"].items()}
