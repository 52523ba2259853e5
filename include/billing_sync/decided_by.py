"""Names the approval or override behind a change ("approval #3 by Jane Doe").

The report and its CSVs name it so (issue 20 §3): "approval #3 by Alice Example" where a person
approved it (`approval_id`), "override #7: minimum 45 by Jane Doe" where a standing override decided
its quantity (`override_id`), both ("; ") where both did, None where the sync alone decided.

Read from the store by id, not from the run's staged outcomes: the names stay right after staging is
purged, and an approval or override retired since still names who made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from sqlalchemy.engine import Engine

from . import money, store
from .store.records import ApprovalRow, OverrideRow

SEPARATOR = "; "


class DecisionIds(TypedDict):
    """What may have decided a row (a ledger row, an outcome): its approval's id, its override's."""

    approval_id: int | None
    override_id: int | None


def approval_text(approval: ApprovalRow) -> str:
    return f"approval #{int(approval['id'])} by {approval.get('approved_by') or '(unknown)'}"


def override_text(override: OverrideRow) -> str:
    rule = str(override["rule"])
    if rule != "exclude":
        rule = f"{rule} {money.text(override.get('quantity')) or '(no quantity)'}"
    return f"override #{int(override['id'])}: {rule} by {override.get('created_by') or '(unknown)'}"


def decided_by(engine: Engine, rows: Iterable[DecisionIds], *, tenant: str) -> list[str | None]:
    """For each row (a ledger row or an outcome: `approval_id`, `override_id`) what decided it; an id
    the tenant's store does not hold reads "approval #N" / "override #N" alone."""
    rows = list(rows)
    approval_ids = {i for r in rows if (i := _id(r.get("approval_id"))) is not None}
    approvals = {
        i: a for i in approval_ids if (a := store.get_approval(engine, i, tenant=tenant)) is not None
    }
    overrides = (
        {o["id"]: o for o in store.list_overrides(engine, tenant=tenant, active=None)}
        if any(_id(r.get("override_id")) is not None for r in rows)
        else {}
    )
    out: list[str | None] = []
    for r in rows:
        parts = []
        if (approval_id := _id(r.get("approval_id"))) is not None:
            known = approvals.get(approval_id)
            parts.append(approval_text(known) if known else f"approval #{approval_id}")
        if (override_id := _id(r.get("override_id"))) is not None:
            rule = overrides.get(override_id)
            parts.append(override_text(rule) if rule else f"override #{override_id}")
        out.append(SEPARATOR.join(parts) or None)
    return out


def _id(value: Any) -> int | None:
    """An id column's value (int, numpy int, float from a frame, NA) as an int; None when missing."""
    number = money.amount(value)
    return None if number is None else int(number)
