"""Schemas of filterable fields and compilation of a parsed condition into a predicate."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .parse import And, Comparison, Node, parse
from .tokens import BOOL, DATETIME, KINDS, NUMBER, ORDER_OPS, STRING, ConditionError, Predicate


class Schema:
    """The filterable fields of one resource: path → kind, and the paths that are arrays.

    Field names match case-insensitively (ConnectWise accepts `Company/ID`); `objects` are the
    path prefixes that hold objects, so `company = 5` can be told apart from an unknown field.
    """

    def __init__(self, fields: Mapping[str, str], lists: Iterable[str] = ()) -> None:
        bad = {k: v for k, v in fields.items() if v not in KINDS}
        if bad:
            raise ValueError(f"unknown kinds: {bad}")
        self.fields = dict(fields)
        self.lists = frozenset(lists)
        self._lookup = {path.lower(): path for path in self.fields}
        self.objects = {
            "/".join(path.split("/")[:i]).lower()
            for path in self.fields
            for i in range(1, path.count("/") + 1)
        }

    def resolve(self, name: str) -> str | None:
        return self._lookup.get(name.lower())

    def is_object(self, name: str) -> bool:
        return name.lower() in self.objects

    def kind(self, path: str) -> str:
        return self.fields[path]


def compile_condition(text: str | None, schema: Schema) -> Predicate | None:
    """Parse and check `text`; None for an absent or blank condition (no filter)."""
    if text is None or not text.strip():
        return None
    return _compile(parse(text), schema)


def _compile(node: Node, schema: Schema) -> Predicate:
    if isinstance(node, Comparison):
        return _compile_comparison(node, schema)
    preds = [_compile(item, schema) for item in node.items]
    return _all(preds) if isinstance(node, And) else _any(preds)


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda r: a(r) and b(r)
    return lambda r: all(p(r) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda r: a(r) or b(r)
    return lambda r: any(p(r) for p in preds)


def _compile_comparison(node: Comparison, schema: Schema) -> Predicate:
    path = schema.resolve(node.field)
    if path is None:
        if schema.is_object(node.field):
            raise ConditionError(
                f"Field '{node.field}' is an object; compare one of its fields (e.g. {node.field}/id)",
                node.pos,
            )
        raise ConditionError(f"Unknown field '{node.field}'", node.pos)
    kind = schema.kind(path)
    test = _value_test(node, path, kind)
    getter, multi = _getter(path, schema.lists)
    if multi:
        # An empty array has no element to match; it only satisfies `= null`.
        when_empty = node.op == "=" and node.value is None
        return lambda r: any(test(v) for v in vs) if (vs := getter(r)) else when_empty
    return lambda r: test(getter(r))


def _getter(path: str, lists: frozenset[str]) -> tuple[Callable[[Mapping[str, Any]], Any], bool]:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    if not any(p in lists for p in prefixes):
        return _plain_getter(parts), False
    list_at = {i for i, p in enumerate(prefixes) if p in lists}

    def multi(record: Mapping[str, Any]) -> list[Any]:
        current: list[Any] = [record]
        for i, key in enumerate(parts):
            nxt: list[Any] = []
            for item in current:
                value = item.get(key) if isinstance(item, Mapping) else None
                if i in list_at and isinstance(value, list):
                    nxt.extend(value)
                elif value is not None or i == len(parts) - 1:
                    nxt.append(value)
            current = nxt
        return current

    return multi, True


def _plain_getter(parts: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    if len(parts) == 1:
        key = parts[0]
        return lambda r: r.get(key)
    if len(parts) == 2:
        a, b = parts

        def two(r: Mapping[str, Any]) -> Any:
            v = r.get(a)
            return v.get(b) if isinstance(v, Mapping) else None

        return two

    def deep(r: Mapping[str, Any]) -> Any:
        v: Any = r
        for key in parts:
            if not isinstance(v, Mapping):
                return None
            v = v.get(key)
        return v

    return deep


def _value_test(node: Comparison, path: str, kind: str) -> Callable[[Any], bool]:
    op = node.op
    if op in ("in", "not in"):
        values = frozenset(
            _coerce(v, k, node, path, kind) for v, k in zip(node.value, node.value_kind, strict=True)
        )
        if kind == STRING:
            return (
                (lambda v: isinstance(v, str) and v.casefold() in values)
                if op == "in"
                else (lambda v: isinstance(v, str) and v.casefold() not in values)
            )
        return (
            (lambda v: v is not None and v in values)
            if op == "in"
            else (lambda v: v is not None and v not in values)
        )
    if node.value is None:
        if op not in ("=", "!="):
            raise ConditionError(f"null can only be compared with = or !=, not '{op}'", node.value_pos)
        return (lambda v: v is None) if op == "=" else (lambda v: v is not None)
    if op in ("like", "not like", "contains", "not contains"):
        return _text_test(node, path, kind)
    if kind == BOOL and op in ORDER_OPS:
        raise ConditionError(f"Operator '{op}' does not apply to true/false field '{path}'", node.pos)
    value = _coerce(node.value, node.value_kind, node, path, kind)
    return _ordered_test(op, value, kind == STRING)


def _ordered_test(op: str, value: Any, fold: bool) -> Callable[[Any], bool]:
    # Only same-type record values compare; anything else (null included) is "unknown" → false.
    typ = str if fold else type(value) if isinstance(value, bool | str) else (int, float)
    norm = (lambda v: v.casefold()) if fold else (lambda v: v)
    if op == "=":
        return lambda v: isinstance(v, typ) and norm(v) == value
    if op == "!=":
        return lambda v: isinstance(v, typ) and norm(v) != value
    if op == "<":
        return lambda v: isinstance(v, typ) and norm(v) < value
    if op == "<=":
        return lambda v: isinstance(v, typ) and norm(v) <= value
    if op == ">":
        return lambda v: isinstance(v, typ) and norm(v) > value
    return lambda v: isinstance(v, typ) and norm(v) >= value


def _text_test(node: Comparison, path: str, kind: str) -> Callable[[Any], bool]:
    word = node.op.removeprefix("not ")
    if kind != STRING:
        raise ConditionError(
            f"Operator '{word}' applies to text fields only; '{path}' is {_article(kind)}", node.pos
        )
    if node.value_kind != "string":
        raise ConditionError(f"Operator '{word}' needs a quoted text value", node.value_pos)
    negate = node.op.startswith("not ")
    if word == "contains":
        needle = node.value.casefold()
        match: Callable[[str], bool] = lambda v: needle in v.casefold()  # noqa: E731
    else:
        # `%` is the only wildcard: SQL's `_` and `[...]` would make identifiers like
        # HUNTRESS_EDR match loosely, and the sync never means that.
        regex = re.compile(
            ".*".join(re.escape(part) for part in node.value.split("%")), re.IGNORECASE | re.DOTALL
        )
        match = lambda v: regex.fullmatch(v) is not None  # noqa: E731
    if negate:
        return lambda v: isinstance(v, str) and not match(v)
    return lambda v: isinstance(v, str) and match(v)


def _coerce(value: Any, value_kind: str, node: Comparison, path: str, kind: str) -> Any:
    """The condition value in the form record values of `kind` compare against."""
    if value_kind == "null":
        raise ConditionError(f"null is not allowed in the list after '{node.op}'", node.value_pos)
    if kind == NUMBER:
        if value_kind == "number":
            return value
        if value_kind == "string":
            # SQL Server converts numeric text implicitly; clients do send `id = "250"`.
            try:
                return int(value) if re.fullmatch(r"\s*-?\d+\s*", value) else float(value)
            except ValueError:
                pass
        raise ConditionError(
            f"Field '{path}' is a number; {_describe(value, value_kind)} is not", node.value_pos
        )
    if kind == STRING:
        if value_kind == "string":
            return value.casefold()
        raise ConditionError(
            f"Field '{path}' is text; {_describe(value, value_kind)} must be in quotes", node.value_pos
        )
    if kind == BOOL:
        if value_kind == "bool":
            return value
        raise ConditionError(
            f"Field '{path}' is true/false; {_describe(value, value_kind)} is not", node.value_pos
        )
    if value_kind == "datetime":
        return value
    raise ConditionError(
        f"Field '{path}' is a date; write the value in square brackets, e.g. [2026-01-01T00:00:00Z]",
        node.value_pos,
    )


def _describe(value: Any, value_kind: str) -> str:
    if value_kind == "string":
        return f'"{value}"'
    if value_kind == "bool":
        return "true" if value else "false"
    if value_kind == "datetime":
        return f"[{value}]"
    return str(value)


def _article(kind: str) -> str:
    return {NUMBER: "a number", BOOL: "a true/false field", DATETIME: "a date"}.get(kind, kind)
