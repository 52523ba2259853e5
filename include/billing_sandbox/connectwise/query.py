"""Collections of records and list queries: conditions, orderBy, fields, page / pageSize / pageId."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import Request

from billing_sandbox.conditions import (
    STRING,
    ConditionError,
    Schema,
    compile_condition,
)

from .errors import invalid
from .schemas import SCHEMAS
from .values import INT32_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, _dumps

# ---------------------------------------------------------------------------------------------
# Collections


class Collection:
    """One resource's records by id (ids kept sorted), with per-record JSON and query caches."""

    def __init__(self, resource: str, schema: Schema, records: Iterable[dict[str, Any]]) -> None:
        self.resource = resource
        self.schema = schema
        self.by_id: dict[int, dict[str, Any]] = {r["id"]: r for r in records}
        self.ids = sorted(self.by_id)
        self.version = 0
        self._json: dict[int, str] = {}
        self._queries: OrderedDict[tuple[Any, ...], tuple[int, list[int]]] = OrderedDict()
        self.paths = _known_paths(schema, next(iter(self.by_id.values()), None))

    def json(self, rid: int) -> str:
        text = self._json.get(rid)
        if text is None:
            text = self._json[rid] = _dumps(self.by_id[rid])
        return text

    def changed(self, rid: int) -> None:
        self.version += 1
        self._json.pop(rid, None)

    def add(self, record: dict[str, Any]) -> None:
        self.by_id[record["id"]] = record
        bisect.insort(self.ids, record["id"])
        self.changed(record["id"])

    def remove(self, rid: int) -> None:
        del self.by_id[rid]
        del self.ids[bisect.bisect_left(self.ids, rid)]
        self.changed(rid)

    def cached(self, key: tuple[Any, ...], compute: Callable[[], list[int]]) -> list[int]:
        hit = self._queries.get(key)
        if hit is not None and hit[0] == self.version:
            self._queries.move_to_end(key)
            return hit[1]
        ids = compute()
        self._queries[key] = (self.version, ids)
        if len(self._queries) > 32:
            self._queries.popitem(last=False)
        return ids


def _known_paths(schema: Schema, sample: Mapping[str, Any] | None) -> dict[str, str]:
    """lower-case path → canonical path, for `fields`: schema leaves, their parents, sample keys."""
    paths: set[str] = set()
    for leaf in schema.fields:
        parts = leaf.split("/")
        paths.update("/".join(parts[: i + 1]) for i in range(len(parts)))

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, list):
            for item in value[:1]:
                walk(item, prefix)
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                path = f"{prefix}/{key}" if prefix else key
                paths.add(path)
                walk(sub, path)

    walk(sample, "")
    return {p.lower(): p for p in paths}


# ---------------------------------------------------------------------------------------------
# List queries: conditions, orderBy, fields, page / pageSize / pageId


@dataclass
class ListQuery:
    predicate: Callable[[Mapping[str, Any]], bool] | None
    order: list[tuple[str, bool]]  # (canonical path, descending)
    page: int
    page_size: int
    forward_only: bool
    page_id: int | None
    projection: dict[str, Any] | None
    key: tuple[Any, ...]


def _params(request: Request) -> dict[str, str]:
    # ASP.NET binds query parameters case-insensitively: `PageSize` works like `pageSize`.
    return {k.lower(): v for k, v in request.query_params.multi_items()}


def _int_param(params: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name.lower())
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise invalid(name, name, "InvalidField", f"The value '{shown}' is not valid for {name}.") from None
    if not low <= value <= high:
        raise invalid(name, name, "OutOfRange", f"The field {name} must be between {low} and {high}.")
    return value


@lru_cache(maxsize=256)
def _compiled(text: str, schema_name: str) -> Callable[[Mapping[str, Any]], bool] | None:
    return compile_condition(text, SCHEMAS[schema_name])


def _condition(
    params: Mapping[str, str], name: str, schema_name: str
) -> Callable[[Mapping[str, Any]], bool] | None:
    text = params.get(name.lower())
    if text is None:
        return None
    try:
        return _compiled(text, schema_name)
    except ConditionError as exc:
        raise invalid(name, name, "InvalidCondition", str(exc)) from None


def parse_list_query(request: Request, coll: Collection) -> ListQuery:
    params = _params(request)
    schema_name = coll.resource
    predicate = _condition(params, "conditions", schema_name)
    child = _condition(params, "childConditions", schema_name)
    if params.get("customfieldconditions", "").strip():
        raise invalid(
            "customFieldConditions",
            "customFieldConditions",
            "InvalidCondition",
            "No custom fields are defined on this sandbox's records.",
        )
    if predicate and child:
        first, second = predicate, child
        predicate = lambda r: first(r) and second(r)  # noqa: E731
    elif child:
        predicate = child
    forward = request.headers.get("pagination-type", "").strip().lower() == "forward-only"
    order = _order_by(params.get("orderby"), coll.schema)
    if forward and order and order != [("id", False)]:
        raise invalid(
            "orderBy",
            "orderBy",
            "InvalidField",
            "Forward-only pagination always orders by id asc; drop orderBy.",
        )
    page_id = _int_param(params, "pageId", None, 0, INT32_MAX)
    if page_id is not None and not forward:
        raise invalid(
            "pageId",
            "pageId",
            "InvalidField",
            "pageId needs the request header pagination-type: forward-only.",
        )
    return ListQuery(
        predicate=predicate,
        order=[] if forward else order,
        page=_int_param(params, "page", 1, 1, INT32_MAX) or 1,
        page_size=_int_param(params, "pageSize", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX) or PAGE_SIZE_DEFAULT,
        forward_only=forward,
        page_id=page_id,
        projection=_projection(params.get("fields"), coll),
        key=(
            params.get("conditions"),
            params.get("childconditions"),
            params.get("orderby") if not forward else None,
        ),
    )


def _order_by(text: str | None, schema: Schema) -> list[tuple[str, bool]]:
    if text is None or not text.strip():
        return []
    order = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise invalid(
                "orderBy", "orderBy", "InvalidField", f"Cannot read '{part.strip()}': use 'field asc|desc'."
            )
        path = schema.resolve(words[0])
        if path is None:
            raise invalid("orderBy", "orderBy", "InvalidField", f"Unknown field '{words[0]}' in orderBy.")
        if any(path.startswith(f"{p}/") for p in schema.lists):
            raise invalid(
                "orderBy", "orderBy", "InvalidField", f"Cannot order by '{path}': it is inside a list."
            )
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise invalid(
                "orderBy", "orderBy", "InvalidField", f"Unknown direction '{words[1]}': use asc or desc."
            )
        order.append((path, direction == "desc"))
    return order


def _projection(text: str | None, coll: Collection) -> dict[str, Any] | None:
    """`fields=id,company/id` → {"id": None, "company": {"id": None}} (None: the whole value).

    A name the resource does not have is ignored, not a 400: ConnectWise answered `fields=*` with
    records holding only `id` (PSConnectWise issue #48, Manage 2018.4), so unknown names are skipped
    and a `fields` that names nothing known gives `id` alone, as observed there."""
    if text is None or not text.strip():
        return None
    tree: dict[str, Any] = {}
    for raw in text.split(","):
        name = raw.strip().strip("/")
        path = coll.paths.get(name.lower()) if name else None
        if path is None:
            continue
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            if part in node and node[part] is None:
                break  # the whole parent is already asked for
            node = node.setdefault(part, {})
        else:
            node[parts[-1]] = None
    return tree or {"id": None}


def project(value: Any, tree: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [project(item, tree) for item in value]
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key, sub in tree.items():
        if key in value:
            out[key] = value[key] if sub is None else project(value[key], sub)
    return out


def _sort_key(path: str, schema: Schema) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    parts = path.split("/")
    fold = schema.kind(path) == STRING

    def key(record: Mapping[str, Any]) -> tuple[bool, Any]:
        value: Any = record
        for part in parts:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return (False, 0)  # SQL Server: nulls first ascending, last descending
        if fold:
            return (True, str(value).casefold())
        return (True, value if isinstance(value, int | float | str) else str(value))

    return key


def select(coll: Collection, ids: list[int], q: ListQuery) -> list[int]:
    """The ids matching the query, in its order (ids arrive sorted by id: the tie-breaker)."""
    records = coll.by_id
    out = [i for i in ids if q.predicate(records[i])] if q.predicate else list(ids)
    for path, desc in reversed(q.order):
        key = _sort_key(path, coll.schema)
        try:
            out.sort(key=lambda i, k=key: k(records[i]), reverse=desc)
        except TypeError:  # mixed types in scenario data: fall back to text order
            out.sort(key=lambda i, k=key: str(k(records[i])), reverse=desc)
    return out
