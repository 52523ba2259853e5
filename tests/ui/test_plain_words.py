# ruff: noqa: F811 (the `app` fixture, imported, is each test's argument)
"""Plain words first (issue 20 §3): a reason reads as a person says it, with the contract's code small
after it; a flash after an action names the organization and company; a row an approved write
resolved says "resolved by approval #N (who)" rather than the run id. Through the app's TestClient."""

from __future__ import annotations

import re

from billing_sync import store
from billing_sync.names import REASON_CODES, REASON_LABELS
from tests.helpers.review_app import DAY, RUN, App

LABEL = "Change too large (needs approval)"


def _label_then_code(html: str, label: str, code: str) -> bool:
    """The label, then (within the same cell) the code: the code is shown, only after the words."""
    return (
        re.search(re.escape(label) + r"</span>\s*<code[^>]*>" + re.escape(code) + "</code>", html) is not None
    )


def test_every_reason_code_has_plain_words() -> None:
    assert set(REASON_LABELS) == set(REASON_CODES)
    assert REASON_LABELS["change_exceeds_limit"] == LABEL
    assert all(label and "_" not in label for label in REASON_LABELS.values())


def test_reason_reads_in_words_before_its_code_on_each_page(app: App) -> None:
    queue = app.get("/quarantine").text
    assert _label_then_code(queue, LABEL, "change_exceeds_limit")
    assert _label_then_code(queue, "Organization not mapped to a company", "unmapped_organization")
    assert f"{LABEL} (change_exceeds_limit)</option>" in queue  # the filter's choices too
    assert _label_then_code(app.get("/quarantine?view=rows").text, LABEL, "change_exceeds_limit")
    assert _label_then_code(app.get("/quarantine/2").text, LABEL, "change_exceeds_limit")
    assert _label_then_code(app.get("/approvals").text, LABEL, "change_exceeds_limit")


def test_a_flash_names_the_organization_and_company(app: App) -> None:
    done = app.post("/quarantine/2", {"action": "dismiss", "note": "known", "back": "status=open"})
    page = app.get(done.headers["location"].removeprefix("/billing-review")).text
    assert "Row 2 dismissed: Acme Corp (company #10), sat." in page
    done = app.post("/quarantine/1", {"action": "resolve"})
    page = app.get(done.headers["location"].removeprefix("/billing-review")).text
    # The organization's name is escaped like any other text of the page.
    assert "Row 1 marked resolved: &lt;script&gt;" in page and "(organization #2), edr." in page


def test_a_row_an_approved_write_resolved_names_the_approval_not_the_run(app: App) -> None:
    store.resolve_synced(app.engine, RUN, DAY, ["company:10:sat"], tenant="default", by="approval #1 (admin)")
    row = store.get_quarantine(app.engine, 2, tenant="default")
    assert (row["resolved_by"], row["resolved_by_id"]) == ("approval #1 (admin)", f"sync:{RUN}")
    page = app.get("/quarantine?status=resolved").text
    assert "resolved by <strong>approval #1 (admin)</strong>" in page
    assert f"sync:{RUN}" not in page


def test_the_queue_labels_and_colours_held_money_by_way_and_totals_each_group(app: App) -> None:
    store.upsert_quarantine(
        app.engine,
        RUN,
        DAY,
        [
            {  # ConnectWise bills 40, Huntress counts 5: over-billed
                "sync_key": "company:10:edr",
                "reason_code": "change_exceeds_limit",
                "cw_company_id": 10,
                "product": "edr",
                "payload": {"target": 5, "previous_quantity": 40},
                "amount_at_stake": "35.00",
            },
            {  # no addition: Huntress's count is unbilled
                "sync_key": "company:10:itdr",
                "reason_code": "no_live_addition",
                "cw_company_id": 10,
                "product": "itdr",
                "payload": {"target": 5},
                "amount_at_stake": "12.50",
            },
        ],
        tenant="default",
    )
    queue = app.get("/quarantine?company_id=10").text
    head = queue[queue.index('class="group-head"') : queue.index("</tr>", queue.index('class="group-head"'))]
    assert 'class="chip gap-under" data-testid="group-gap">under-billed (revenue leak): 12.50 / month' in head
    assert 'class="chip gap-over" data-testid="group-gap">over-billed (credit risk): 35.00 / month' in head
    assert '"small gap-over" data-testid="at-stake">35.00 at stake · over-billed (credit risk)' in queue
    assert '"small gap-under" data-testid="at-stake">12.50 at stake · under-billed (revenue leak)' in queue


def test_the_runs_money_says_the_months_before_after_and_which_way_it_is_off(app: App) -> None:
    money = {
        "products": {
            "edr": {
                "huntress_amount": "338",
                "connectwise_amount_before": "292.5",
                "connectwise_amount_after": "305.5",
                "difference": "-32.5",
                "recovered": "13",
            },
            "sat": {
                "huntress_amount": "10",
                "connectwise_amount_before": "20",
                "connectwise_amount_after": "20",
                "difference": "10",
                "recovered": "0",
            },
        },
        "recovered": "13",
        "huntress_amount": "348",
        "connectwise_amount_after": "325.5",
        "held": {"reasons": [], "rows": 0, "priced_rows": 0, "amount": "0"},
    }
    run = store.get_run(app.engine, RUN, tenant="default")
    store.finish_run(
        app.engine, RUN, "success", run["counts"], {"mismatches": [], "money": money}, None, tenant="default"
    )
    page = app.get("/runs").text
    section = page[
        page.index('data-testid="money"') : page.index("</section>", page.index('data-testid="money"'))
    ]
    assert "ConnectWise this month <strong>312.50 → 325.50</strong> (Huntress 348.00)" in section
    assert 'class="chip gap-under" data-testid="gap">under-billed (revenue leak): −22.50 / month' in section
    assert re.search(
        r'class="num gap-under">−32\.50<br><span class="small">under-billed \(revenue leak\)', section
    )
    assert re.search(
        r'class="num gap-over">\+10\.00<br><span class="small">over-billed \(credit risk\)', section
    )


def test_an_approvals_notice_names_its_company(app: App) -> None:
    approval = store.add_approval(
        app.engine,
        billing_date=DAY,
        sync_key="company:10:sat",
        cw_company_id=10,
        product="sat",
        kind="change",
        from_quantity=40,
        to_quantity=4,
        addition_id=501,
        user="alice",
        tenant="default",
    )
    page = app.get(f"/approvals?approval=approved&id={approval['id']}").text
    assert f"Approval {approval['id']} recorded." in page and "(Acme Corp (company #10), sat)" in page
