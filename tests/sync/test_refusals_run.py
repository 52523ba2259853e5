"""A run under an agreement-customized role with one managed account answering 403 (issue 22 §3, §4):
everything the role and the key allow syncs; the rest is held with its reason, and the run does
not fail. The steps of a run (tests/proof/helpers.run_steps) against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from billing_sync import store
from tests.helpers.sandbox_setup import HUNTRESS_ROLE, ROLE_VARIABLE, role_scenario, use_connections
from tests.proof.helpers import run_steps


def test_customized_role_and_refused_account_sync_what_they_may(
    sandbox_factory, monkeypatch, eng, tmp_path: Path
):
    role: dict[str, Any] = {
        "name": "Billing sync, Acme's agreement only",
        "levels": {
            **HUNTRESS_ROLE["levels"],
            "finance/agreements": {"add": "none", "edit": "customized", "delete": "none", "inquire": "all"},
        },
        "customized_agreements": [1578],
    }
    sb = sandbox_factory(role_scenario(role, forbidden_account=True))
    use_connections(monkeypatch, sb)
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))

    done = run_steps(eng, "customized", "2026-11-01", variable=ROLE_VARIABLE)
    assert done.error is None, done.describe()

    state = httpx.get(f"{sb.connectwise_url}/_sandbox/state", timeout=10).json()
    quantity = {a["id"]: a["quantity"] for a in state["additions"]}
    assert quantity == {501: 40, 502: 30, 503: 30}  # only Acme's agreement (1578) written

    held = {
        (q["sync_key"], q["reason_code"]): q["detail"]
        for q in store.list_quarantine(eng, run_id="customized", limit=None, tenant="default")
    }
    beta = held[("company:251:edr", "push_rejected")]
    assert "Finance → Agreements: Edit" in beta and "agreement 1579" in beta and "HTTP 403" in beta
    west = held[("organization:701:edr", "unmapped_organization")]
    assert "account 7" in west and "HTTP 403" in west and "hs_preflight_secret" not in west
    # West Co's company then has a live addition and no line it can be matched to: held too.
    assert ("company:252:edr", "missing_from_invoice") in held
    assert len(held) == 3, held

    counts, checks = done.result["counts"], done.result["checks"]
    assert (counts["updated"], counts["quarantined"]) == (1, 3)
    assert [a["account_id"] for a in checks["unreadable_accounts"]] == [7]
    page = Path(done.result["report"]).read_text()
    assert "Huntress accounts that could not be read" in page and "account 7" in page
