"""The in-memory sources answer as the clients read the sandbox over HTTP: the same records for every
call the steps, push and apply make, and writes that leave the same state (billing_sandbox.memory)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from billing_sandbox.memory import MemorySources
from billing_sync import catalog
from billing_sync.config import load_settings
from billing_sync.connectwise import ConnectWiseClient
from billing_sync.huntress import HuntressClient
from tests.conftest import DEMO_SCENARIO
from tests.helpers.sandbox_setup import role_scenario, use_connections
from tests.proof.helpers import admin

# What changes with the moment a record is written, not with what is written.
STAMPS = ("lastUpdated", "dateEntered", "enteredDate", "_info")


def _same(value: Any) -> Any:
    """`value` without write times, for comparing records written at two moments."""
    if isinstance(value, dict):
        return {k: _same(v) for k, v in value.items() if k not in STAMPS}
    if isinstance(value, list):
        return [_same(v) for v in value]
    return value


@pytest.mark.parametrize("scenario", ["demo", "refused account"])
def test_memory_sources_answer_as_the_clients_read_the_sandbox(scenario, sandbox_factory, monkeypatch):
    data = (
        json.loads(DEMO_SCENARIO.read_text()) if scenario == "demo" else role_scenario(forbidden_account=True)
    )
    sb = sandbox_factory(data)
    use_connections(monkeypatch, sb)
    wire_h, wire_cw = HuntressClient.from_connection(), ConnectWiseClient.from_connection()
    memory = MemorySources(data)
    mem_h, mem_cw = memory.huntress, memory.connectwise

    invoices = wire_h.invoices("reseller")
    assert mem_h.invoices("reseller") == invoices
    lines = wire_h.usage_lines(invoices[0]["id"])
    assert mem_h.usage_lines(invoices[0]["id"]) == lines
    assert mem_h.organizations() == wire_h.organizations()
    assert mem_h.invoice_organizations(lines) == wire_h.invoice_organizations(lines)
    orgs = wire_h.organizations()[:3]
    assert mem_h.account_usage_lines(orgs) == wire_h.account_usage_lines(orgs)

    products = load_settings(None).products
    identifiers = catalog.identifiers(products)
    assert mem_cw.companies() == wire_cw.companies()
    company_ids = [c["id"] for c in wire_cw.companies()[:3]]
    assert mem_cw.companies_by_id(company_ids) == wire_cw.companies_by_id(company_ids)
    assert mem_cw.catalog(identifiers) == wire_cw.catalog(identifiers)
    agreements = wire_cw.agreements()
    assert _same(mem_cw.agreements()) == _same(agreements)
    assert _same(mem_cw.agreements(company_ids=company_ids)) == _same(
        wire_cw.agreements(company_ids=company_ids)
    )
    agreement_ids = [a["id"] for a in agreements]
    additions = wire_cw.additions(agreement_ids, identifiers)
    assert mem_cw.additions(agreement_ids, identifiers) == additions
    first = additions[0]
    aid, xid = first["agreementId"], first["id"]
    assert _same(mem_cw.addition(aid, xid)) == _same(wire_cw.addition(aid, xid))
    assert _same(mem_cw.agreement(aid)) == _same(wire_cw.agreement(aid))
    ident = first["product"]["identifier"]
    assert mem_cw.agreement_additions(aid, ident) == wire_cw.agreement_additions(aid, ident)

    # The same writes leave the same additions and audit trail.
    for source in (wire_cw, mem_cw):
        source.set_quantity(aid, xid, 77)
        source.create_addition(aid, ident, 5, date(2026, 11, 1))
    served = admin(sb.connectwise_url, "state")
    assert _same(memory.connectwise_state.snapshot()["additions"]) == _same(served["additions"])
    assert [e["text"] for e in memory.connectwise_state.snapshot()["audit_trail"]] == [
        e["text"] for e in served["audit_trail"]
    ]
    assert memory.connectwise.served["set_quantity"] == memory.connectwise.served["create_addition"] == 1
