"""Apply now: the keys one decision touches, synced by a full run's rules.

Apply now (docs/contract.md §1 Apply DAG) reads only what those keys need.

What a full run of the billing date staged (its validated invoice lines, organizations and companies)
stands: an invoice that stands does not change, so one Huntress request confirms it still does.
ConnectWise is read fresh, but only for the companies involved: the companies named, and those the
named organizations map to under the same matching rules. The subset is reconciled by
`reconcile.reconcile` on the whole invoice (so matching sees every organization and company, and
"never guess" judges as a full run does) and kept to the keys in scope; then the same steps as a
full run: approvals, quarantine and its resolution (only of keys in scope), the guard, re-read
before write, the ledger. The run is a `billing_runs` row of its own with `scope` set.

Plain functions of the engine and two clients: the apply DAG's one task calls `run`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from . import checks, frames, reconcile, steps, store
from .api_records import Addition, Agreement, CatalogItem, Company
from .approving import apply_approvals
from .catalog import Products, lines
from .catalog import identifiers as catalog_identifiers
from .config import Settings, load_settings
from .errors import ConfigError, NoInvoiceError
from .results import ApplyResult, RecordedChecks
from .runref import InvoicedRunRef, RunRef, Scope
from .sources import ConnectWiseSource, HuntressSource

log = logging.getLogger(__name__)

MAX_IDS = 500  # a decision names a few; a conf naming more is not a decision
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_scope(conf: Any) -> Scope:
    """The conf, checked; ConfigError (a permanent error: the task fails at once) naming what is wrong."""
    if not isinstance(conf, Mapping):
        raise ConfigError(f"the apply conf must be an object, not {type(conf).__name__}")
    unknown = sorted(set(conf) - set(Scope.__annotations__))
    if unknown:
        raise ConfigError(
            f"the apply conf has unknown keys {unknown}: only billing_date, companies, organizations"
        )
    day = conf.get("billing_date")
    if not isinstance(day, str) or not DATE.fullmatch(day):
        raise ConfigError(f"billing_date must be a date YYYY-MM-DD, not {day!r}")
    try:
        date.fromisoformat(day)
    except ValueError:
        raise ConfigError(f"billing_date {day!r} is not a calendar date") from None
    ids: dict[str, list[int]] = {}
    for name in ("companies", "organizations"):
        value = conf.get(name, [])
        if not isinstance(value, list) or not all(type(v) is int and v > 0 for v in value):
            raise ConfigError(f"{name} must be a list of positive integer ids, not {value!r}")
        if len(value) > MAX_IDS:
            raise ConfigError(f"{name} names {len(value)} ids; an apply takes at most {MAX_IDS}")
        ids[name] = sorted(set(value))
    if not ids["companies"] and not ids["organizations"]:
        raise ConfigError("the apply conf names no company and no organization: nothing to apply")
    return Scope(billing_date=day, companies=ids["companies"], organizations=ids["organizations"])


def _ids(text: Any) -> set[int]:
    """outcomes.organization_ids ("101,102") as ids."""
    return {int(t) for t in str(text).split(",") if t.strip().isdigit()} if pd.notna(text) else set()


def involved(outcomes: pd.DataFrame, scope: Scope) -> tuple[set[int], set[int]]:
    """(companies, organizations) the scope touches, by a reconcile's matching: the companies named
    and those the named organizations map to; the organizations named and those feeding the keys of
    those companies (several organizations may sum into one company)."""
    named_orgs = set(scope["organizations"])
    companies = set(scope["companies"])
    for company, orgs in zip(outcomes["company_id"], outcomes["organization_ids"], strict=True):
        if pd.notna(company) and _ids(orgs) & named_orgs:
            companies.add(int(company))
    organizations = set(named_orgs)
    for company, orgs in zip(outcomes["company_id"], outcomes["organization_ids"], strict=True):
        if pd.notna(company) and int(company) in companies:
            organizations |= _ids(orgs)
    return companies, organizations


def scope_keys(companies: Collection[int], organizations: Collection[int], products: Products) -> set[str]:
    """Every sync key the scope may hold (reconcile/keys.py spells them, one per catalog item of a
    product that keeps several in step): the rows an apply may record, resolve or release, and no other."""
    names = [line.name for line in lines(products)]
    return {f"company:{c}:{n}" for c in companies for n in names} | {
        f"organization:{o}:{n}" for o in organizations for n in names
    }


def _reconcile(
    base: store.RunStore,
    companies: pd.DataFrame,
    additions: pd.DataFrame,
    catalog: pd.DataFrame | None,
    overrides: pd.DataFrame | None,
    settings: Settings,
    billing_date: date,
) -> pd.DataFrame:
    return reconcile.reconcile(
        base.read_frame("usage"),
        base.read_frame("organizations"),
        companies,
        additions,
        base.of.org_map_frame(),
        settings,
        billing_date,
        overrides=overrides,
        catalog=catalog,
    )


def start(eng: Engine, run_id: str, scope: Scope, variable: Any, *, tenant: str) -> tuple[RunRef, str]:
    """Open the apply's run record; (its reference, the full run it reads staged frames from)."""
    base = store.newest_reconciled_run(eng, scope["billing_date"], tenant=tenant)
    if base is None:
        raise NoInvoiceError(
            f"no finished run of {scope['billing_date']} to apply from: the monthly DAG must have "
            "run the billing date first (its invoice lines are what an apply syncs)"
        )
    settings = load_settings(variable)
    ref: RunRef = {
        "tenant": tenant,
        "run_id": run_id,
        "billing_date": scope["billing_date"],
        "settings": settings.to_dict(),
        "mode": "dry_run" if settings.dry_run else "push",
        "force_historical_push": False,
        "invoice_id": base["invoice_id"],  # pinned: the invoice whose lines are staged
        "scope": scope.copy(),
    }
    steps.run_store(eng, ref).start(ref["invoice_id"], ref["mode"], ref["settings"], ref["scope"])
    return ref, str(base["run_id"])


def run(
    eng: Engine,
    run_id: str,
    conf: Any,
    variable: Any,
    *,
    tenant: str,
    huntress: HuntressSource,
    connectwise: Callable[[], ConnectWiseSource],
) -> ApplyResult:
    """The whole apply; `connectwise` builds the client only when a company is involved."""
    scope = parse_scope(conf)
    ref, base_run = start(eng, run_id, scope, variable, tenant=tenant)
    # One request: the invoice list (one page), judged as a full run judges it (pinned, standing,
    # the newest or report only).
    found = steps.find_invoice(eng, ref, huntress)
    if found is None:  # a pinned invoice is found or refused, never waited for
        raise NoInvoiceError(f"invoice {ref['invoice_id']} of {scope['billing_date']} was not found")
    iref: InvoicedRunRef = found
    settings = steps.settings_of(iref)
    billing_date = date.fromisoformat(iref["billing_date"])
    base = store.TenantStore(eng, tenant).run(base_run, billing_date)
    db = steps.run_store(eng, iref)

    # Who is involved, by the full run's companies (matching needs them all: "never guess").
    staged_companies = base.read_frame("companies")
    first = _reconcile(base, staged_companies, frames.empty("additions"), None, None, settings, billing_date)
    companies, organizations = involved(first, scope)

    cw: ConnectWiseSource | None = None
    agreements: dict[int, Agreement] = {}
    additions: list[Addition] = []
    catalog: list[CatalogItem] = []
    fresh: list[Company] = []
    if companies:
        cw = connectwise()
        identifiers = catalog_identifiers(settings.products)
        fresh = cw.companies_by_id(companies)
        catalog = cw.catalog(identifiers)
        for a in cw.agreements(settings.agreement_types, company_ids=companies):
            if isinstance(agreement_id := a.get("id"), int):
                agreements[agreement_id] = a
        additions = cw.additions(sorted(agreements), identifiers)
    fresh_frame = frames.companies_frame(fresh)
    others = staged_companies[~staged_companies["company_id"].isin(list(companies))]
    company_frame = pd.concat([others, fresh_frame], ignore_index=True)
    addition_frame = frames.additions_frame(agreements, additions)
    # The live-addition checks of validate, on these additions only (a full run's suite).
    live = reconcile.live_additions(addition_frame, billing_date, settings.agreement_types)
    issues, _ = checks.run_suite("live_additions", live, checks.live_addition_checks())
    addition_frame["issue"] = pd.Series(pd.NA, index=addition_frame.index, dtype="string")
    addition_frame.loc[issues.index, "issue"] = issues
    catalog_frame = frames.catalog_frame(catalog)
    overrides = db.of.overrides_frame()
    for name, df in (
        ("companies", fresh_frame),
        ("additions", addition_frame),
        ("catalog", catalog_frame),
        ("agreements", frames.agreements_frame(agreements.values())),
        ("overrides", overrides),
    ):
        db.write_frame(name, df)

    outcomes = _reconcile(
        base, company_frame, addition_frame, catalog_frame, overrides, settings, billing_date
    )
    keys = scope_keys(companies, organizations, settings.products)
    outcomes = outcomes[outcomes["sync_key"].isin(keys)].reset_index(drop=True)
    outcomes = apply_approvals(eng, iref, outcomes, within=keys)
    db.write_frame("outcomes", outcomes)

    batches = steps.quarantine(eng, iref, within=keys)
    pushed: dict[str, int] = {}
    for b in batches:
        assert cw is not None  # a change has a company, whose client was built
        for k, v in steps.push_batch(eng, iref, b["batch"], cw).items():
            pushed[k] = pushed.get(k, 0) + v

    final = steps.final_outcomes(eng, iref)
    counts = reconcile.summarize(final)
    result_checks: RecordedChecks = {
        "base_run_id": base_run,
        "money": steps.money_totals(eng, iref, final, {}),
        "requests": {
            "huntress": huntress.api.stats.as_dict(),
            "connectwise": None if cw is None else cw.api.stats.as_dict(),
        },
    }
    db.finish("success", counts, result_checks)
    log.info(
        "apply of %s (companies %s, organizations %s) from run %s: %s",
        scope["billing_date"],
        sorted(companies),
        sorted(scope["organizations"]),
        base_run,
        {k: v for k, v in counts.items() if v},
    )
    return {
        "run_id": run_id,
        "base_run_id": base_run,
        "mode": iref["mode"],
        "companies": sorted(companies),
        "keys": sorted(final["sync_key"].tolist()),
        "counts": counts,
        "pushed": pushed,
    }
