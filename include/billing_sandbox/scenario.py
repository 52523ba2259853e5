"""Load and validate a sandbox scenario file (docs/contract.md §5) against scenario.schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import relevance

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
MAX_REPORTED_ERRORS = 20
_DEFS_REF = "#/$defs/"


class ScenarioError(ValueError):
    """A scenario that cannot be served; `problems` holds one 'json.path: why' line each."""

    def __init__(self, problems: list[str], source: str = "scenario") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source} is invalid:\n  " + "\n  ".join(problems))


def _strict_integer(_checker: Any, instance: Any) -> bool:
    # JSON Schema counts 1.0 as an integer; an id of 1.0 would then be served as 1.0, so refuse it.
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    checker = base.TYPE_CHECKER.redefine("integer", _strict_integer)
    cls = jsonschema.validators.extend(base, type_checker=checker)
    # References resolved once here, not at every record: validation takes less than half the time.
    return cls(_inline_refs(schema, schema.get("$defs", {})), format_checker=base.FORMAT_CHECKER)


def _inline_refs(node: Any, defs: dict[str, Any], within: tuple[str, ...] = ()) -> Any:
    """`node` with each bare {"$ref": "#/$defs/NAME"} replaced by that definition (recursive ones kept)."""
    if isinstance(node, list):
        return [_inline_refs(item, defs, within) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    name = ref.removeprefix(_DEFS_REF) if isinstance(ref, str) and ref.startswith(_DEFS_REF) else None
    if len(node) == 1 and name in defs and name not in within:
        return _inline_refs(defs[name], defs, (*within, name))
    return {key: _inline_refs(value, defs, within) for key, value in node.items()}


def json_path(parts: Iterable[str | int]) -> str:
    """Render a JSON path the way a reader writes it: huntress.invoices[0].lines[3].id."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def validate_scenario(data: Any, source: str = "scenario") -> None:
    """Raise ScenarioError naming each bad field's JSON path, schema problems first."""
    errors = sorted(_validator().iter_errors(data), key=relevance, reverse=True)
    problems = [f"{json_path(e.absolute_path)}: {e.message}" for e in errors]
    if not problems:
        problems = list(_consistency_problems(data))
    if problems:
        raise ScenarioError(problems[:MAX_REPORTED_ERRORS], source)


def load_scenario(path: str | Path) -> dict[str, Any]:
    """Read and validate a scenario file; raises ScenarioError (also for unreadable or non-JSON files)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"(file): cannot read: {exc.strerror or exc}"], str(path)) from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ScenarioError([f"(file): not valid JSON: {exc}"], str(path)) from exc
    validate_scenario(data, str(path))
    return data


def _reject_constant(name: str) -> Any:
    # json accepts NaN/Infinity, but no real API can send them: the sandbox would emit invalid JSON.
    raise ValueError(f"{name} is not valid JSON")


def _duplicates(items: list[dict[str, Any]], where: str) -> Iterator[str]:
    seen: set[Any] = set()
    for index, item in enumerate(items):
        if item["id"] in seen:
            yield f"{where}[{index}].id: {item['id']!r} is not unique"
        seen.add(item["id"])


def _duplicates_at(items: list[tuple[str, int | None, dict[str, Any]]]) -> Iterator[str]:
    """`_duplicates` over records of several lists, each (list path, index or None, record)."""
    seen: set[Any] = set()
    for where, index, item in items:
        if item["id"] in seen:
            yield f"{where}{'' if index is None else f'[{index}]'}.id: {item['id']!r} is not unique"
        seen.add(item["id"])


def _consistency_problems(data: dict[str, Any]) -> Iterator[str]:
    """What a schema cannot say: unique ids, and invoice lines naming an organization."""
    hunt, cw = data["huntress"], data["connectwise"]
    managed = hunt.get("managed_accounts", [])
    # Organization ids are unique across Huntress, keys only within an account (reference).
    organizations = [("huntress.organizations", i, org) for i, org in enumerate(hunt["organizations"])]
    organizations += [
        (f"huntress.managed_accounts[{a}].organizations", i, org)
        for a, account in enumerate(managed)
        for i, org in enumerate(account.get("organizations", []))
    ]
    yield from _duplicates_at(organizations)
    yield from _duplicates_at(
        [("huntress.account", None, hunt["account"])]
        + [("huntress.managed_accounts", i, account) for i, account in enumerate(managed)]
    )
    yield from _duplicates(hunt["invoices"], "huntress.invoices")
    org_ids = {org["id"] for _, _, org in organizations}
    line_ids: set[int] = set()
    for i, invoice in enumerate(hunt["invoices"]):
        for j, line in enumerate(invoice["lines"]):
            where = f"huntress.invoices[{i}].lines[{j}]"
            if "id" in line:
                if line["id"] in line_ids:
                    yield f"{where}.id: {line['id']!r} is not unique"
                line_ids.add(line["id"])
            if line["organization_id"] not in org_ids and "organization_name" not in line:
                yield (
                    f"{where}.organization_id: {line['organization_id']!r} is not in huntress.organizations "
                    "or a managed account's (add the organization, or give the line an organization_name)"
                )
    for name in ("companies", "catalog", "agreements"):
        yield from _duplicates(cw[name], f"connectwise.{name}")
    seen: set[int] = set()
    for i, agreement in enumerate(cw["agreements"]):
        for j, addition in enumerate(agreement.get("additions", [])):
            if addition["id"] in seen:
                yield f"connectwise.agreements[{i}].additions[{j}].id: {addition['id']!r} is not unique"
            seen.add(addition["id"])
