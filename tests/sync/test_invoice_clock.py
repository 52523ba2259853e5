"""Invoice choice with the clock moved: the same billing dates find the same invoices on any day.

`resolve` + `find_invoice` run against the sandbox over real HTTP with the process clock frozen at
several points (time-machine), billing days among them. The scenario's dates are computed from
that clock, so each clock sees a different calendar; what must not change is the rule: each
billing date its own invoice, the newest pushes, older ones report only, a billing date whose
invoice is not out yet waits, and one before every invoice fails clearly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from billing_sandbox.generate import generate
from billing_sync import steps, store
from billing_sync.huntress import HuntressClient
from tests.helpers.sandbox_setup import use_connections

CLOCKS = [
    datetime(2026, 12, 1, 6, 0, 1, tzinfo=UTC),  # a billing day, a second after its invoice
    datetime(2027, 3, 17, 13, 5, tzinfo=UTC),  # mid-month
    datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last second of a year
]


def _months_back(d: date, k: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - k, 12)
    return date(y, m + 1, d.day)


@pytest.mark.parametrize("clock", CLOCKS, ids=[c.isoformat() for c in CLOCKS])
def test_each_billing_date_finds_its_invoice_on_any_day(clock, sandbox_factory, monkeypatch, tmp_path):
    newest = date(clock.year, clock.month, 1)
    scenario = generate(12, 3, billing_date=newest, months=3)
    sb = sandbox_factory(scenario)
    use_connections(monkeypatch, sb)
    eng = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(eng)
    invoice_of = {i["created_at"][:10]: i["id"] for i in scenario["huntress"]["invoices"]}

    with time_machine.travel(clock, tick=True):
        client = HuntressClient.from_connection()

        def find(billing: date) -> dict | None:
            ref = steps.resolve(eng, f"run-{billing}", billing, None, {}, "default")
            return steps.find_invoice(eng, ref, client)

        for k, mode in ((2, "report_only"), (1, "report_only"), (0, "push")):
            billing = _months_back(newest, k)
            found = find(billing)
            assert found is not None and found["invoice_id"] == invoice_of[billing.isoformat()], billing
            assert found["mode"] == mode, billing
        # The next billing date: its invoice is not out yet, so the sensor keeps waiting.
        assert find(_months_back(newest, -1)) is None
        # A billing date before every invoice, with newer ones out: a clear failure, not a wait.
        with pytest.raises(steps.NoInvoiceError, match="no Huntress invoice was created on"):
            find(_months_back(newest, 5))
