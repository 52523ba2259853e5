"""The Variable `huntress_cw_billing_config` + trigger params → one typed, validated settings object."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

# Contract names (CONTRACTS.md §1). The DAG file spells them too: it imports nothing of ours at parse.
DAG_ID = "huntress_connectwise_billing_sync"
VARIABLE_KEY = "huntress_cw_billing_config"

DEFAULT_PRODUCTS = {
    "edr": "HUNTRESS-EDR",
    "itdr": "HUNTRESS-ITDR",
    "sat": "HUNTRESS-SAT",
    "siem": "HUNTRESS-SIEM",
}
INVOICE_SOURCES = ("reseller", "account")


class ConfigError(ValueError):
    """The configuration is unusable; the message says which key and why."""


@dataclasses.dataclass(frozen=True)
class Settings:
    products: dict[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_PRODUCTS))
    invoice_source: str = "reseller"
    billing_day: int = 1
    max_change_units: int = 10
    max_change_ratio: float = 0.5
    allow_drop_to_zero: bool = False
    agreement_types: tuple[str, ...] = ()
    connectwise_concurrency: int = 4
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["agreement_types"] = list(self.agreement_types)
        return d


def load_settings(variable: str | Mapping[str, Any] | None, params: Mapping[str, Any] | None = None) -> Settings:
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
    def fail(why: str) -> ConfigError:
        return ConfigError(f"{VARIABLE_KEY}.{key} {why} (got {value!r})")

    if key == "products":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()
        ):
            raise fail("must map Huntress product names to catalog identifiers")
        if len(set(value.values())) != len(value):
            raise fail("must map each product to its own catalog identifier")
        if _unquotable(value.values()):
            raise fail(f"has a catalog identifier with {UNQUOTABLE_WHY}")
        return dict(value)
    if key == "invoice_source":
        if value not in INVOICE_SOURCES:
            raise fail(f"must be one of {list(INVOICE_SOURCES)}")
        return value
    if key == "billing_day":
        if not _is_int(value) or not 1 <= value <= 28:
            raise fail("must be an integer from 1 to 28")
        return value
    if key == "max_change_units":
        if not _is_int(value) or value < 0:
            raise fail("must be a non-negative integer")
        return value
    if key == "max_change_ratio":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise fail("must be a non-negative number")
        return float(value)
    if key in ("allow_drop_to_zero", "dry_run"):
        if not isinstance(value, bool):
            raise fail("must be true or false")
        return value
    if key == "agreement_types":
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise fail("must be a list of agreement type names")
        if _unquotable(value):
            raise fail(f"has a type name with {UNQUOTABLE_WHY}")
        return tuple(value)
    if key == "connectwise_concurrency":
        if not _is_int(value) or not 1 <= value <= 32:
            raise fail("must be an integer from 1 to 32")
        return value
    raise AssertionError(key)


# Identifiers and type names go into ConnectWise `conditions` as "..." literals. Nothing public shows
# ConnectWise accepting backslash escapes there, so a value it cannot carry is refused up front.
UNQUOTABLE_WHY = 'a double quote (") or backslash (\\), which ConnectWise conditions cannot carry'


def _unquotable(values: Any) -> bool:
    return any('"' in v or "\\" in v for v in values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
