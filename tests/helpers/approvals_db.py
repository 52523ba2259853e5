"""A billing DB with what the approvals pages act on, for TestClient tests: one run that held a
change, found a missing addition and an unmapped organization (`fill`), and the `seen_*` fields an
approving POST carries (`seen_fields`).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from billing_sync import frames, store
from tests.helpers.review_roles import MAPPER

RUN, DAY = "manual__2026-11-01T00:00:00+00:00", "2026-11-01"


def fill(engine: Any) -> dict[str, int]:
    """One run that held a change, found a missing addition and an unmapped organization."""
    store.start_run(engine, RUN, DAY, 5001, "push", {"agreement_types": []}, tenant="default")
    store.write_frame(
        engine,
        RUN,
        "companies",
        frames.companies_frame(
            [{"id": 251, "identifier": "beta", "name": "Beta Dental"}, {"id": 252, "name": "Gamma"}]
        ),
        tenant="default",
    )
    active = {"agreementStatus": "Active", "cancelledFlag": False, "startDate": "2025-01-01T00:00:00Z"}
    store.write_frame(
        engine,
        RUN,
        "agreements",
        frames.agreements_frame(
            [
                {**active, "id": 1580, "name": "Gamma MSA", "company": {"id": 252}, "type": {"name": "MSA"}},
                {
                    **active,
                    "id": 1581,
                    "name": "Gamma old",
                    "company": {"id": 252},
                    "endDate": "2026-01-01T00:00:00Z",
                },
                {**active, "id": 1579, "name": "Beta MSA", "company": {"id": 251}},
            ]
        ),
        tenant="default",
    )
    if "catalog" in frames.SCHEMAS:
        store.write_frame(
            engine,
            RUN,
            "catalog",
            frames.catalog_frame([{"id": 752, "identifier": "HUNTRESS-EDR", "price": 4.5}]),
            tenant="default",
        )
    held = {
        "sync_key": "company:251:edr", "company_id": 251, "product": "edr", "catalog_identifier": "HUNTRESS-EDR",
        "agreement_id": 1579, "addition_id": 502, "huntress_quantity": 5, "previous_quantity": 40.0,
    }  # fmt: skip
    missing = {
        "sync_key": "company:252:edr", "company_id": 252, "product": "edr", "catalog_identifier": "HUNTRESS-EDR",
        "huntress_quantity": 12,
    }  # fmt: skip
    store.upsert_quarantine(
        engine,
        RUN,
        DAY,
        [
            {"sync_key": held["sync_key"], "reason_code": "change_exceeds_limit", "cw_company_id": 251,
             "product": "edr", "detail": "edr 40 → 5 trips the guard", "payload": held},
            {"sync_key": missing["sync_key"], "reason_code": "no_live_addition", "cw_company_id": 252,
             "product": "edr", "detail": "no live addition", "payload": missing},
            {"sync_key": "organization:9:edr", "reason_code": "unmapped_organization",
             "huntress_organization_id": 9, "product": "edr", "payload": {"huntress_quantity": 3}},
        ], tenant="default"
    )  # fmt: skip
    store.finish_run(engine, RUN, "success", {}, {}, None, tenant="default")
    return {q["reason_code"]: q["id"] for q in store.list_quarantine(engine, status="open", tenant="default")}


def seen_fields(
    client: TestClient, row_id: str | int, headers: dict[str, str] = MAPPER, tenant: str = ""
) -> dict[str, str]:
    """The `seen_*` hidden fields of the row's approve form, what an approving POST carries (none
    when the page renders no form)."""
    query = f"&tenant={tenant}" if tenant else ""
    html = client.get(f"/billing-review/approvals/new?row={row_id}{query}", headers=headers).text
    return dict(re.findall(r'<input type="hidden" name="(seen_[a-z_]+)" value="([^"]*)">', html))
