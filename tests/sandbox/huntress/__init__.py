"""The sandbox's Huntress API over real HTTP: shapes (checked against the OpenAPI spec), paging,
filters, auth, 404s and the sliding-window rate limit. Here: the spec, the scenario most tests
serve, and helpers.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from tests.sandbox import invoice, make_scenario, organizations, usage_lines

# Huntress's definition as vendored for the contract tests (provenance: tests/contract/specs/README.md).
SPEC_PATH = Path(__file__).parents[2] / "contract" / "specs" / "huntress-openapi.json"
SERVED_DEFINITIONS = (
    "Account",
    "Invoice",
    "Pagination",
    "Organization",
    "OrganizationWithActualProductUsages",
    "OrganizationUsageLineItem",
    "AccountUsageLineItem",
)
ODD_NAMES = ["Café Ünïcødé 株式会社 🚀", "<script>alert('x')</script> & \"Sons\"", "  Padded   Name  "]
BAD_USAGE = ["abc", -5, 2.5, None, 10**20, True, {"nested": 1}, [1, 2]]


# --- the OpenAPI spec, normalized for validation (the choices are documented in docs/sandbox.md) -------


def _normalize(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _normalize(v) for k, v in node.items() if k != "example"}
        if out.get("type") == "Object":  # the spec's capital-O typo for nested objects
            out["type"] = "object"
        return out
    if isinstance(node, list):
        return [_normalize(v) for v in node]
    return node


@cache
def _spec() -> tuple[dict[str, Any], dict[str, Any]]:
    raw = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    defs = _normalize(raw["definitions"])
    # Typed "string" in the spec, but its example (and the real API) is an object.
    defs["OrganizationWithActualProductUsages"]["properties"]["actual_usages"]["type"] = "object"
    for name in SERVED_DEFINITIONS:
        definition = defs[name]
        # Strict on purpose: the sandbox sends no field the spec does not name. The spec requires three
        # fields it never describes (microsoft_365_tenant_id, ...): they are allowed with any type.
        for field in definition.get("required", []):
            definition["properties"].setdefault(field, {})
        definition["additionalProperties"] = False
    return raw["paths"], defs


def assert_matches_spec(path: str, body: Any) -> None:
    paths, defs = _spec()
    schema = _normalize(paths[path]["get"]["responses"]["200"]["schema"])
    schema["additionalProperties"] = False
    schema.setdefault("required", list(schema["properties"]))
    validator = jsonschema.Draft4Validator(
        {**schema, "definitions": defs}, format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(body), key=jsonschema.exceptions.relevance)
    assert not errors, f"{path}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


# --- the scenario served by most tests -------------------------------------------------------------------


def rich_scenario() -> dict[str, Any]:
    orgs = organizations(23)
    for org, name in zip(orgs[3:6], ODD_NAMES, strict=True):
        org["name"] = name
    orgs[0]["actual_usages"] = {"edr": {"billable_agents_count": 7}, "sat": {"learners_count": 3}}
    orgs[1].update(created_at="2024-03-05T10:00:00+02:00", updated_at="2026-01-02T03:04:05Z")
    lines = usage_lines(orgs)
    bad_lines = copy.deepcopy(lines)
    for line, bad in zip(bad_lines[6:], BAD_USAGE, strict=False):
        line["actual_usage"]["edr"] = bad
    del bad_lines[-1]["actual_usage"]["sat"]
    bad_lines[0]["id"] = 9001
    bad_lines.append({"organization_id": 999, "organization_name": "Deleted Org", "actual_usage": {"edr": 1}})
    return make_scenario(
        orgs,
        invoices=[
            invoice(5001, "2026-09-01T06:00:00Z", lines[:5], period_start="2026-08-01T00:00:00Z"),
            invoice(
                5002, "2026-10-01T06:00:00Z", lines[:5], status="open", updated_at="2026-10-05T00:00:00Z"
            ),
            invoice(
                5003,
                "2026-11-01T06:00:00Z",
                bad_lines,
                period_start="2026-10-01T00:00:00Z",
                period_end="2026-11-01T00:00:00Z",
            ),
            invoice(
                5004, "2026-08-15T09:30:00Z", [], status="draft", quantity=12, amount=4321, receipt="r://x"
            ),
        ],
    ) | {"meta": {"note": "test scenario"}}


def get_json(api: httpx.Client, url: str, **params: Any) -> dict[str, Any]:
    response = api.get(url, params=params or None)  # httpx drops a URL's own query when given params={}
    assert response.status_code == 200, response.text
    return response.json()


def walk(api: httpx.Client, url: str, plural: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow next_page_url to the end; returns the items and the number of pages."""
    body = get_json(api, url, **params)
    items, pages = list(body[plural]), 1
    while "next_page_url" in body["pagination"]:
        assert body["pagination"]["next_page_url"].startswith(str(api.base_url).rstrip("/") + "/v1/")
        body = get_json(api, body["pagination"]["next_page_url"])
        items += body[plural]
        pages += 1
    assert body["pagination"] == {}
    return items, pages


def ids(body: dict[str, Any], plural: str) -> list[int]:
    return [item["id"] for item in body[plural]]
