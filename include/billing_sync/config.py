"""The Variable `huntress_cw_billing_config` + trigger params → one typed, validated settings object.

`Settings` (a frozen pydantic model) is the one description of the configuration: each field's
type, bounds, default and description (the README's words, `{default}` standing for the default).
It validates the Variable, a run's params and the review app's settings page alike; the README's
"Configuration" table is rendered from it (`markdown_table`; `python -m billing_sync.config
--markdown` prints it), and a test holds the README to it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypedDict, cast, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from .errors import ConfigError
from .names import VARIABLE_KEY

DEFAULT_PRODUCTS = {
    "edr": "HUNTRESS-EDR",
    "itdr": "HUNTRESS-ITDR",
    "sat": "HUNTRESS-SAT",
    "siem": "HUNTRESS-SIEM",
}
INVOICE_SOURCES = ("reseller", "account")
# The areas a power is granted per (docs/contract.md §1 `powers`); issue 21 §3 enforces them.
AreaName = Literal["read", "quarantine", "mappings", "approvals", "overrides", "settings", "apply"]
POWER_AREAS: tuple[AreaName, ...] = get_args(AreaName)


class SettingsDict(TypedDict, total=False):
    """`Settings.to_dict()`: the JSON form a run reference carries and `billing_runs.settings` and a
    settings decision record. Every key when made by `to_dict`; a run recorded by an older version,
    or a decision (only the keys it changed), may lack some. tests/sync/test_config.py holds the
    keys equal to the model's fields."""

    products: dict[str, str | list[str]]
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
    powers: dict[str, list[str]]


# Identifiers and type names go into ConnectWise `conditions` as "..." literals. Nothing public shows
# ConnectWise accepting backslash escapes there, so a value it cannot carry is refused up front.
UNQUOTABLE_WHY = 'a double quote (") or backslash (\\), which ConnectWise conditions cannot carry'


def _unquotable(values: Any) -> bool:
    return any('"' in v or "\\" in v for v in values)


# -- checks of the structured fields (pydantic's own types check the scalars, strictly) ------------
def _names(value: Any, what: str, *, strip: bool = False, non_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of {what}")
    names = tuple(v.strip() for v in value) if strip else tuple(value)
    if non_empty and not all(names):
        raise ValueError(f"must be a list of {what}, none empty")
    return names


def _agreement_types(value: Any) -> tuple[str, ...]:
    types = _names(value, "agreement type names")
    if _unquotable(types):
        raise ValueError(f"has a type name with {UNQUOTABLE_WHY}")
    return types


def _roles(value: Any) -> tuple[str, ...]:
    return _names(value, "Airflow role names", strip=True, non_empty=True)


def _products(value: Any) -> dict[str, str | tuple[str, ...]]:
    """Product → one identifier (text) or several (a list: non-empty, no repeats); an identifier
    belongs to one product only (one addition cannot carry two counts)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.strip() for k in value):
        raise ValueError("must map Huntress product names to catalog identifiers")
    out: dict[str, str | tuple[str, ...]] = {}
    for product, given in value.items():
        if isinstance(given, str):
            out[product] = given
        elif isinstance(given, list | tuple) and given:
            out[product] = tuple(given)
        else:
            raise ValueError("must map each product to a catalog identifier or a non-empty list of them")
        items = _items(out[product])
        if not all(isinstance(i, str) and i.strip() for i in items):
            raise ValueError("must map Huntress product names to catalog identifiers, none empty")
        if len(set(items)) != len(items):
            raise ValueError(f"lists a catalog identifier twice for {product}")
    owners: dict[str, list[str]] = {}
    for product, given in out.items():
        for identifier in _items(given):
            owners.setdefault(identifier, []).append(product)
    shared = sorted({", ".join(ps) for ps in owners.values() if len(ps) > 1})
    if shared:
        raise ValueError(
            f"must map each product to its own catalog identifier ({'; '.join(shared)} share one)"
        )
    if _unquotable(owners):
        raise ValueError(f"has a catalog identifier with {UNQUOTABLE_WHY}")
    return out


def _default_products() -> dict[str, str | tuple[str, ...]]:
    return dict(DEFAULT_PRODUCTS)


def _items(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _powers(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError(f"must map areas ({', '.join(POWER_AREAS)}) to lists of Airflow role names")
    unknown = sorted(str(k) for k in value if k not in POWER_AREAS)
    if unknown:
        raise ValueError(f"names unknown area(s) {unknown}; the areas are {', '.join(POWER_AREAS)}")
    out = {}
    for area, roles in value.items():
        try:
            out[area] = _roles(roles)
        except ValueError as exc:
            raise ValueError(f"{area} {exc}") from None
        if not out[area]:
            raise ValueError(f"{area} must name at least one role (leave the area out for the default)")
    return out


_GUARD = "the change guard [{default}]"


class Settings(BaseModel):
    """A tenant's settings; constructing one with a bad value raises ConfigError naming the key."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=False)

    products: Annotated[dict[str, str | tuple[str, ...]], BeforeValidator(_products)] = Field(
        default_factory=_default_products,
        description=(
            "Huntress product → ConnectWise catalog identifier, or a list of them (each kept in step on "
            "its own) [{default}]; products not listed are ignored"
        ),
    )
    invoice_source: Literal["reseller", "account"] = Field(
        "reseller",
        description='`"reseller"` (`/v1/reseller/invoices` + organization usage lines) or `"account"` [{default}]',
    )
    billing_day: int = Field(
        1,
        ge=1,
        le=28,
        description="day of month (1–28) the scheduled run fires [{default}]; read when the DAG file is parsed",
    )
    max_change_units: int = Field(10, ge=0, description=_GUARD)
    max_change_ratio: float = Field(
        0.5, ge=0, allow_inf_nan=False, description=_GUARD, json_schema_extra={"row": "max_change_units"}
    )
    allow_drop_to_zero: bool = Field(
        False, description="allow a drop from a positive quantity to 0 [{default}]"
    )
    agreement_types: Annotated[tuple[str, ...], BeforeValidator(_agreement_types)] = Field(
        (), description="ConnectWise agreement type names to consider; empty = all [{default}]"
    )
    connectwise_concurrency: int = Field(
        4, ge=1, le=32, description="parallel requests to ConnectWise, 1–32 [{default}]"
    )
    dry_run: bool = Field(False, description="plan and report, write nothing to ConnectWise [{default}]")
    mapping_roles: Annotated[tuple[str, ...], BeforeValidator(_roles)] = Field(
        (),
        description=(
            "Airflow roles (names, any case) whose members may change organization mappings on the "
            "review pages, on top of acting on the DAG's runs; empty = whoever may edit the DAG and its "
            "Variable [{default}]. Read by the API server on each mapping change; see `docs/operations.md`"
        ),
    )
    four_eyes: bool = Field(
        False,
        description=(
            "four-eyes rule: an approval, a new addition or an override deciding a held key must be made by "
            "someone other than who mapped the company or set its override [{default}]. Read by the API "
            "server on each such decision; see `docs/operations.md`"
        ),
    )
    powers: Annotated[dict[AreaName, tuple[str, ...]], BeforeValidator(_powers)] = Field(
        default_factory=dict,
        description=(
            "per area (`read`, `quarantine`, `mappings`, `approvals`, `overrides`, `settings`, `apply`), "
            "the Airflow roles (names, any case) that hold it; an area left out keeps the earlier "
            "behaviour [{default}]. See `docs/operations.md`"
        ),
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _error(exc) from None

    @classmethod
    def of(cls, raw: Mapping[Any, Any]) -> Settings:
        """Settings from a JSON object's keys (ConfigError naming each bad key)."""
        odd = sorted(repr(k) for k in raw if not isinstance(k, str))
        if odd:
            raise ConfigError(f"{VARIABLE_KEY}: unknown key(s) {odd}")
        return cls(**raw)

    @property
    def catalog_items(self) -> dict[str, tuple[str, ...]]:
        """Each product's catalog identifiers: one identifier is a 1-tuple, a list keeps its order."""
        return {product: _items(given) for product, given in self.products.items()}

    def to_dict(self) -> SettingsDict:
        """The JSON form (every field, in field order): lists for tuples; `load_settings` takes it back."""
        return cast(SettingsDict, self.model_dump(mode="json"))


class SettingsError(ConfigError):
    """Bad settings: `problems` maps each bad key to what its value must be ("" key: unknown keys),
    for a form that shows each beside its field."""

    def __init__(self, message: str, problems: dict[str, str]):
        super().__init__(message)
        self.problems = problems


def _error(exc: ValidationError) -> SettingsError:
    """One short clause per bad key: the key and what it must be (values shortened, never long)."""
    unknown = sorted(str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden")
    problems = {"": f"unknown key(s) {unknown}"} if unknown else {}
    parts = [f"{VARIABLE_KEY}: unknown key(s) {unknown}"] if unknown else []
    for e in exc.errors():
        key = str(e["loc"][0]) if e["loc"] else "?"
        if e["type"] == "extra_forbidden" or key in problems:
            continue
        problems[key] = field_problem(key, e)
        parts.append(f"{VARIABLE_KEY}.{key} {problems[key]} (got {_short(e['input'])})")
    return SettingsError("; ".join(parts), problems)


def field_problem(key: str, error: ErrorDetails) -> str:
    """What the key's value must be, from one pydantic error on it."""
    if error["type"] == "value_error":  # our checks: their words
        return str(error["ctx"]["error"])
    info = Settings.model_fields[key]
    if info.annotation is bool:
        return "must be true or false"
    choices = get_args(info.annotation)
    if choices and all(isinstance(c, str) for c in choices):
        return f"must be one of {list(choices)}"
    low, high = _bounds(info)
    kind = "an integer" if info.annotation is int else "a number"
    if low is not None and high is not None:
        return f"must be {kind} from {low} to {high}"
    if low == 0:
        return f"must be a non-negative {kind.split(' ', 1)[1]}"
    return f"must be {kind}"


def _bounds(info: FieldInfo) -> tuple[Any, Any]:
    low = next((m.ge for m in info.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in info.metadata if getattr(m, "le", None) is not None), None)
    return low, high


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- the README's configuration table --------------------------------------------------------------
TABLE_HEADER = ("| key | meaning |", "|---|---|")


def describe(key: str) -> str:
    """The key's README text with its default rendered."""
    return str(Settings.model_fields[key].description).replace("{default}", _markdown_default(_DEFAULTS[key]))


def markdown_table() -> str:
    """The README's "Configuration" table, one row per key (keys that share a row: one row)."""
    rows: dict[str, list[str]] = {}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        rows.setdefault(str(extra.get("row") or name), []).append(name)
    lines = list(TABLE_HEADER)
    for names in rows.values():
        keys = ", ".join(f"`{n}`" for n in names)
        default = ", ".join(_markdown_default(_DEFAULTS[n]) for n in names)
        text = str(Settings.model_fields[names[0]].description).replace("{default}", default)
        lines.append(f"| {keys} | {text} |")
    return "\n".join(lines) + "\n"


def _markdown_default(value: Any) -> str:
    """JSON; text, lists and objects in backticks, numbers and booleans bare."""
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if isinstance(value, str | list | dict) else text


_DEFAULTS: Mapping[str, object] = Settings().to_dict()  # read by field name


def parse_variable(variable: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The Variable's JSON object (text or dict; absent = {}), unchecked beyond being an object."""
    if variable is None or variable == "":
        raw: Any = {}
    elif isinstance(variable, str):
        try:
            raw = json.loads(variable)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{VARIABLE_KEY} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    else:
        raw = dict(variable)
    if not isinstance(raw, dict):
        raise ConfigError(f"{VARIABLE_KEY} must be a JSON object")
    return raw


def load_settings(
    variable: str | Mapping[str, Any] | None, params: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from the Variable's JSON (text or dict) and a run's params (params win)."""
    raw = parse_variable(variable)
    if params and params.get("dry_run") is not None:
        raw["dry_run"] = params["dry_run"]
    return Settings.of(raw)


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
