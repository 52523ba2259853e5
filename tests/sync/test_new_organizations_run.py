"""New organizations across runs (issue 11 §7; docs/contract.md §1, §4): the steps of a run
(tests/proof/helpers.run_steps) on the Huntress and ConnectWise sandbox's data served in memory, over three invoices.

- the first push run finds every organization of its invoice new and records them;
- the next month's run finds only the organization added since;
- a dry run, or a report-only run of an older date, reports what is new relative to the record
  and records nothing; its asset event names no organization;
- a run of an older date never makes organizations later runs recorded new again; a forced push of
  it records what only it names and moves first_billing_date back, never first_run_id;
- the run summary alert leads with the money and names the new organizations.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from billing_sandbox.memory import MemorySources
from billing_sync import steps, store
from billing_sync.notify import build, render
from tests.proof.helpers import run_steps

OCT, NOV, DEC = "2026-10-01", "2026-11-01", "2026-12-01"
VARIABLE = {"products": {"edr": "HUNTRESS-EDR"}}
ACME, BETA, GAMMA, ZETA = 101, 102, 103, 104


def scenario() -> dict[str, Any]:
    """October names all four organizations (Zeta only there), November Acme and Beta, December
    Acme, Beta and Gamma. Acme, Beta and Gamma have companies with EDR additions; Zeta has none."""
    agreement = {"type": "Managed Services", "agreementStatus": "Active", "cancelledFlag": False}
    start = "2025-01-01T00:00:00Z"

    def invoice(invoice_id: int, day: str, usage: dict[int, int]) -> dict[str, Any]:
        lines = [{"organization_id": o, "actual_usage": {"edr": n}} for o, n in usage.items()]
        return {"id": invoice_id, "created_at": f"{day}T06:00:00Z", "status": "paid", "lines": lines}

    return {
        "huntress": {
            "api_key": "hk_new_orgs",
            "api_secret": "hs_new_orgs",
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": [
                {"id": ACME, "name": "Acme Corp", "key": "acme"},
                {"id": BETA, "name": "Beta Dental", "key": "beta"},
                {"id": GAMMA, "name": "Gamma Law", "key": "gamma"},
                {"id": ZETA, "name": "Zeta Labs", "key": "zeta"},
            ],
            "invoices": [
                invoice(5000, OCT, {ACME: 38, BETA: 40, GAMMA: 3, ZETA: 7}),
                invoice(5001, NOV, {ACME: 40, BETA: 40}),
                invoice(5002, DEC, {ACME: 41, BETA: 40, GAMMA: 5}),
            ],
        },
        "connectwise": {
            "company_id": "demomsp",
            "public_key": "pub",
            "private_key": "priv_new_orgs",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "companies": [
                {"id": 250, "identifier": "acme", "name": "Acme Corp"},
                {"id": 251, "identifier": "beta", "name": "Beta Dental"},
                {"id": 252, "identifier": "gamma", "name": "Gamma Law"},
            ],
            "catalog": [
                {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 4.5},
            ],
            "agreements": [
                {**agreement, "id": 1578 + i, "name": f"MSA {c}", "company_id": c, "startDate": start,
                 "additions": [{"id": 501 + i, "product_id": 752, "quantity": q, "effectiveDate": start}]}
                for i, (c, q) in enumerate([(250, 38), (251, 40), (252, 5)])
            ],
        },
    }  # fmt: skip


@pytest.fixture
def sb(monkeypatch, tmp_path: Path) -> MemorySources:
    """The scenario served in memory: these tests are about the run's data, not the wire."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    return MemorySources(scenario())


def run(sb: MemorySources, eng: Any, run_id: str, day: str, **params: Any) -> Any:
    done = run_steps(eng, run_id, day, variable=VARIABLE, params=params, sources=sb)
    assert done.error is None, done.describe()
    return done


def new_ids(done: Any) -> list[int]:
    return [o["id"] for o in done.result["checks"]["new_organizations"]]


def event_ids(done: Any) -> list[int]:
    return steps.new_organizations_event(done.ref, done.result)["organization_ids"]


def recorded(eng: Any) -> dict[int, tuple[date, str]]:
    return {
        r["huntress_organization_id"]: (r["first_billing_date"], r["first_run_id"])
        for r in store.list_organizations_seen(eng, tenant="default")
    }


def test_new_organizations_over_months_backfills_and_modes(sb, eng) -> None:
    # The first run (November, pushed although December's invoice is out): everything is new.
    nov = run(sb, eng, "nov", NOV, force_historical_push=True)
    assert nov.result["mode"] == "push"
    assert new_ids(nov) == event_ids(nov) == [ACME, BETA]
    assert nov.result["checks"]["new_organizations"][0] == {"id": ACME, "name": "Acme Corp"}
    assert (
        store.get_run(eng, "nov", tenant="default")["checks"]["new_organizations"]
        == nov.result["checks"]["new_organizations"]
    )
    assert recorded(eng) == {ACME: (date(2026, 11, 1), "nov"), BETA: (date(2026, 11, 1), "nov")}

    # A dry run of December: Gamma is new relative to the record, and nothing is recorded or announced.
    dry = run(sb, eng, "dec-dry", DEC, dry_run=True)
    assert (dry.result["mode"], new_ids(dry), event_ids(dry)) == ("dry_run", [GAMMA], [])
    assert GAMMA not in recorded(eng)

    # December, pushed: only the organization added since November.
    dec = run(sb, eng, "dec", DEC)
    assert dec.result["mode"] == "push"
    assert new_ids(dec) == event_ids(dec) == [GAMMA]
    extra = steps.new_organizations_event(dec.ref, dec.result)
    assert extra == {
        "organization_ids": [GAMMA],
        "billing_date": DEC,
        "run_id": "dec",
        "tenant": "default",
        "mode": "push",
    }
    assert recorded(eng)[GAMMA] == (date(2026, 12, 1), "dec")

    # October afterwards (report only: an older invoice). Gamma, seen in December, is not new again;
    # Zeta, on no recorded invoice, is reported new but neither recorded nor announced.
    octo = run(sb, eng, "oct", OCT)
    assert octo.result["mode"] == "report_only"
    assert (new_ids(octo), event_ids(octo)) == ([ZETA], [])
    assert ZETA not in recorded(eng) and recorded(eng)[GAMMA] == (date(2026, 12, 1), "dec")

    # October pushed on purpose: Zeta is recorded (and announced) once; Gamma's first billing date
    # moves back to October, the run that saw it first stays December's.
    forced = run(sb, eng, "oct-forced", OCT, force_historical_push=True)
    assert new_ids(forced) == event_ids(forced) == [ZETA]
    assert recorded(eng) == {
        ACME: (date(2026, 10, 1), "nov"),
        BETA: (date(2026, 10, 1), "nov"),
        GAMMA: (date(2026, 10, 1), "dec"),
        ZETA: (date(2026, 10, 1), "oct-forced"),
    }

    # December again: nothing is new any more.
    again = run(sb, eng, "dec-again", DEC)
    assert new_ids(again) == event_ids(again) == []
    assert not any("new organization" in why for why in build.attention_reasons(again.result))


def test_a_retried_record_run_answers_as_its_first_attempt(sb, eng) -> None:
    nov = run(sb, eng, "nov", NOV, force_historical_push=True)
    retried = steps.record_run(eng, nov.ref)  # the task again, after the first attempt recorded
    assert retried["checks"]["new_organizations"] == nov.result["checks"]["new_organizations"]
    assert steps.new_organizations_event(nov.ref, retried)["organization_ids"] == [ACME, BETA]


def test_the_summary_leads_with_the_money_and_names_the_new_organizations(sb, eng) -> None:
    run(sb, eng, "nov", NOV, force_historical_push=True)
    dec = run(sb, eng, "dec", DEC)
    assert dec.result["counts"]["quarantined"] == 0, "clean: the new organization alone makes a summary"

    message = build.summary_message(dec.ref, dec.result)
    assert message is not None
    assert message.subject == f"Billing sync {DEC}: 1 new organization(s) on the invoice"
    sections = dict(message.sections)
    assert list(sections)[0] == "Money per month (units × unit price; ConnectWise after the push)"
    money = sections["Money per month (units × unit price; ConnectWise after the push)"]
    # Acme 40 → 41 at 4.50: +4.50 recovered; Huntress 86 units × 4.50 = 387.00.
    assert money[0] == "Recovered by this run: +4.50 per month"
    assert "Still held: 0.00 in 0 open quarantine row(s)" in money
    assert (
        "edr: Huntress 86 units, 387.00; ConnectWise 86 units, 387.00; difference 0.00; recovered +4.50"
        in money
    )
    assert money[-1] == "total: Huntress 387.00, ConnectWise 387.00"
    assert sections["New organizations (on an invoice for the first time)"] == ("Gamma Law (#103)",)
    assert dict(message.links)["Organization mapping"].endswith("/billing-review/mapping")
    text = render.render_text(message)
    assert "Gamma Law (#103)" in text and "Recovered by this run: +4.50 per month" in text

    # Once recorded, Gamma is new no more: a clean dry run of the date sends nothing.
    dry = run(sb, eng, "dec-dry", DEC, dry_run=True)
    assert build.summary_message(dry.ref, dry.result) is None  # nothing new, nothing held


def test_a_long_list_of_new_organizations_is_cut() -> None:
    ref = {"run_id": "r1", "billing_date": NOV, "invoice_id": 1, "mode": "push"}
    new = [{"id": i, "name": f"Org {i}"} for i in range(1, 31)]
    message = build.summary_message(ref, {"counts": {}, "checks": {"new_organizations": new}, "mode": "push"})
    assert message is not None
    lines = dict(message.sections)["New organizations (on an invoice for the first time)"]
    assert len(lines) == build.MAX_NEW_ORGANIZATIONS + 1
    assert lines[-1] == "… and 5 more: see the organization mapping page"
    from_checks = build.summary_message(
        ref, {"counts": {}, "checks": {"new_organizations": new[:1]}, "mode": "dry_run"}
    )
    assert from_checks is not None
    assert dict(from_checks.sections)[
        "New organizations (on no recorded invoice; this dry_run run records none)"
    ] == ("Org 1 (#1)",)
