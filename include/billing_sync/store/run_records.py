"""The run records (`billing_runs`): one per tenant and DAG run, restarted by a retry, closed with its counts.

Keyed by (tenant, run_id): every tenant's DAG has the same run ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..config import SettingsDict
from ..results import RecordedChecks
from ..runref import Scope
from .database import _reading, _writing
from .records import RunAlerts, RunRecord
from .schema import MODES, runs
from .values import _as_date, _clean, _now, _row, _rows, _tenant_id, _upsert


class RunNotFound(LookupError):
    """No billing run has the given run id."""


def start_run(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    invoice_id: int | None,
    mode: str,
    settings: SettingsDict,
    *,
    tenant: str,
    scope: Scope | None = None,
) -> None:
    """Record a run as running. Starting the same run_id again (a retried task, a cleared run)
    restarts its record: started_at now, and the previous attempt's results cleared.

    `scope`: None for a full run of the billing date; the apply DAG's conf for a scoped run
    (docs/contract.md §4 `billing_runs.scope`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, not {mode!r}")
    row = {
        "tenant": _tenant_id(tenant),
        "run_id": run_id,
        "billing_date": _as_date(billing_date),
        "invoice_id": _clean(invoice_id),
        "mode": mode,
        "started_at": _now(),
        "finished_at": None,
        "status": "running",
        "counts": None,
        "checks": None,
        "report_path": None,
        "settings": dict(settings),
        "scope": None if scope is None else dict(scope),
    }
    with _writing(engine) as conn:
        _upsert(conn, runs, ("tenant", "run_id"), [row], [c for c in row if c not in ("tenant", "run_id")])


def finish_run(
    engine: Engine,
    run_id: str,
    status: str,
    counts: Mapping[str, int],
    checks: RecordedChecks | None = None,
    report_path: str | None = None,
    *,
    tenant: str,
) -> None:
    """Close a run with its final status, outcome counts, reconciliation checks and report path."""
    values = {
        "finished_at": _now(),
        "status": status,
        "counts": dict(counts),
        "checks": None if checks is None else dict(checks),
        "report_path": None if report_path is None else str(report_path),
    }
    with _writing(engine) as conn:
        this_run = runs.update().where(runs.c.tenant == tenant, runs.c.run_id == run_id)
        if conn.execute(this_run.values(**values)).rowcount == 0:
            raise RunNotFound(f"no billing run {run_id!r} of tenant {tenant!r} (start_run was not called)")


def add_run_checks(engine: Engine, run_id: str, extra: RunAlerts, *, tenant: str) -> bool:
    """Add keys to a closed run's `checks` (an alert's fate, learnt after the run closed), its other
    checks, status, counts and times as they were. Only a closed run (a running one is closed by its
    own tasks); False when there is none."""
    this_run = (runs.c.tenant == tenant, runs.c.run_id == run_id, runs.c.status != "running")
    with _writing(engine) as conn:
        found = conn.execute(sa.select(runs.c.checks).where(*this_run).with_for_update()).first()
        if found is None:
            return False
        checks = {**(found.checks or {}), **dict(extra)}
        conn.execute(runs.update().where(*this_run).values(checks=checks))
    return True


def get_run(engine: Engine, run_id: str, *, tenant: str) -> RunRecord | None:
    with _reading(engine) as conn:
        row = conn.execute(sa.select(runs).where(runs.c.tenant == tenant, runs.c.run_id == run_id)).first()
    return None if row is None else _row(row, RunRecord)


def list_runs(
    engine: Engine,
    limit: int | None = 50,
    offset: int = 0,
    *,
    billing_date: date | datetime | str | None = None,
    tenant: str,
) -> list[RunRecord]:
    """The tenant's runs, newest start first."""
    stmt = (
        sa.select(runs)
        .where(runs.c.tenant == tenant)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(limit)
        .offset(offset)
    )
    if billing_date is not None:
        stmt = stmt.where(runs.c.billing_date == _as_date(billing_date))
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt), RunRecord)
