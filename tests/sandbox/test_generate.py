"""The scenario generator: deterministic, realistic, and every planted problem really is one.

The planted problems are checked against the data with a small matcher written here from
CONTRACTS §2-§3 and the ConnectWise reference, independent of both the generator and the sync.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from billing_sandbox import generate as gen
from billing_sandbox.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.json"
SCHEMA = ROOT / "include" / "billing_sandbox" / "scenario.schema.json"
PRODUCTS = {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR", "sat": "HUNTRESS-SAT", "siem": "HUNTRESS-SIEM"}
CHECKED_CODES = {
    "unmapped_organization", "ambiguous_company_match", "no_live_addition", "duplicate_addition",
    "invalid_usage", "change_exceeds_limit", "missing_from_invoice",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# An independent reference matcher


def _fold_with(sep: str) -> Callable[[str], str]:
    """Case, spacing and punctuation folded; punctuation either dropped or turned into a space."""

    def fold(name: str) -> str:
        text = unicodedata.normalize("NFKC", name).casefold()
        text = "".join(sep if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
        return " ".join(text.split())

    return fold


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= 10_000_000 else None


def _day(ts: str | None) -> date | None:
    return date.fromisoformat(ts[:10]) if ts else None


def _live(addition: dict, agreement: dict, billing: date) -> bool:
    cancelled, effective = _day(addition.get("cancelledDate")), _day(addition.get("effectiveDate"))
    return (
        agreement["cancelledFlag"] is False
        and agreement["agreementStatus"] == "Active"
        and addition.get("additionStatus", "Active") == "Active"
        and (cancelled is None or cancelled > billing)
        and effective is not None
        and effective <= billing
    )


def match(scenario: dict, fold: Callable[[str], str]) -> dict[int, tuple[str, Any]]:
    """organization id → ("key"|"name", company id) or ("ambiguous"|"unmapped", candidates)."""
    companies = [c for c in scenario["connectwise"]["companies"] if not c.get("deletedFlag")]
    by_key, by_name = defaultdict(list), defaultdict(list)
    for c in companies:
        by_key[c["identifier"].casefold()].append(c["id"])
        by_name[fold(c["name"])].append(c["id"])
    out = {}
    for org in scenario["huntress"]["organizations"]:
        for rule, found in (("key", by_key[org["key"].casefold()]), ("name", by_name[fold(org["name"])])):
            if len(found) == 1:
                out[org["id"]] = (rule, found[0])
                break
            if len(found) > 1:
                out[org["id"]] = ("ambiguous", sorted(found))
                break
        else:
            out[org["id"]] = ("unmapped", [])
    return out


DROP_PUNCTUATION = _fold_with("")


def reconcile(scenario: dict, fold: Callable[[str], str] = DROP_PUNCTUATION) -> dict[str, Any]:
    """Outcome of every sync key of the newest invoice, per CONTRACTS §2-§3."""
    billing = date.fromisoformat(scenario["meta"]["billing_date"])
    invoice = max(scenario["huntress"]["invoices"], key=lambda i: i["created_at"])
    matches = match(scenario, fold)
    catalog = {c["id"]: c["identifier"] for c in scenario["connectwise"]["catalog"]}
    live: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for ag in scenario["connectwise"]["agreements"]:
        for a in ag["additions"]:
            if _live(a, ag, billing):
                live[(ag["company_id"], catalog[a["product_id"]])].append(a)
    outcomes: dict[tuple, str] = {}
    usage: dict[tuple[int, str], list[Any]] = defaultdict(list)
    orgs_of: dict[int, list[int]] = defaultdict(list)
    for line in invoice["lines"]:
        rule, target = matches[line["organization_id"]]
        if rule in ("ambiguous", "unmapped"):
            code = "ambiguous_company_match" if rule == "ambiguous" else "unmapped_organization"
            outcomes[("organization", line["organization_id"])] = code
            continue
        orgs_of[target].append(line["organization_id"])
        for p in PRODUCTS:
            usage[(target, p)].append(line["actual_usage"][p] if p in line["actual_usage"] else "<missing>")
    for (company, p), values in usage.items():
        outcomes[(company, p)] = _decide(values, live.get((company, PRODUCTS[p]), []))
    for company, identifier in live:
        p = next((p for p, i in PRODUCTS.items() if i == identifier), None)
        if p and company not in orgs_of:
            outcomes[(company, p)] = "missing_from_invoice"
    return {"outcomes": outcomes, "matches": matches, "orgs_of": orgs_of}


def _decide(values: list[Any], live: list[dict]) -> str:
    counts = [_count(v) for v in values]
    if any(c is None for c in counts):
        return "invalid_usage"
    total = sum(counts)  # type: ignore[arg-type]
    if len(live) > 1:
        return "duplicate_addition"
    if not live:
        return "no_live_addition" if total > 0 else "not_applicable"
    old = live[0]["quantity"]
    if old == total:
        return "unchanged"
    d = abs(total - old)
    if (d > 10 and d > 0.5 * old) or (old > 0 and total == 0):
        return "change_exceeds_limit"
    return "changed"


def planted_keys(scenario: dict) -> set[tuple]:
    out = set()
    for code, entries in scenario["meta"]["planted"].items():
        for e in entries:
            if code in ("unmapped_organization", "ambiguous_company_match"):
                out.add((code, "organization", e["organization_id"]))
            else:
                out.add((code, e["company_id"], e["product"]))
    return out


def problem_keys(result: dict) -> set[tuple]:
    return {(code, *key) for key, code in result["outcomes"].items() if code in CHECKED_CODES}


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def demo_like() -> dict:
    return gen.generate(40, 42)


@pytest.fixture(scope="module")
def demo_result(demo_like: dict) -> dict:
    return reconcile(demo_like)


# --------------------------------------------------------------------------------------------
# Determinism and the shipped demo


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a, b = gen.dumps(gen.generate(40, 42)), gen.dumps(gen.generate(40, 42))
    assert a == b
    assert gen.dumps(gen.generate(40, 43)) != a


def test_shipped_demo_equals_generator_output() -> None:
    text = DEMO.read_text(encoding="utf-8")
    shipped = json.loads(text)
    recorded = dict(shipped["meta"]["generator"])
    assert recorded.pop("version") == gen.GENERATOR_VERSION, (
        "regenerate scenarios/demo.json (docs/scenarios.md)"
    )
    assert (recorded["organizations"], recorded["seed"], recorded["billing_date"], recorded["months"]) == (
        40,
        42,
        "2026-11-01",
        3,
    )
    n, seed = recorded.pop("organizations"), recorded.pop("seed")
    assert text == gen.dumps(gen.generate(n, seed, **recorded)), "regenerate scenarios/demo.json"


def test_main_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert gen.main(["--organizations", "40", "--seed", "42", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == gen.dumps(gen.generate(40, 42))
    compact = tmp_path / "c.json"
    gen.main(
        [
            "--organizations",
            "12",
            "--seed",
            "5",
            "--out",
            str(compact),
            "--compact",
            "--months",
            "2",
            "--change-share",
            "0.1",
            "--agreements-per-company",
            "3",
            "--rate-limit",
            "30",
            "--clean",
            "--billing-date",
            "2026-06-15",
        ]
    )
    data = json.loads(compact.read_text(encoding="utf-8"))
    assert data == gen.generate(
        12,
        5,
        months=2,
        change_share=0.1,
        agreements_per_company=3,
        rate_limit=30,
        clean=True,
        billing_date="2026-06-15",
    )
    assert data["huntress"]["rate_limit_per_minute"] == 30


def test_cli_subcommand(tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "billing_sandbox",
            "generate",
            "--organizations",
            "8",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text(encoding="utf-8")) == gen.generate(8, 3)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        gen.generate(10, 1, months=0)
    with pytest.raises(ValueError):
        gen.generate(10, 1, change_share=1.5)
    with pytest.raises(ValueError):
        gen.generate(10, 1, billing_date="2026-13-01")
    with pytest.raises(TypeError):
        gen.generate(10, 1, colour="blue")
    with pytest.raises(SystemExit) as exc:
        gen.main(["--organizations", "0", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2


# --------------------------------------------------------------------------------------------
# Every planted problem is real, and nothing else is a problem


def test_every_reason_code_is_planted_at_40(demo_like: dict, demo_result: dict) -> None:
    found = Counter(code for code, *_ in problem_keys(demo_result))
    assert set(found) == CHECKED_CODES, found
    assert problem_keys(demo_result) == planted_keys(demo_like)
    for code, entries in demo_like["meta"]["planted"].items():
        variants = {e["variant"] for e in entries}
        assert set(gen.PROBLEMS[code][1]) <= variants, (code, variants)


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("n", [5, 25, 120])
def test_meta_is_exact_for_other_sizes(n: int, seed: int) -> None:
    scenario = gen.generate(n, seed)
    result = reconcile(scenario)
    assert problem_keys(result) == planted_keys(scenario)
    assert len(scenario["huntress"]["organizations"]) == n
    keys = Counter(code for code in result["outcomes"].values())
    assert keys["changed"] == scenario["meta"]["counts"]["clean_keys"]["changed"]
    assert keys["unchanged"] == scenario["meta"]["counts"]["clean_keys"]["unchanged"]


def test_ten_organizations_get_every_code() -> None:
    scenario = gen.generate(10, 4)
    assert {code for code, *_ in problem_keys(reconcile(scenario))} == CHECKED_CODES


def test_matching_does_not_depend_on_how_punctuation_folds(demo_like: dict) -> None:
    assert (
        reconcile(demo_like, _fold_with(""))["outcomes"] == reconcile(demo_like, _fold_with(" "))["outcomes"]
    )


def test_clean_scenario_has_no_problems() -> None:
    scenario = gen.generate(60, 9, clean=True)
    result = reconcile(scenario)
    assert not problem_keys(result)
    assert all(not v for v in scenario["meta"]["planted"].values())
    assert set(result["outcomes"].values()) <= {"changed", "unchanged", "not_applicable"}


def test_planted_unmapped_and_ambiguous_orgs(demo_like: dict, demo_result: dict) -> None:
    companies = {c["id"]: c for c in demo_like["connectwise"]["companies"]}
    orgs = {o["id"]: o for o in demo_like["huntress"]["organizations"]}
    fold = _fold_with("")
    for e in demo_like["meta"]["planted"]["unmapped_organization"]:
        org = orgs[e["organization_id"]]
        for c in companies.values():
            if not c.get("deletedFlag"):
                assert c["identifier"].casefold() != org["key"].casefold()
                assert fold(c["name"]) != fold(org["name"])
        if e["variant"] == "deleted_company_only":
            gone = companies[e["deleted_company_id"]]
            assert gone["deletedFlag"] is True and gone["identifier"].casefold() == org["key"]
    (amb,) = demo_like["meta"]["planted"]["ambiguous_company_match"]
    org = orgs[amb["organization_id"]]
    assert all(fold(companies[c]["name"]) == fold(org["name"]) for c in amb["company_ids"])
    assert demo_result["matches"][org["id"]] == ("ambiguous", sorted(amb["company_ids"]))


def _why_not_live(scenario: dict, company_id: int, identifier: str) -> set[str]:
    billing = date.fromisoformat(scenario["meta"]["billing_date"])
    catalog = {c["id"]: c["identifier"] for c in scenario["connectwise"]["catalog"]}
    why = set()
    for ag in scenario["connectwise"]["agreements"]:
        for a in ag["additions"]:
            if ag["company_id"] != company_id or catalog[a["product_id"]] != identifier:
                continue
            if ag["cancelledFlag"]:
                why.add("cancelled_agreement")
            elif ag["agreementStatus"] == "Expired":
                why.add("expired_agreement")
            elif a["cancelledDate"] and _day(a["cancelledDate"]) <= billing:
                why.add("cancelled_addition")
            elif _day(a["effectiveDate"]) > billing:
                why.add("future_effective")
    return why or {"no_addition"}


def test_no_live_variants_are_what_they_say(demo_like: dict) -> None:
    for e in demo_like["meta"]["planted"]["no_live_addition"]:
        why = _why_not_live(demo_like, e["company_id"], PRODUCTS[e["product"]])
        assert e["variant"] in why, (e, why)


def test_invalid_usage_values_vary(demo_like: dict) -> None:
    newest = max(demo_like["huntress"]["invoices"], key=lambda i: i["created_at"])
    kinds = set()
    for line in newest["lines"]:
        for p in PRODUCTS:
            if p not in line["actual_usage"]:
                kinds.add("missing")
                continue
            v = line["actual_usage"][p]
            if v is None:
                kinds.add("null")
            elif isinstance(v, str):
                kinds.add("string")
            elif isinstance(v, float):
                kinds.add("fractional")
            elif v < 0:
                kinds.add("negative")
            elif v > 10**9:
                kinds.add("huge")
    assert kinds == {"missing", "null", "string", "fractional", "negative", "huge"}


def test_change_guard_cases(demo_like: dict) -> None:
    variants = {e["variant"]: e for e in demo_like["meta"]["planted"]["change_exceeds_limit"]}
    assert variants["drop_to_zero"]["usage"] == 0 and 0 < variants["drop_to_zero"]["previous_quantity"] <= 10
    assert variants["from_zero"]["previous_quantity"] == 0
    assert variants["big_drop"]["usage"] < variants["big_drop"]["previous_quantity"]
    assert variants["jump_up"]["usage"] > variants["jump_up"]["previous_quantity"]


def test_missing_from_invoice_variants(demo_like: dict) -> None:
    newest = max(demo_like["huntress"]["invoices"], key=lambda i: i["created_at"])
    on_invoice = {line["organization_id"] for line in newest["lines"]}
    older = {
        line["organization_id"] for inv in demo_like["huntress"]["invoices"][:-1] for line in inv["lines"]
    }
    orgs = {o["id"] for o in demo_like["huntress"]["organizations"]}
    by_variant = {e["variant"]: e for e in demo_like["meta"]["planted"]["missing_from_invoice"]}
    churned = by_variant["churned_organization"]["organization_id"]
    assert churned in orgs and churned in older and churned not in on_invoice
    assert "organization_id" not in by_variant["no_organization"]


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


# --------------------------------------------------------------------------------------------
# Scale and schema


def test_scale_5000_organizations() -> None:
    started = time.perf_counter()
    scenario = gen.generate(5000, 2026)
    text = gen.dumps(scenario)
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"{elapsed:.1f}s"
    assert len(scenario["connectwise"]["agreements"]) >= 10_000
    assert len(text) > 1_000_000
    result = reconcile(scenario)
    assert problem_keys(result) == planted_keys(scenario)
    found = Counter(code for code, *_ in problem_keys(result))
    for code, (share, _) in gen.PROBLEMS.items():
        assert found[code] >= share * 5000 * 0.9, (code, found[code])


# CONTRACTS §5 field names the generator always writes (the schema lets many of them default).
ALWAYS_WRITTEN = {
    "huntress": ("api_key", "api_secret", "rate_limit_per_minute", "account", "organizations", "invoices"),
    "connectwise": (
        "company_id",
        "public_key",
        "private_key",
        "client_id",
        "companies",
        "catalog",
        "agreements",
    ),
    "organization": ("id", "name", "key"),
    "invoice": ("id", "created_at", "status", "plan", "currency_type", "period_start", "period_end", "lines"),
    "line": ("organization_id", "actual_usage"),
    "agreement": (
        "id",
        "name",
        "type",
        "company_id",
        "agreementStatus",
        "cancelledFlag",
        "startDate",
        "additions",
    ),
    "addition": ("id", "product_id", "quantity", "effectiveDate", "cancelledDate"),
}


def _shape_errors(s: dict) -> list[str]:
    h, cw = s["huntress"], s["connectwise"]
    records = [("huntress", h), ("connectwise", cw)] + [("organization", o) for o in h["organizations"]]
    for inv in h["invoices"]:
        records += [("invoice", inv)] + [("line", line) for line in inv["lines"]]
    for ag in cw["agreements"]:
        records += [("agreement", ag)] + [("addition", a) for a in ag["additions"]]
    return [f"{what}.{key}" for what, record in records for key in ALWAYS_WRITTEN[what] if key not in record]


def test_shape_and_schema(tmp_path: Path) -> None:
    scenarios = [
        json.loads(DEMO.read_text(encoding="utf-8")),
        gen.generate(30, 5, months=1),
        gen.generate(30, 6, clean=True),
    ]
    for s in scenarios:
        assert not _shape_errors(s)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    for s in scenarios:
        jsonschema.validate(s, schema)
    path = tmp_path / "g.json"
    path.write_text(gen.dumps(scenarios[1]), encoding="utf-8")
    load_scenario(path)
    load_scenario(DEMO)
