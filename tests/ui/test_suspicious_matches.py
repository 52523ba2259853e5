"""Issue 20 §3 "Suspicious matches surface", with FastAPI's TestClient over a real billing database:
the mapping page's "Check these matches" lists a key match whose names share nothing, a company two
organizations map to, and the pairing an unmapped organization and a company missing from the invoice
suggest; its one-click button maps the organization; the quarantine page points there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing_sync import frames, store
from tests.helpers.review_app import App, mounted

RUN = "manual__2026-11-01T00:00:00+00:00"
DAY = "2026-11-01"
ORGS = [
    {"id": 137, "name": "tidewater marketing pty ltd", "key": "fitzgeraldlandscaping"},  # key, names differ
    {"id": 125, "name": "Parkside Physical Therapy", "key": "parkside-physical-therapy"},  # unmapped
    {"id": 1, "name": "Acme East", "key": "acme"},  # key → 10
    {"id": 2, "name": "Acme West", "key": "acme-west"},  # mapped to 10 by billing_org_map
    {"id": 3, "name": "ACME, Inc.", "key": "acmeinc"},  # key → 11: near-identical names, no finding
]
COMPANIES = [
    {"id": 378, "identifier": "FitzgeraldLandscaping", "name": "Fitzgerald Landscaping LLP"},
    {"id": 373, "identifier": "TidewaterMarketing", "name": "Tidewater Marketing, Inc."},
    {"id": 374, "identifier": "ParksidePTLLC", "name": "Parkside PT LLC"},
    {"id": 10, "identifier": "acme", "name": "Acme"},
    {"id": 11, "identifier": "acmeinc", "name": "Acme Inc"},
]


def fill(engine) -> None:
    store.start_run(engine, RUN, DAY, 5001, "push", {"dry_run": False}, tenant="default")
    store.write_frame(engine, RUN, "organizations", frames.organizations_frame(ORGS), tenant="default")
    store.write_frame(engine, RUN, "companies", frames.companies_frame(COMPANIES), tenant="default")
    store.set_org_map(engine, 2, 10, "West bills with East", "carol", tenant="default")
    store.upsert_quarantine(
        engine,
        RUN,
        DAY,
        [
            {
                "sync_key": f"company:374:{p}",
                "reason_code": "missing_from_invoice",
                "cw_company_id": 374,
                "product": p,
                "detail": "live addition, no usage on the invoice",
                "payload": {},
            }
            for p in ("edr", "sat")
        ]
        + [
            {
                "sync_key": "organization:125:edr",
                "reason_code": "unmapped_organization",
                "huntress_organization_id": 125,
                "huntress_organization_name": "Parkside Physical Therapy",
                "product": "edr",
                "detail": "no rule maps it",
                "payload": {},
            }
        ],
        tenant="default",
    )
    store.finish_run(engine, RUN, "success", {"quarantined": 3}, {"mismatches": []}, None, tenant="default")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    fill(engine)
    with mounted(engine, tmp_path / "reports", tmp_path) as app:
        yield app


def section(html: str) -> str:
    found = re.search(r'<section[^>]*data-testid="suspicious".*?</section>', html, re.S)
    assert found is not None, "no Check these matches section"
    return found.group(0)


def items(html: str) -> list[tuple[str, str]]:
    return re.findall(r'(<li data-testid="finding-(\w+)".*?</li>)', section(html), re.S)


def test_the_mapping_page_lists_the_three_kinds_with_their_actions(app: App) -> None:
    page = app.get("/mapping")
    assert page.status_code == 200
    listed = {kind: item for item, kind in items(page.text)}
    assert sorted(listed) == ["names_differ", "pairing_suggested", "shared_company"]
    assert len(items(page.text)) == 3  # "ACME, Inc." → "Acme Inc" is no finding
    assert '<details open data-testid="shared-companies">' in page.text  # few: shown unfolded

    pair = listed["pairing_suggested"]
    assert "Map Parkside Physical Therapy to Parkside PT LLC" in pair
    assert 'name="company_id" value="374"' in pair and 'name="organization_id" value="125"' in pair
    assert re.search(r'name="csrf_token" value="[0-9a-f]+"', pair)

    differ = listed["names_differ"]
    assert "tidewater marketing pty ltd" in differ and "Fitzgerald Landscaping LLP" in differ
    link = re.search(r'href="([^"]+)"[^>]*data-testid="remap-137"', differ)
    assert link is not None and "Map to another company" in differ
    # the link opens the picker in the organization's row, searching for its own name
    picked = app.get(link.group(1).replace("&amp;", "&").removeprefix("/billing-review"))
    row = re.search(r'<tr id="org-137".*?</tr>', picked.text, re.S)
    assert row is not None and 'data-company-id="373"' in row.group(0)
    assert 'form="pick-137" name="company_id"' in row.group(0)

    shared = listed["shared_company"]
    assert "check this is intended" in shared
    assert "#org-1" in shared and "#org-2" in shared and "Acme East" in shared and "Acme West" in shared


def test_the_pairing_button_maps_the_organization(app: App) -> None:
    pair = dict(items(app.get("/mapping").text))
    form = next(item for item, kind in pair.items() if kind == "pairing_suggested")
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    fields.pop("csrf_token")
    done = app.post("/mapping", fields)  # the form's own fields, and the page's token
    assert done.status_code == 303 and "done=mapped" in done.headers["location"]
    mapped = {r["huntress_organization_id"]: r for r in store.list_org_map(app.engine, tenant="default")}
    assert mapped[125]["cw_company_id"] == 374 and mapped[125]["created_by"] == "alice"
    assert "Suggested pairing" in (mapped[125]["note"] or "")
    decisions = store.list_decisions(app.engine, tenant="default", organization_id=125)
    assert [d["kind"] for d in decisions][:1] == ["map"]
    # mapped, it is no longer suggested; the other findings stay
    kinds = sorted(kind for _, kind in items(app.get("/mapping").text))
    assert kinds == ["names_differ", "shared_company"]


def test_the_pairing_needs_the_token(app: App) -> None:
    refused = app.post("/mapping", {"organization_id": "125", "company_id": "374"}, token=False)
    assert refused.status_code in (400, 403)
    assert store.list_org_map(app.engine, tenant="default")[0]["huntress_organization_id"] == 2


def test_the_quarantine_page_points_to_the_section(app: App) -> None:
    html = app.get("/quarantine").text
    line = re.search(r'<p[^>]*data-testid="suspicious-count".*?</p>', html, re.S)
    assert line is not None and line.group(0).startswith('<p class="small"')
    assert "3 matches to check" in line.group(0) and "/mapping#check" in line.group(0)


def test_findings_read_the_tenants_newest_staging(tmp_path: Path) -> None:
    from billing_sync.review import suspicious_view
    from tests.helpers import review_app

    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    assert suspicious_view.findings(engine, tenant="default") == []  # no run staged anything
    fill(engine)
    assert len(suspicious_view.findings(engine, tenant="default")) == 3
    assert len(suspicious_view.findings(engine, tenant="default")) == 3  # asked again (cached)
    # the company's missing_from_invoice rows resolved: nothing suggests the pairing any more
    for row in store.list_quarantine(engine, reason_code="missing_from_invoice", tenant="default"):
        store.set_quarantine_status(engine, row["id"], "resolved", "alice", None, tenant="default")
    kinds = [f.kind for f in suspicious_view.findings(engine, tenant="default")]
    assert kinds == ["names_differ", "shared_company"]
    assert suspicious_view.findings(engine, tenant="other") == []  # another tenant's frames are not read
    engine.dispose()
    # the review app's own frames ("Acme" → "Acme Corp" by key, "Twin" ambiguous): nothing to check
    other = store.make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    review_app.fill(other, tmp_path / "reports")
    assert suspicious_view.findings(other, tenant="default") == []
    other.dispose()
