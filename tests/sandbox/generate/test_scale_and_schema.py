"""Generator: scale, and the scenario's shape against the schema."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema

from billing_sandbox import generate as gen
from billing_sandbox.scenario import load_scenario
from tests.sandbox.generate import DEMO, SCHEMA, planted_keys, problem_keys, reconcile

# --------------------------------------------------------------------------------------------
# Scale and schema


def test_scale_5000_organizations() -> None:
    # Scale, not speed: no test depends on the machine's speed.
    scenario = gen.generate(5000, 2026)
    text = gen.dumps(scenario)
    assert len(scenario["connectwise"]["agreements"]) >= 10_000
    assert len(text) > 1_000_000
    result = reconcile(scenario)
    assert problem_keys(result) == planted_keys(scenario)
    found = Counter(code for code, *_ in problem_keys(result))
    for code, (share, _) in gen.PROBLEMS.items():
        assert found[code] >= share * 5000 * 0.9, (code, found[code])


# docs/contract.md §5 field names the generator always writes (the schema lets many of them default).
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
