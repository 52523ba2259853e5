"""Apply now (issue 20 §1; docs/contract.md §1 Apply DAG), without a scheduler: a full run through
its steps (tests/proof/helpers.run_steps) against the sandbox, a person's decision, then
`billing_sync.apply.run` of just that decision, on SQLite and PostgreSQL.

- an approved held change is written by the apply; its row resolves; the ledger names the approval
  with its money; at most 10 requests on both servers; other keys' open rows stay open; a second
  apply writes nothing;
- a mapping decision applied by its organization syncs the organization's usage under the company
  and resolves the organization's row;
- a bad conf fails at once, naming what is wrong; no finished run of the date → a clear error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from billing_sync import apply, store
from billing_sync.connectwise import ConnectWiseClient
from billing_sync.errors import ConfigError, NoInvoiceError
from billing_sync.huntress import HuntressClient
from tests.helpers.apply_month import (
    DAY,
    DELTA_ADDITION,
    HELD,
    HELD_ADDITION,
    HELD_AGREEMENT,
    MAPPED,
    MISSING,
    UNMAPPED,
    VARIABLE,
    quantities,
    scenario,
)
from tests.helpers.sandbox_setup import use_connections
from tests.proof.helpers import run_steps

MAX_REQUESTS = 10  # issue 20 §1: one decision's apply


@pytest.fixture
def eng(db_url: str) -> Any:
    engine = store.make_engine(db_url)
    store.ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sb(eng: Any, sandbox_factory, monkeypatch, tmp_path: Path) -> Any:
    # After `eng`: a PostgreSQL case that skips does so before it starts a sandbox process.
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    sandbox = sandbox_factory(scenario())
    use_connections(monkeypatch, sandbox)
    return sandbox


def full_run(eng: Any, run_id: str = "full") -> None:
    done = run_steps(eng, run_id, DAY, variable=VARIABLE)
    assert done.error is None, done.describe()


def run_apply(eng: Any, run_id: str, conf: Any) -> dict[str, Any]:
    return apply.run(
        eng,
        run_id,
        conf,
        VARIABLE,
        tenant="default",
        huntress=HuntressClient.from_connection(),
        connectwise=lambda: ConnectWiseClient.from_connection(),
    )


def requests_since(sb: Any, since: float) -> list[tuple[str, str]]:
    """(server, route) of every API request both sandboxes answered since `since`."""
    out = []
    for server, url in (("huntress", sb.huntress_url), ("connectwise", sb.connectwise_url)):
        log = httpx.get(f"{url}/_sandbox/requests", params={"log": 1, "since": since}, timeout=10).json()[
            "log"
        ]
        out += [(server, e["route"]) for e in log]
    return out


def open_rows(eng: Any) -> dict[str, str]:
    return {
        r["sync_key"]: r["reason_code"]
        for r in store.list_quarantine(eng, status="open", limit=None, tenant="default")
    }


def test_an_approval_applied_writes_its_addition_alone_in_few_requests(sb, eng) -> None:
    full_run(eng)
    assert quantities(sb)[HELD_ADDITION] == 40
    assert open_rows(eng) == {
        HELD: "change_exceeds_limit",
        MISSING: "no_live_addition",
        UNMAPPED: "unmapped_organization",
        MAPPED: "missing_from_invoice",
    }
    approval = store.add_approval(
        eng, billing_date=DAY, sync_key=HELD, cw_company_id=251, product="edr", kind="change",
        addition_id=HELD_ADDITION, agreement_id=HELD_AGREEMENT, from_quantity=40, to_quantity=5,
        user="Alice Example", user_id="alice", tenant="default",
    )  # fmt: skip
    conf = {"billing_date": DAY, "companies": [251], "organizations": []}

    since = time.time()
    done = run_apply(eng, "manual__apply_1", conf)
    made = requests_since(sb, since)

    assert quantities(sb)[HELD_ADDITION] == 5, "the approved quantity is written"
    assert done["keys"] == [HELD] and done["counts"]["updated"] == 1
    assert len(made) <= MAX_REQUESTS, made
    assert [r for s, r in made if s == "huntress"] == ["GET /v1/reseller/invoices"], (
        "one confirms the invoice"
    )
    # The ledger names the approval and carries its money: (5 − 40) × 6.50.
    (row,) = store.changes_for_run(eng, "manual__apply_1", tenant="default")
    assert (row["sync_key"], row["action"], row["approval_id"]) == (HELD, "updated", approval["id"])
    assert row["monthly_amount_delta"] is not None and float(row["monthly_amount_delta"]) == -227.5
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "applied"
    # Its row resolved; every other key's open row untouched (none of them was read).
    assert open_rows(eng) == {
        MISSING: "no_live_addition",
        UNMAPPED: "unmapped_organization",
        MAPPED: "missing_from_invoice",
    }
    record = store.get_run(eng, "manual__apply_1", tenant="default")
    assert record is not None
    assert (record["scope"], record["status"], record["mode"]) == (conf, "success", "push")
    # The pages still read the full run's staging, never the apply's subset.
    assert store.newest_staged_run(eng, "companies", tenant="default") == "full"

    # The same apply again: ConnectWise already holds it, nothing is written.
    since = time.time()
    again = run_apply(eng, "manual__apply_2", conf)
    assert not [r for _, r in requests_since(sb, since) if r.startswith(("PATCH", "POST"))]
    assert again["counts"]["unchanged"] == 1 and again["counts"]["updated"] == 0
    assert quantities(sb)[HELD_ADDITION] == 5


def test_a_mapping_applied_syncs_the_organizations_keys(sb, eng) -> None:
    full_run(eng)
    store.set_org_map(eng, 104, 253, "same customer", "Alice Example", user_id="alice", tenant="default")
    # Another company's pending approval: the apply read nothing of it, so it cannot judge it stale.
    other = store.add_approval(
        eng, billing_date=DAY, sync_key=HELD, cw_company_id=251, product="edr", kind="change",
        addition_id=HELD_ADDITION, agreement_id=HELD_AGREEMENT, from_quantity=40, to_quantity=5,
        user="Alice Example", user_id="alice", tenant="default",
    )  # fmt: skip
    since = time.time()
    done = run_apply(eng, "manual__map", {"billing_date": DAY, "companies": [], "organizations": [104]})
    assert len(requests_since(sb, since)) <= MAX_REQUESTS
    assert done["companies"] == [253] and done["keys"] == [MAPPED]
    assert quantities(sb)[DELTA_ADDITION] == 7, "the organization's usage, under its company"
    rows = open_rows(eng)
    assert UNMAPPED not in rows and MAPPED not in rows, "both rows of the mapping resolved"
    assert rows == {HELD: "change_exceeds_limit", MISSING: "no_live_addition"}
    with eng.connect() as conn:
        note = conn.execute(
            sa.select(store.quarantine.c.note).where(store.quarantine.c.sync_key == UNMAPPED)
        ).scalar()
    assert "no longer reported" in str(note)
    assert store.get_approval(eng, other["id"], tenant="default")["status"] == "pending"
    assert quantities(sb)[HELD_ADDITION] == 40


@pytest.mark.parametrize(
    ("conf", "says"),
    [
        (["2026-11-01"], "must be an object"),
        ({"billing_date": "2026-13-01", "companies": [1]}, "not a calendar date"),
        ({"billing_date": "1 Nov", "companies": [1]}, "YYYY-MM-DD"),
        ({"billing_date": DAY, "companies": ["251"]}, "positive integer ids"),
        ({"billing_date": DAY, "companies": [True]}, "positive integer ids"),
        ({"billing_date": DAY}, "names no company and no organization"),
        ({"billing_date": DAY, "companies": [1], "dry_run": True}, "unknown keys ['dry_run']"),
    ],
)
def test_a_bad_conf_fails_at_once_naming_the_problem(conf: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        apply.parse_scope(conf)
    assert says in str(caught.value)


def test_an_apply_without_a_finished_run_of_the_date_says_so(eng) -> None:
    conf = {"billing_date": DAY, "companies": [251], "organizations": []}
    with pytest.raises(NoInvoiceError, match="no finished run of 2026-11-01"):
        apply.start(eng, "manual__early", apply.parse_scope(conf), VARIABLE, tenant="default")
