"""The decision history (`billing_decisions`): every decision a person made, append-only.

Append and read, nothing else: no function here (or anywhere in the package) updates or deletes an
entry, and the database refuses both (triggers of revision 0008). The store functions that carry out
a decision (`set_quarantine_status`, `set_org_map`, `delete_org_map`, `add_approval`,
`set_approval_status` when revoking, `add_override`, `retire_override`) append its entry with
`append_decision` on their own connection, inside their own transaction: the decision and its entry
commit together or not at all. A settings change is recorded by whoever makes it
(`record_settings_change`: the settings page, issue 21). `apply` (the desk's Apply-now, issue 20) is
a kind the table accepts and nothing records yet.

Each entry names its `subject` and `subject_id` (docs/contract.md §4): the quarantine row's id, the
organization id of a mapping, the approval's or override's id, the settings' Variable key, a run's
id. The extension columns (quarantine row, sync key, organization, company, product, approval,
override) repeat the subject's keys so a row's or a company's history is one indexed query.

`before` and `after` are the subject as it stood (JSON; None where there was none, e.g. before a
first mapping): the decision's columns of a quarantine row, the whole row of a mapping, approval or
override, the settings as given.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..config import SettingsDict
from .database import _reading, _writing
from .records import ApprovalRow, DecisionEntry, OrgMapping, OverrideRow, QuarantineDecided
from .schema import DECISION_KINDS, DECISION_SUBJECTS, decisions
from .values import _clean, _now, _optional_id, _row, _rows, _tenant_id, _user

# What an entry keeps of its subject before and after (None where there was none): a quarantine row's
# decided columns, the whole row of a mapping, approval or override, the settings changed.
Subject = QuarantineDecided | OrgMapping | ApprovalRow | OverrideRow | SettingsDict

# The extension columns an entry may fill, besides the contract's (docs/contract.md **Extension**).
SUBJECT_COLUMNS = (
    "quarantine_id",
    "sync_key",
    "huntress_organization_id",
    "cw_company_id",
    "product",
    "approval_id",
    "override_id",
)
# The columns of a CSV export, in order: the contract's, then the extensions.
DECISION_COLUMNS = (
    "id",
    "tenant",
    "at",
    "actor_id",
    "actor_name",
    "kind",
    "subject",
    "subject_id",
    "before",
    "after",
    "note",
    *SUBJECT_COLUMNS,
)
_BATCH = 500  # entries per read of `iter_decisions`


class DecisionNotRecorded(RuntimeError):
    """The database refused a decision's entry: the decision is undone with it (same transaction).
    Not an IntegrityError, so a caller's "someone else won the race" handling never takes it for one."""


def append_decision(
    conn: Connection,
    kind: str,
    *,
    tenant: str,
    subject: str,
    subject_id: object,
    user: str | None,
    user_id: str | None,
    before: Subject | None,
    after: Subject | None,
    note: str | None = None,
    **keys: int | str | None,
) -> int:
    """Append one entry on `conn`, in the caller's transaction; returns its id. `subject` is one of
    DECISION_SUBJECTS and `subject_id` which one (kept as text); `keys` takes the extension columns of
    SUBJECT_COLUMNS (ids as integers or digits, the key and product as text)."""
    if kind not in DECISION_KINDS:
        raise ValueError(f"kind must be one of {list(DECISION_KINDS)}, not {kind!r}")
    if subject not in DECISION_SUBJECTS:
        raise ValueError(f"subject must be one of {list(DECISION_SUBJECTS)}, not {subject!r}")
    named = "" if _clean(subject_id) is None else str(subject_id).strip()
    if not named:
        raise ValueError(f"a {kind} decision names its {subject}: subject_id is empty")
    unknown = set(keys) - set(SUBJECT_COLUMNS)
    if unknown:
        raise ValueError(f"not an extension column of a decision: {sorted(unknown)}")
    subject_keys: dict[str, int | str | None] = {}
    for column in SUBJECT_COLUMNS:
        value = _clean(keys.get(column))
        text = column in ("sync_key", "product")
        subject_keys[column] = value if text or value is None else _optional_id(value, column)
    entry = decisions.insert().values(
        tenant=_tenant_id(tenant),
        at=_now(),
        actor_id=user_id,
        actor_name=None if user is None else _user(user),
        kind=kind,
        subject=subject,
        subject_id=named,
        before=None if before is None else dict(before),
        after=None if after is None else dict(after),
        note=note,
        **subject_keys,
    )
    try:
        return int(conn.execute(entry.returning(decisions.c.id)).scalar_one())
    except sa.exc.IntegrityError as exc:
        raise DecisionNotRecorded(f"the {kind} decision was not recorded, so not made: {exc.orig}") from exc


def record_settings_change(
    engine: Engine,
    *,
    tenant: str,
    variable: str,
    user: str,
    user_id: str | None,
    before: SettingsDict | None,
    after: SettingsDict,
    note: str | None = None,
) -> DecisionEntry:
    """Record that `user` changed the tenant's settings, the Airflow Variable `variable` (the
    tenant's `variable` key), from `before` to `after` (kind and subject `settings`, subject_id the
    Variable key); returns the entry. For the settings page (issue 21), which calls it where it
    writes the settings; no page changes settings today. Never pass secrets: settings hold none
    (credentials live in Airflow connections)."""
    with _writing(engine) as conn:
        new_id = append_decision(
            conn,
            "settings",
            tenant=tenant,
            subject="settings",
            subject_id=variable,
            user=user,
            user_id=user_id,
            before=before,
            after=after,
            note=note,
        )
        return _row(conn.execute(sa.select(decisions).where(decisions.c.id == new_id)).one(), DecisionEntry)


def _filters(
    tenant: str,
    quarantine_id: int | None,
    company_id: int | None,
    organization_id: int | None,
    kind: str | None,
) -> list[sa.ColumnElement[bool]]:
    d = decisions
    t = _tenant_id(tenant)
    where: list[sa.ColumnElement[bool]] = [d.c.tenant == t]
    if quarantine_id is not None:
        where.append(d.c.quarantine_id == int(quarantine_id))
    if organization_id is not None:
        where.append(d.c.huntress_organization_id == int(organization_id))
    if company_id is not None:
        # A company's history: what named it, and every decision on an organization that was ever
        # mapped to it (a re-mapping away from it names the new company only).
        orgs = (
            sa.select(d.c.huntress_organization_id)
            .where(
                d.c.tenant == t,
                d.c.cw_company_id == int(company_id),
                d.c.huntress_organization_id.is_not(None),
            )
            .scalar_subquery()
        )
        where.append(sa.or_(d.c.cw_company_id == int(company_id), d.c.huntress_organization_id.in_(orgs)))
    if kind is not None:
        if kind not in DECISION_KINDS:
            raise ValueError(f"kind must be one of {list(DECISION_KINDS)}, not {kind!r}")
        where.append(d.c.kind == kind)
    return where


def list_decisions(
    engine: Engine,
    *,
    tenant: str,
    quarantine_id: int | None = None,
    company_id: int | None = None,
    organization_id: int | None = None,
    kind: str | None = None,
    limit: int | None = 500,
    offset: int = 0,
) -> list[DecisionEntry]:
    """The tenant's entries matching every given filter, newest first."""
    where = _filters(tenant, quarantine_id, company_id, organization_id, kind)
    d = decisions
    stmt = sa.select(d).where(*where).order_by(d.c.id.desc()).limit(limit).offset(offset)
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt), DecisionEntry)


def iter_decisions(
    engine: Engine,
    *,
    tenant: str,
    quarantine_id: int | None = None,
    company_id: int | None = None,
    organization_id: int | None = None,
    kind: str | None = None,
    batch: int = _BATCH,
) -> Iterator[DecisionEntry]:
    """Every matching entry, newest first, read `batch` at a time (by id, each batch its own short
    read), so an export of the whole history holds neither all of it nor a connection for long."""
    where = _filters(tenant, quarantine_id, company_id, organization_id, kind)
    d, below = decisions, None
    bound: list[sa.ColumnElement[bool]]
    while True:
        bound = [] if below is None else [d.c.id < below]
        stmt = sa.select(d).where(*where, *bound).order_by(d.c.id.desc()).limit(batch)
        with _reading(engine) as conn:
            rows = _rows(conn.execute(stmt), DecisionEntry)
        yield from rows
        if len(rows) < batch:
            return
        below = rows[-1]["id"]
