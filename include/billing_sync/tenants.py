"""Tenants: several Huntress accounts / ConnectWise sites in one Airflow (docs/contract.md §1 Tenants).

The file named by `BILLING_SYNC_TENANTS_FILE` gives one DAG per tenant. The DAG file reads it at
every parse, so this module imports only the standard library and `names` (which imports
nothing) and asks no database. Without the file
there is one tenant, `default`, with exactly the single-tenant DAG id, connections and Variable.

A broken entry never hides the others: `load` returns the good tenants and, apart, one problem per
broken entry naming its line; `dags/billing_sync_tenants_check.py` raises those as the import error
Airflow shows, while the DAG file builds the good tenants' DAGs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .names import APPLY_DAG_ID, CONNECTWISE_CONN_ID, DAG_ID, HUNTRESS_CONN_ID, VARIABLE_KEY

TENANTS_FILE_ENV = "BILLING_SYNC_TENANTS_FILE"
DEFAULT_TENANT = "default"

KEYS = ("id", "huntress_conn_id", "connectwise_conn_id", "variable", "billing_day")
_TENANT_ID = re.compile(r"[a-z0-9_]+")
# What Airflow accepts in a connection id or Variable key (letters, digits, `_`, `-`, `.`).
_AIRFLOW_KEY = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Tenant:
    id: str
    huntress_conn_id: str = HUNTRESS_CONN_ID
    connectwise_conn_id: str = CONNECTWISE_CONN_ID
    variable: str = VARIABLE_KEY
    # The schedule's day of the month; None in the single-tenant form, whose day is the Variable's.
    billing_day: int | None = None
    line: int | None = field(default=None, compare=False)  # where the entry starts in the file

    @property
    def single_tenant_form(self) -> bool:
        """The tenant of a deployment without a tenants file (entries of the file have a billing_day)."""
        return self.billing_day is None

    @property
    def dag_id(self) -> str:
        return DAG_ID if self.single_tenant_form else f"{DAG_ID}__{self.id}"

    @property
    def apply_dag_id(self) -> str:
        """The tenant's apply DAG (the desk's Apply now; docs/contract.md §1)."""
        return APPLY_DAG_ID if self.single_tenant_form else f"{APPLY_DAG_ID}__{self.id}"

    @property
    def huntress_pool(self) -> str | None:
        """The Airflow pool (one slot) of the tasks that call Huntress, so tenants sharing a
        Huntress account (and so its connection) share its 60 requests per minute; None in the
        single-tenant form, which runs as it always did."""
        return None if self.single_tenant_form else f"huntress__{self.huntress_conn_id}"


DEFAULT = Tenant(DEFAULT_TENANT)


class TenantsFileError(ValueError):
    """The tenants file is unusable as a whole (missing, not JSON, no `tenants` list)."""


@dataclass(frozen=True)
class Loaded:
    tenants: list[Tenant]
    problems: list[str]  # one per broken entry: "<file>, line N: <what is wrong>"


def dag_id_of(tenant_id: str) -> str:
    """The DAG of a tenant, configured or not (history of a tenant since removed from the file):
    a configured tenant's own (a file may name a tenant `default` too), else the single-tenant DAG
    for `default` and `huntress_connectwise_billing_sync__<id>` for any other."""
    try:
        return next(t.dag_id for t in configured() if t.id == tenant_id)
    except (StopIteration, TenantsFileError):
        return DAG_ID if tenant_id == DEFAULT_TENANT else f"{DAG_ID}__{check_id(tenant_id)}"


def apply_dag_id_of(tenant_id: str) -> str:
    """The apply DAG of a tenant, as `dag_id_of` names its monthly DAG."""
    monthly = dag_id_of(tenant_id)
    return APPLY_DAG_ID + monthly[len(DAG_ID) :]


def of_dag(dag_id: str) -> str:
    """The tenant a DAG id belongs to (`default` for the single-tenant DAGs), monthly or apply."""
    for base in (DAG_ID, APPLY_DAG_ID):
        prefix = f"{base}__"
        if dag_id.startswith(prefix):
            return dag_id[len(prefix) :]
    return DEFAULT_TENANT


def check_id(value: Any) -> str:
    """`value` if it is a tenant id (lowercase letters, digits, `_`), else ValueError."""
    if not isinstance(value, str) or not _TENANT_ID.fullmatch(value):
        raise ValueError(f"tenant must be lowercase letters, digits and _, not {value!r}")
    return value


def tenants_file() -> Path | None:
    value = os.environ.get(TENANTS_FILE_ENV, "").strip()
    return Path(value) if value else None


def configured() -> list[Tenant]:
    """The tenants the DAG file builds: the good entries of the tenants file, else the default."""
    path = tenants_file()
    return [DEFAULT] if path is None else load(path).tenants


def entry_problems() -> list[str]:
    """The broken entries of the tenants file; none without a file, or when the file as a whole is
    unusable (configured() raises that)."""
    path = tenants_file()
    try:
        return [] if path is None else load(path).problems
    except TenantsFileError:
        return []


def by_id(tenant_id: str) -> Tenant:
    for tenant in configured():
        if tenant.id == tenant_id:
            return tenant
    if tenant_id == DEFAULT_TENANT:  # rows of the single-tenant form stay readable under a tenants file
        return DEFAULT
    raise KeyError(f"no tenant {tenant_id!r} in {tenants_file() or 'the single-tenant form'}")


def load(path: Path) -> Loaded:
    """The tenants of `path`; raises TenantsFileError (with the line) when the file as a whole is unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantsFileError(f"{path}: cannot read the tenants file ({exc.strerror})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TenantsFileError(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("tenants"), list):
        raise TenantsFileError(f'{path}, line 1: expected {{"tenants": [...]}}')
    if unknown := sorted(set(document) - {"tenants"}):
        raise TenantsFileError(f"{path}, line 1: unknown key(s) {', '.join(map(repr, unknown))}")
    lines = _entry_lines(text)
    tenants: list[Tenant] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for i, entry in enumerate(document["tenants"]):
        line = lines[i] if i < len(lines) else 1
        try:
            tenant = _tenant(entry, line)
        except ValueError as exc:
            problems.append(f"{path}, line {line}: tenant #{i + 1}: {exc}")
            continue
        if tenant.id in first_line:
            problems.append(
                f"{path}, line {line}: tenant id {tenant.id!r} repeats the tenant on line {first_line[tenant.id]}"
            )
            continue
        first_line[tenant.id] = line
        tenants.append(tenant)
    return Loaded(tenants, problems)


def _tenant(entry: Any, line: int) -> Tenant:
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    if unknown := sorted(set(entry) - set(KEYS)):
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(KEYS)}")
    if missing := [k for k in KEYS if k not in entry]:
        raise ValueError(f"missing {', '.join(map(repr, missing))}")
    tenant_id = entry["id"]
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"id {tenant_id!r} must be lowercase letters, digits and _")
    for key in ("huntress_conn_id", "connectwise_conn_id", "variable"):
        if not isinstance(entry[key], str) or not _AIRFLOW_KEY.fullmatch(entry[key]):
            raise ValueError(f"{key} {entry[key]!r} must be letters, digits, _, - or .")
    day = entry["billing_day"]
    if type(day) is not int or not 1 <= day <= 28:
        raise ValueError(f"billing_day {day!r} must be a whole number from 1 to 28")
    return Tenant(
        tenant_id, entry["huntress_conn_id"], entry["connectwise_conn_id"], entry["variable"], day, line
    )


def _entry_lines(text: str) -> list[int]:
    """The line each element of the top-level `tenants` array starts on (the text is valid JSON)."""
    decoder = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")

    def skip(pos: int) -> int:
        return ws.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string too

    pos = skip(0) + 1  # past the top-level "{"
    while True:
        pos = skip(pos)
        if text[pos] == "}":
            return []
        key, pos = decoder.raw_decode(text, pos)
        pos = skip(skip(pos) + 1)  # past ":"
        if key == "tenants" and text[pos] == "[":
            starts: list[int] = []
            pos = skip(pos + 1)
            while text[pos] != "]":
                starts.append(text.count("\n", 0, pos) + 1)
                _, pos = decoder.raw_decode(text, pos)
                pos = skip(pos)
                pos = skip(pos + 1) if text[pos] == "," else pos
            return starts
        _, pos = decoder.raw_decode(text, pos)
        pos = skip(pos)
        pos = pos + 1 if text[pos] == "," else pos
