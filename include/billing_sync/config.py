"""The Variable `huntress_cw_billing_config` + trigger params → one typed, validated settings object.

`Settings` is the one description of the configuration: each field's default and its `doc` (the
README's words, `{default}` standing for the default) render the README's "Configuration" table
(`markdown_table`; `python -m billing_sync.config --markdown` prints it), and a test holds the README
to it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, TypeGuard

# ConfigError stays importable from here.
from .errors import ConfigError as ConfigError

# DAG_ID stays importable from here until every importer takes it from names.
from .names import DAG_ID as DAG_ID
from .names import VARIABLE_KEY

DEFAULT_PRODUCTS = {
    "edr": "HUNTRESS-EDR",
    "itdr": "HUNTRESS-ITDR",
    "sat": "HUNTRESS-SAT",
    "siem": "HUNTRESS-SIEM",
}
INVOICE_SOURCES = ("reseller", "account")


class SettingsDict(TypedDict):
    """`Settings.to_dict()`: the JSON form a run reference carries (and `billing_runs.settings`)."""

    products: dict[str, str]
    invoice_source: str
    billing_day: int
    max_change_units: int
    max_change_ratio: float
    allow_drop_to_zero: bool
    agreement_types: list[str]
    connectwise_concurrency: int
    dry_run: bool
    mapping_roles: list[str]
    four_eyes: bool


def _doc(text: str, *, row: str | None = None) -> dict[str, str | None]:
    """A field's metadata: its README text (`{default}` = the default, rendered) and, for keys that
    share a README row, the first key of that row."""
    return {"doc": text, "row": row}


_GUARD = "the change guard [{default}]"


@dataclasses.dataclass(frozen=True)
class Settings:
    products: dict[str, str] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_PRODUCTS),
        metadata=_doc(
            "Huntress product → ConnectWise catalog identifier [{default}]; products not listed are ignored"
        ),
    )
    invoice_source: str = dataclasses.field(
        default="reseller",
        metadata=_doc(
            '`"reseller"` (`/v1/reseller/invoices` + organization usage lines) or `"account"` [{default}]'
        ),
    )
    billing_day: int = dataclasses.field(
        default=1,
        metadata=_doc(
            "day of month (1–28) the scheduled run fires [{default}]; read when the DAG file is parsed"
        ),
    )
    max_change_units: int = dataclasses.field(default=10, metadata=_doc(_GUARD))
    max_change_ratio: float = dataclasses.field(default=0.5, metadata=_doc(_GUARD, row="max_change_units"))
    allow_drop_to_zero: bool = dataclasses.field(
        default=False, metadata=_doc("allow a drop from a positive quantity to 0 [{default}]")
    )
    agreement_types: tuple[str, ...] = dataclasses.field(
        default=(), metadata=_doc("ConnectWise agreement type names to consider; empty = all [{default}]")
    )
    connectwise_concurrency: int = dataclasses.field(
        default=4, metadata=_doc("parallel requests to ConnectWise, 1–32 [{default}]")
    )
    dry_run: bool = dataclasses.field(
        default=False, metadata=_doc("plan and report, write nothing to ConnectWise [{default}]")
    )
    mapping_roles: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=_doc(
            "Airflow roles (names, any case) whose members may change organization mappings on the "
            "review pages, on top of acting on the DAG's runs; empty = whoever may edit the DAG and its "
            "Variable [{default}]. Read by the API server on each mapping change; see `docs/operations.md`"
        ),
    )
    four_eyes: bool = dataclasses.field(
        default=False,
        metadata=_doc(
            "four-eyes rule: an approval, a new addition or an override deciding a held key must be made by "
            "someone other than who mapped the company or set its override [{default}]. Read by the API "
            "server on each such decision; see `docs/operations.md`"
        ),
    )

    def to_dict(self) -> SettingsDict:
        # Every field, in field order (markdown_table and the round-trip test name a missing one).
        return SettingsDict(
            products=dict(self.products),
            invoice_source=self.invoice_source,
            billing_day=self.billing_day,
            max_change_units=self.max_change_units,
            max_change_ratio=self.max_change_ratio,
            allow_drop_to_zero=self.allow_drop_to_zero,
            agreement_types=list(self.agreement_types),
            connectwise_concurrency=self.connectwise_concurrency,
            dry_run=self.dry_run,
            mapping_roles=list(self.mapping_roles),
            four_eyes=self.four_eyes,
        )


# -- the README's configuration table --------------------------------------------------------------
TABLE_HEADER = ("| key | meaning |", "|---|---|")


def markdown_table() -> str:
    """The README's "Configuration" table, one row per key (keys that share a row: one row)."""
    defaults = Settings().to_dict()
    rows: dict[str, list[dataclasses.Field[Any]]] = {}
    for f in dataclasses.fields(Settings):
        rows.setdefault(f.metadata.get("row") or f.name, []).append(f)
    lines = list(TABLE_HEADER)
    for fields in rows.values():
        keys = ", ".join(f"`{f.name}`" for f in fields)
        default = ", ".join(_markdown_default(defaults[f.name]) for f in fields)  # type: ignore[literal-required]
        lines.append(f"| {keys} | {fields[0].metadata['doc'].replace('{default}', default)} |")
    return "\n".join(lines) + "\n"


def _markdown_default(value: Any) -> str:
    """JSON; text, lists and objects in backticks, numbers and booleans bare."""
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if isinstance(value, str | list | dict) else text


def load_settings(
    variable: str | Mapping[str, Any] | None, params: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from the Variable's JSON (text or dict) and a run's params (params win)."""
    if variable is None or variable == "":
        raw: dict[str, Any] = {}
    elif isinstance(variable, str):
        try:
            raw = json.loads(variable)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{VARIABLE_KEY} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    else:
        raw = dict(variable)
    if not isinstance(raw, dict):
        raise ConfigError(f"{VARIABLE_KEY} must be a JSON object")
    if params and params.get("dry_run") is not None:
        raw["dry_run"] = params["dry_run"]
    unknown = set(raw) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ConfigError(f"{VARIABLE_KEY}: unknown key(s) {sorted(unknown)}")
    return Settings(**{k: _check(k, v) for k, v in raw.items()})


def _check(key: str, value: Any) -> Any:
    """The value of a known key, checked (and converted where the field's type asks)."""

    def fail(why: str) -> ConfigError:
        return ConfigError(f"{VARIABLE_KEY}.{key} {why} (got {value!r})")

    check = _CHECKS.get(key)
    if check is None:
        raise AssertionError(key)
    return check(value, fail)


# The error of one key, from what its value must be: fail("must be ...").
Fail = Callable[[str], ConfigError]


def _check_products(value: Any, fail: Fail) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()
    ):
        raise fail("must map Huntress product names to catalog identifiers")
    if len(set(value.values())) != len(value):
        raise fail("must map each product to its own catalog identifier")
    if _unquotable(value.values()):
        raise fail(f"has a catalog identifier with {UNQUOTABLE_WHY}")
    return dict(value)


def _check_invoice_source(value: Any, fail: Fail) -> str:
    if not isinstance(value, str) or value not in INVOICE_SOURCES:
        raise fail(f"must be one of {list(INVOICE_SOURCES)}")
    return value


def _check_billing_day(value: Any, fail: Fail) -> int:
    if not _is_int(value) or not 1 <= value <= 28:
        raise fail("must be an integer from 1 to 28")
    return value


def _check_max_change_units(value: Any, fail: Fail) -> int:
    if not _is_int(value) or value < 0:
        raise fail("must be a non-negative integer")
    return value


def _check_max_change_ratio(value: Any, fail: Fail) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise fail("must be a non-negative number")
    return float(value)


def _check_flag(value: Any, fail: Fail) -> bool:
    if not isinstance(value, bool):
        raise fail("must be true or false")
    return value


def _check_agreement_types(value: Any, fail: Fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise fail("must be a list of agreement type names")
    if _unquotable(value):
        raise fail(f"has a type name with {UNQUOTABLE_WHY}")
    return tuple(value)


def _check_mapping_roles(value: Any, fail: Fail) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(r, str) and r.strip() for r in value):
        raise fail("must be a list of Airflow role names")
    return tuple(r.strip() for r in value)


def _check_connectwise_concurrency(value: Any, fail: Fail) -> int:
    if not _is_int(value) or not 1 <= value <= 32:
        raise fail("must be an integer from 1 to 32")
    return value


# Settings key → its check: the value as the field takes it, else fail(...) raised.
_CHECKS: dict[str, Callable[[Any, Fail], object]] = {
    "products": _check_products,
    "invoice_source": _check_invoice_source,
    "billing_day": _check_billing_day,
    "max_change_units": _check_max_change_units,
    "max_change_ratio": _check_max_change_ratio,
    "allow_drop_to_zero": _check_flag,
    "dry_run": _check_flag,
    "four_eyes": _check_flag,
    "agreement_types": _check_agreement_types,
    "mapping_roles": _check_mapping_roles,
    "connectwise_concurrency": _check_connectwise_concurrency,
}


# Identifiers and type names go into ConnectWise `conditions` as "..." literals. Nothing public shows
# ConnectWise accepting backslash escapes there, so a value it cannot carry is refused up front.
UNQUOTABLE_WHY = 'a double quote (") or backslash (\\), which ConnectWise conditions cannot carry'


def _unquotable(values: Any) -> bool:
    return any('"' in v or "\\" in v for v in values)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m billing_sync.config", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        required=True,
        help="print the README's configuration table, rendered from Settings",
    )
    parser.parse_args()
    print(markdown_table(), end="")
