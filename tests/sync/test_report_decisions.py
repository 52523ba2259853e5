"""The report names the decision behind each change (issue 20 §3): "approval #N by <name>" for a
change or addition a person approved, "override #N: minimum 10 by Jane Doe" for a quantity an
override decided, both where both did; in the page's Changes table, changes.csv and outcomes.csv.
A real run (tests/proof/helpers.run_steps) of the approvals month, served in memory
(tests/helpers/approvals_month.py)."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from billing_sandbox.memory import MemorySources
from billing_sync import report, store
from tests.helpers.approvals_month import (
    HELD,
    MISSING,
    SMALL,
    approve_change,
    approve_creation,
    run_in_memory,
    scenario,
)


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MemorySources:
    """The approvals month served in memory: these tests are about the run's data, not the wire."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    return MemorySources(scenario())


def _csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {r["sync_key"]: r for r in csv.DictReader(f)}


def _change_rows(page: str) -> list[str]:
    """The rows of the page's Changes table, as plain text."""
    section = page[page.index("<h2>Changes</h2>") : page.index("<h2>", page.index("<h2>Changes</h2>") + 1)]
    rows = re.findall(r"<tr>(.*?)</tr>", section, flags=re.S)[1:]  # the header row first
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in rows]


def test_the_report_names_the_approval_or_override_behind_each_change(sb: Any, eng: Any) -> None:
    rule = store.add_override(
        eng, cw_company_id=251, product="edr", rule="minimum", quantity=10, user="Jane Doe", tenant="default"
    )
    run_in_memory(sb, eng, "r1")
    change = approve_change(eng, to_quantity=10)  # 40 → 10 (the override's aim), by Alice Example
    creation = approve_creation(eng)  # 12 on Gamma, by Bob Example
    run_in_memory(sb, eng, "r2")

    by_approval = f"approval #{change['id']} by Alice Example"
    by_override = f"override #{rule['id']}: minimum 10 by Jane Doe"
    created = f"approval #{creation['id']} by Bob Example"
    folder = Path(store.get_run(eng, "r2", tenant="default")["report_path"])

    rows = _change_rows((folder / report.REPORT_FILE).read_text(encoding="utf-8"))
    (beta,) = [r for r in rows if r.startswith("Beta Dental")]
    (gamma,) = [r for r in rows if r.startswith("Gamma Law")]
    assert by_approval in beta and by_override in beta, beta
    assert created in gamma and "override" not in gamma, gamma
    assert "decided by" in (folder / report.REPORT_FILE).read_text(encoding="utf-8")

    changes = _csv(folder / report.CHANGES_CSV)
    assert changes[HELD]["decided_by"] == f"{by_approval}; {by_override}"
    assert changes[MISSING]["decided_by"] == created
    outcomes = _csv(folder / report.OUTCOMES_CSV)
    assert (outcomes[HELD]["outcome"], outcomes[HELD]["decided_by"]) == (
        "updated",
        f"{by_approval}; {by_override}",
    )
    assert (outcomes[MISSING]["outcome"], outcomes[MISSING]["decided_by"]) == ("created", created)
    assert outcomes[SMALL]["decided_by"] == "", "nobody decided a key the sync keeps in step"
