"""The billing database as one tenant sees it, and as one run of that tenant writes it.

Every tenant's DAG has the same run ids and ids of rows are shared by all tenants, so a read or a
write that forgets its tenant reads or writes another tenant's rows. Two things make that
impossible rather than merely tested against:

- every store function that touches a tenant's rows takes `tenant` keyword-only and without a
  default (tests/sync/store/test_handle.py checks each one), so a call without it fails at once and
  in mypy;
- the run path holds a `RunStore`: built once from the run's tenant, run id and billing date, which
  its methods pass to every call. A task cannot write a row of the run under another tenant, run or
  date than the one it was built with.

`TenantStore` is the same binding for one tenant without a run: what the run reads of the tenant's
standing decisions (its mapping and overrides) and what opens a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from sqlalchemy.engine import Engine

from ..config import SettingsDict
from ..results import HeldTotals, NewOrganization, RecordedChecks
from ..run_rows import LedgerInput, QuarantineInput
from ..runref import Scope
from .approval_rows import get_approval
from .first_sightings import new_organizations, record_organizations_seen
from .ledger import changes_for_run, record_changes
from .org_mapping import org_map_frame
from .override_rules import overrides_frame
from .quarantine_rows import (
    held_totals,
    list_quarantine,
    resolve_superseded,
    resolve_synced,
    upsert_quarantine,
)
from .records import ApprovalRow, LedgerRow, QuarantineRow, RunRecord
from .run_records import finish_run, get_run, start_run
from .staging import read_frame, write_frame
from .values import _as_date, _tenant_id, _text


@dataclass(frozen=True)
class TenantStore:
    """The billing database bound to one tenant (an id as the tenants file spells them)."""

    engine: Engine
    tenant: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenant", _tenant_id(self.tenant))

    def run(self, run_id: str, billing_date: date | datetime | str) -> RunStore:
        return RunStore(self, _text(run_id, "run_id"), _as_date(billing_date))

    def org_map_frame(self) -> pd.DataFrame:
        return org_map_frame(self.engine, tenant=self.tenant)

    def overrides_frame(self) -> pd.DataFrame:
        return overrides_frame(self.engine, tenant=self.tenant)

    def get_approval(self, approval_id: int) -> ApprovalRow | None:
        return get_approval(self.engine, approval_id, tenant=self.tenant)


@dataclass(frozen=True)
class RunStore:
    """The rows of one run: its staged frames, quarantine, ledger and record."""

    of: TenantStore
    run_id: str
    billing_date: date

    @property
    def engine(self) -> Engine:
        return self.of.engine

    @property
    def tenant(self) -> str:
        return self.of.tenant

    # -- the run record -------------------------------------------------------------------------
    def start(
        self,
        invoice_id: int | None,
        mode: str,
        settings: SettingsDict,
        scope: Scope | None = None,
    ) -> None:
        start_run(
            self.engine,
            self.run_id,
            self.billing_date,
            invoice_id,
            mode,
            settings,
            tenant=self.tenant,
            scope=scope,
        )

    def finish(
        self,
        status: str,
        counts: Mapping[str, int],
        checks: RecordedChecks | None = None,
        report_path: str | None = None,
    ) -> None:
        finish_run(self.engine, self.run_id, status, counts, checks, report_path, tenant=self.tenant)

    def record(self) -> RunRecord | None:
        return get_run(self.engine, self.run_id, tenant=self.tenant)

    # -- staging --------------------------------------------------------------------------------
    def read_frame(self, name: str) -> pd.DataFrame:
        return read_frame(self.engine, self.run_id, name, tenant=self.tenant)

    def write_frame(self, name: str, df: pd.DataFrame) -> int:
        return write_frame(self.engine, self.run_id, name, df, tenant=self.tenant)

    # -- quarantine and ledger ------------------------------------------------------------------
    def upsert_quarantine(self, rows: Iterable[QuarantineInput]) -> int:
        return upsert_quarantine(self.engine, self.run_id, self.billing_date, rows, tenant=self.tenant)

    def resolve_superseded(
        self,
        current: Mapping[str, str],
        seen_keys: Iterable[str] | None = None,
        within: Iterable[str] | None = None,
    ) -> int:
        return resolve_superseded(
            self.engine, self.run_id, self.billing_date, current, seen_keys, tenant=self.tenant, within=within
        )

    def resolve_synced(self, sync_keys: Iterable[str], by: str | None = None) -> int:
        return resolve_synced(
            self.engine, self.run_id, self.billing_date, sync_keys, tenant=self.tenant, by=by
        )

    def quarantine_rows(self) -> list[QuarantineRow]:
        return list_quarantine(self.engine, run_id=self.run_id, limit=None, tenant=self.tenant)

    def held_totals(self) -> HeldTotals:
        return held_totals(self.engine, run_id=self.run_id, status="open", tenant=self.tenant)

    def record_changes(self, rows: Iterable[LedgerInput]) -> int:
        return record_changes(self.engine, self.run_id, self.billing_date, rows, tenant=self.tenant)

    def changes(self) -> list[LedgerRow]:
        return changes_for_run(self.engine, self.run_id, tenant=self.tenant)

    # -- organizations on the invoice -----------------------------------------------------------
    def new_organizations(self) -> list[NewOrganization]:
        return new_organizations(self.engine, self.run_id, tenant=self.tenant)

    def record_organizations_seen(self) -> int:
        return record_organizations_seen(self.engine, self.run_id, self.billing_date, tenant=self.tenant)
