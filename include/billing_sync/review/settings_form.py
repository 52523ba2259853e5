"""The settings form ↔ `Settings`, and where each value comes from.

The form's text fields, and the differences between two settings, as people read them.

The form never builds settings itself: it turns text into JSON values and hands the tenant's
Variable, edited, to `Settings.of` (the model the DAG uses), whose problems come back per field.
A value typed as the one in force changes nothing (a default stays a default); an emptied number
returns the key to its default.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any, cast

from billing_sync.config import DEFAULT_PRODUCTS, POWER_AREAS, Settings, SettingsDict, SettingsError, describe

PRODUCTS = tuple(DEFAULT_PRODUCTS)  # Huntress's products, each offered a field
FLAGS = ("allow_drop_to_zero", "dry_run", "four_eyes")
NUMBERS = ("billing_day", "max_change_units", "max_change_ratio", "connectwise_concurrency")
_INTEGER = re.compile(r"-?[0-9]{1,12}")


@dataclass(frozen=True)
class Row:
    """One setting on the page."""

    key: str
    meaning: str  # the README's words, the default rendered
    value: str  # as a person reads it
    source: str  # "default", "Variable" or "tenants file"
    editable: bool


def source(key: str, in_variable: Container[str], tenant_day: int | None) -> str:
    """Where the setting's value comes from; `in_variable`: the keys the tenant's Variable sets."""
    if key == "billing_day" and tenant_day is not None:
        return "tenants file"
    return "Variable" if key in in_variable else "default"


def rows(settings: Settings, in_variable: Container[str], tenant_day: int | None) -> list[Row]:
    values: dict[str, object] = {**settings.to_dict()}  # read by field name
    if tenant_day is not None:  # the schedule's day is the tenants file's; the Variable's is unused
        values["billing_day"] = tenant_day
    return [
        Row(
            key,
            describe(key),
            show(values[key]),
            source(key, in_variable, tenant_day),
            not (key == "billing_day" and tenant_day is not None),
        )
        for key in Settings.model_fields
    ]


def show(value: Any) -> str:
    """A setting's JSON value in plain words: lists comma-separated, mappings `key: value; ...`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {show(v)}" for k, v in value.items()) if value else "(none)"
    return str(value)


def form_of(settings: Settings) -> dict[str, str]:
    """The form's fields filled with these settings."""
    values: Mapping[str, object] = settings.to_dict()  # read by field name
    form = {k: str(values[k]) for k in (*NUMBERS, "invoice_source")}
    form |= {k: "true" for k in FLAGS if values[k]}
    form["agreement_types"] = "\n".join(settings.agreement_types)
    form["mapping_roles"] = ", ".join(settings.mapping_roles)
    form |= {f"products.{p}": ", ".join(items) for p, items in settings.catalog_items.items()}
    form |= {f"powers.{a}": ", ".join(roles) for a, roles in settings.powers.items()}
    return form


def products_offered(settings: Settings) -> list[str]:
    """Huntress's products, then any other product the Variable names (kept, and editable)."""
    return [*PRODUCTS, *(p for p in settings.products if p not in PRODUCTS)]


def edited(
    form: Mapping[str, str], current: Settings, raw: Mapping[str, Any], tenant_day: int | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Variable's JSON object (`raw`) with the form's changes, and the problems per field (the
    model's words; `products` and `powers` problems under those keys)."""
    now: Mapping[str, object] = current.to_dict()  # read by field name
    wanted: dict[str, object] = {}
    for key in NUMBERS:
        if key == "billing_day" and tenant_day is not None:
            continue  # not the Variable's to set under a tenants file
        wanted[key] = _number(form.get(key, ""), integer=key != "max_change_ratio")
    wanted["invoice_source"] = form.get("invoice_source", "").strip()
    wanted |= {k: form.get(k) == "true" for k in FLAGS}
    wanted["agreement_types"] = lines(form.get("agreement_types", ""))
    wanted["mapping_roles"] = _commas(form.get("mapping_roles", ""))
    products = {p: _identifiers(form.get(f"products.{p}", "")) for p in products_offered(current)}
    wanted["products"] = {p: v for p, v in products.items() if v}
    powers = {a: _commas(form.get(f"powers.{a}", "")) for a in POWER_AREAS}
    wanted["powers"] = {a: v for a, v in powers.items() if v}

    out = dict(raw)
    for key, value in wanted.items():
        if value is None:  # an emptied number: back to the default
            out.pop(key, None)
        elif value != now[key]:
            out[key] = value
    try:
        Settings.of(out)
    except SettingsError as exc:
        return out, dict(exc.problems)
    return out, {}


def _number(text: str, *, integer: bool) -> int | float | str | None:
    """The typed number, None for an empty field, else the text itself (which the model refuses)."""
    text = text.strip()
    if not text:
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    if not integer:
        try:
            value = float(text)
        except ValueError:
            return text
        return value if math.isfinite(value) else text
    return text


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _commas(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def identifiers(text: str) -> list[str]:
    """A product field's identifiers, in order."""
    return _commas(text)


def _identifiers(text: str) -> str | list[str]:
    """One identifier as text (as the Variable has always held it), several as a list."""
    items = _commas(text)
    return items[0] if len(items) == 1 else items


@dataclass(frozen=True)
class Change:
    key: str
    before: str
    after: str


def changes(
    before: Settings,
    before_raw: Container[str],
    after: Settings,
    after_raw: Container[str],
) -> list[Change]:
    """Each setting whose value, or whether the Variable sets it (`before_raw`, `after_raw`: the keys
    the Variable sets), differs (a default says so)."""
    old: Mapping[str, object] = before.to_dict()  # read by field name
    new: Mapping[str, object] = after.to_dict()
    found = []
    for key in Settings.model_fields:
        if old[key] != new[key] or (key in before_raw) != (key in after_raw):
            found.append(Change(key, _shown(old[key], key in before_raw), _shown(new[key], key in after_raw)))
    return found


def _shown(value: Any, in_variable: bool) -> str:
    return show(value) if in_variable else f"{show(value)} (default)"


def recorded(before: Settings, after: Settings, found: list[Change]) -> tuple[SettingsDict, SettingsDict]:
    """The decision's before and after: the changed settings' JSON values."""
    old: Mapping[str, object] = before.to_dict()  # read by field name
    new: Mapping[str, object] = after.to_dict()
    changed = [c.key for c in found]
    return (
        cast(SettingsDict, {k: old[k] for k in changed}),  # the model's own keys and JSON values
        cast(SettingsDict, {k: new[k] for k in changed}),
    )


def variable_text(raw: Mapping[str, Any]) -> str:
    return json.dumps(dict(raw), indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class RunSetting:
    """One setting of a run's page: what the run resolved with, and whether it differs now."""

    key: str
    value: str  # as the run recorded it ("(not recorded)" for a key it predates)
    now: str | None  # the setting in force now; None when unknown
    differs: bool


def run_rows(recorded: SettingsDict | None, current: Settings | None) -> list[RunSetting]:
    """The run's settings (`billing_runs.settings`), every key of the model and any other it
    recorded, each beside the value in force now (when it can be read)."""
    recorded_values: Mapping[str, object] = recorded or {}  # read by field name
    now: Mapping[str, object] | None = current.to_dict() if current is not None else None
    keys = [*Settings.model_fields, *(k for k in recorded_values if k not in Settings.model_fields)]
    found = []
    for key in keys:
        had = key in recorded_values
        value = show(recorded_values[key]) if had else "(not recorded)"
        shown_now = None if now is None else (show(now[key]) if key in now else "(no such setting now)")
        differs = now is not None and had and now.get(key, _MISSING) != recorded_values[key]
        found.append(RunSetting(key, value, shown_now, differs))
    return found


_MISSING = object()
