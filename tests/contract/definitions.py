"""The vendored public definitions (specs/, provenance in specs/README.md) as strict validators of
one answer: which operation a request is, and every way its body departs from that operation's schema.

Strict: every object schema that lists properties gets `additionalProperties: false`, so a field the
definition does not name is a failure. The readings of specs/README.md, and only those, soften the
letter: ConnectWise `nullable` admits null and its `required` binds request bodies only (answers may
be trimmed by `fields=`); `PatchOperation.value` is any JSON value; Huntress `"Object"` is `object`,
an object property declared without properties takes its keys and JSON types from its example, and
`OrganizationWithActualProductUsages.actual_usages` is that example's object or a string. Huntress's
own `required` lists are kept (its undescribed required fields are named there, so they are allowed,
of any type). Formats are checked: `date-time`, `int32`, `int64`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPECS = Path(__file__).parent / "specs"
HUNTRESS = "huntress-openapi.json"
CW_GET = "connectwise-manage-2026.4-get.json"
CW_WRITES = "connectwise-manage-2025.16-addition-writes.json"
CW_GO_MODELS = "connectwise-2025.1-go-models.json"
CW_API_ROOT = "/apis/3.0"  # ConnectWise paths are relative to {site}/{codebase}apis/3.0

# Operations a definition does not give as a path, but whose answer one of its schemas describes
# (specs/README.md: the Go models carry `Info`, the answer of system/info).
CW_EXTRA_OPERATIONS = {("GET", "/system/info"): ("#/components/schemas/Info", CW_GO_MODELS)}
CW_ERROR = "#/components/schemas/ErrorResponseMessage"  # every ConnectWise 4xx/5xx body (Go models)


@dataclass(frozen=True)
class Operation:
    api: str  # "huntress" | "connectwise"
    method: str
    template: str  # the path as its definition names it

    def __str__(self) -> str:
        return f"{self.api} {self.method} {self.template}"


@dataclass(frozen=True)
class Problem:
    operation: Operation
    status: int
    where: str  # JSON path in the body, "$" for the whole
    message: str

    def __str__(self) -> str:
        return f"{self.operation} → {self.status}: {self.where}: {self.message}"


# --- normalizing the definitions to JSON Schema ---------------------------------------------------


def _ref(ref: str) -> str:
    return "#/definitions/" + ref.rsplit("/", 1)[1]


def _from_example(example: Any) -> dict[str, Any]:
    """A schema of the example's keys and JSON types, strict (README: Huntress's bare objects)."""
    if isinstance(example, dict):
        return {
            "type": "object",
            "properties": {k: _from_example(v) for k, v in example.items()},
            "additionalProperties": False,
        }
    if isinstance(example, list):
        items: dict[str, Any] = {}
        for item in example:  # the union of the elements' keys (e.g. itdr's two tenants)
            schema = _from_example(item)
            if items.get("type") == "object" == schema["type"]:
                items["properties"] = {**items["properties"], **schema["properties"]}
            else:
                items = schema
        return {"type": "array", "items": items} if items else {"type": "array"}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    if example is None:
        return {"type": "null"}
    return {"type": "string"}


def _schema(node: Any, api: str) -> Any:
    """One definition schema → strict JSON Schema (draft 7, `$ref`s into `#/definitions`)."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # OpenAPI 3.0 and Swagger 2.0 ignore a $ref's siblings
        return {"$ref": _ref(node["$ref"])}
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, str):
        kind = kind.lower()  # Huntress's "Object" and "String" (README)
        out["type"] = kind
    for key in ("enum", "format", "minimum", "maximum", "pattern", "minLength", "maxLength"):
        if key in node:
            out[key] = node[key]
    if "properties" in node:
        out["properties"] = {k: _schema(v, api) for k, v in node["properties"].items()}
        if api == "huntress" and node.get("required"):
            # Huntress requires fields it never describes (Organization's microsoft_365_*): named, so
            # allowed, of any type.
            out["required"] = list(node["required"])
            for field in node["required"]:
                out["properties"].setdefault(field, {})
        out["additionalProperties"] = False
    elif kind == "object" and api == "huntress" and isinstance(node.get("example"), dict):
        out.update(_from_example(node["example"]))  # README: checked against its example's keys
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _schema(node["additionalProperties"], api)
    if "items" in node:
        out["items"] = _schema(node["items"], api)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            out[key] = [_schema(n, api) for n in node[key]]
    if node.get("nullable") is True and api == "connectwise":  # README: nullable admits null
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _load(name: str) -> dict[str, Any]:
    return json.loads((SPECS / name).read_text(encoding="utf-8"))


@cache
def huntress() -> tuple[dict[str, Any], dict[str, Any]]:
    """Huntress's paths and its definitions, normalized."""
    raw = _load(HUNTRESS)
    defs = {name: _schema(node, "huntress") for name, node in raw["definitions"].items()}
    # README: `actual_usages` is typed string, its example is an object: a client accepts both.
    usages = raw["definitions"]["OrganizationWithActualProductUsages"]["properties"]["actual_usages"]
    defs["OrganizationWithActualProductUsages"]["properties"]["actual_usages"] = {
        "anyOf": [{"type": "string"}, _from_example(usages["example"])]
    }
    return raw["paths"], defs


@cache
def connectwise() -> tuple[dict[str, Any], dict[str, Any]]:
    """ConnectWise's paths (2026.4 GETs, 2025.16 addition writes) and every schema, normalized."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for name in (CW_GET, CW_WRITES, CW_GO_MODELS):
        raw = _load(name)
        for path, ops in raw.get("paths", {}).items():
            paths.setdefault(path, {}).update(ops)
        for key, node in raw["components"]["schemas"].items():
            normalized = _schema(node, "connectwise")
            assert schemas.get(key, normalized) == normalized, f"{name}: {key} differs from another file's"
            schemas[key] = normalized
    # README: PatchOperation.value is .NET `object` rendered as {type: object}: any JSON value.
    schemas["PatchOperation"]["properties"]["value"] = {}
    return paths, schemas


# --- requests → operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    template: str
    pattern: re.Pattern[str]
    literals: int


@cache
def _templates(api: str, method: str) -> tuple[Template, ...]:
    paths = huntress()[0] if api == "huntress" else connectwise()[0]
    found = [p for p, ops in paths.items() if method.lower() in ops]
    if api == "connectwise":
        found += [p for (m, p) in CW_EXTRA_OPERATIONS if m == method]
    return tuple(compile_template(p) for p in found)


def compile_template(template: str) -> Template:
    parts = template.strip("/").split("/")
    regex = "/".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return Template(template, re.compile(f"/{regex}"), sum(not p.startswith("{") for p in parts))


def operation(api: str, method: str, path: str) -> Operation | None:
    """The definition's operation for a request path (literal segments win over `{id}`s), or None."""
    matches = [t for t in _templates(api, method) if t.pattern.fullmatch(path)]
    if not matches:
        return None
    return Operation(api, method, max(matches, key=lambda t: t.literals).template)


# --- validation ------------------------------------------------------------------------------------


def _formats() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()  # date-time through rfc3339-validator

    @checker.checks("int32")
    def int32(value: object) -> bool:
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    @checker.checks("int64")
    def int64(value: object) -> bool:
        return not isinstance(value, int) or -(2**63) <= value < 2**63

    return checker


FORMATS = _formats()


class UndeclaredStatus(Exception):
    """The definition declares no such status for the operation."""


def response_schema(op: Operation, status: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The operation's answer schema for `status` and the definitions it refers to; None when the
    definition declares the status without a body schema. Raises UndeclaredStatus."""
    if op.api == "huntress":
        paths, defs = huntress()
        responses = paths[op.template][op.method.lower()]["responses"]
        if str(status) not in responses:
            raise UndeclaredStatus(f"declares {sorted(responses)}, not {status}")
        schema = responses[str(status)].get("schema")
        return None if schema is None else (_schema(schema, "huntress"), defs)
    paths, schemas = connectwise()
    if status >= 400:
        return {"$ref": _ref(CW_ERROR)}, schemas
    extra = CW_EXTRA_OPERATIONS.get((op.method, op.template))
    if extra is not None:
        if status != 200:
            raise UndeclaredStatus(f"declares ['200'], not {status}")
        return {"$ref": _ref(extra[0])}, schemas
    responses = paths[op.template][op.method.lower()]["responses"]
    if str(status) not in responses:
        raise UndeclaredStatus(f"declares {sorted(responses)}, not {status}")
    content = responses[str(status)].get("content") or {}
    bodies = [media["schema"] for media in content.values() if "schema" in media]
    return (_schema(bodies[0], "connectwise"), schemas) if bodies else None


def undeclared(op: Operation, status: int) -> Problem | None:
    """A problem when the definition declares no such status for the operation."""
    try:
        response_schema(op, status)
    except UndeclaredStatus as exc:
        return Problem(op, status, "$", f"status {status} undeclared: the definition {exc}")
    return None


def check(op: Operation, status: int, body: Any) -> list[Problem]:
    """Every departure of one answer body from the operation's definition (empty: it holds)."""
    try:
        found = response_schema(op, status)
    except UndeclaredStatus as exc:
        return [Problem(op, status, "$", f"status {status} undeclared: the definition {exc}")]
    if found is None:
        return [] if body in (None, b"", "") else [Problem(op, status, "$", "a body where none is declared")]
    schema, definitions = found
    validator = jsonschema.Draft7Validator({**schema, "definitions": definitions}, format_checker=FORMATS)
    return [
        Problem(op, status, _where(error), _message(error))
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    ]


def _where(error: jsonschema.ValidationError) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"undeclared field(s): {error.message}"
    return f"{error.validator}: {error.message[:300]}"


def operations_of(api: str) -> Iterator[Operation]:
    """Every operation a definition declares (for the tests' sanity checks)."""
    paths = huntress()[0] if api == "huntress" else connectwise()[0]
    for path, ops in paths.items():
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                yield Operation(api, method.upper(), path)
