"""HTTP answers: records, pages (navigable and forward-only Link headers), counts; path ids and bodies."""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from .errors import not_found
from .query import Collection, ListQuery, _params, _projection, parse_list_query, project, select
from .sandbox import ConnectWiseSandbox
from .values import _BASE_JSON, INT32_MAX, JSON_TYPE, _dumps
from .writes import ADDITION_RESOURCE, _field_error

# ---------------------------------------------------------------------------------------------
# HTTP


def _base(request: Request, sandbox: ConnectWiseSandbox) -> str:
    return f"{str(request.base_url).rstrip('/')}/{sandbox.codebase}apis/3.0"


def _json_text(
    text: str, request: Request, sandbox: ConnectWiseSandbox, status: int = 200, **headers: str
) -> Response:
    body = text.replace(_BASE_JSON, _base(request, sandbox))
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers or None)


def _record_response(
    request: Request,
    sandbox: ConnectWiseSandbox,
    coll: Collection,
    record: Mapping[str, Any],
    status: int = 200,
) -> Response:
    tree = _projection(_params(request).get("fields"), coll) if request.method == "GET" else None
    text = _dumps(project(record, tree)) if tree else coll.json(record["id"])
    return _json_text(text, request, sandbox, status)


def _link(request: Request, drop: Iterable[str], **updates: int) -> str:
    drop = {d.lower() for d in drop} | {k.lower() for k in updates}
    items = [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in drop]
    items += [(k, str(v)) for k, v in updates.items()]
    return str(request.url.replace(query=urlencode(items, quote_via=quote)))


def _faulted_next(template: str | None, real: str) -> str:
    """The `next_link` fault (sandbox.FAULT_OPTIONS): the template with the real link's parts."""
    if template is None:
        return real
    parts = urlsplit(real)
    fill = {
        "{scheme}": parts.scheme,
        "{host}": parts.hostname or "",
        "{port}": str(parts.port or ""),
        "{path}": parts.path,
        "{query}": parts.query,
    }
    return re.sub(r"\{(?:scheme|host|port|path|query)\}", lambda m: fill[m.group()], template)


def list_response(
    request: Request, sandbox: ConnectWiseSandbox, coll: Collection, ids: list[int] | None
) -> Response:
    """A page of `coll` (or of the `ids` subset, e.g. one agreement's additions)."""
    q = parse_list_query(request, coll)
    matched = _matching(coll, ids, q)
    if q.forward_only:
        start = bisect.bisect_right(matched, q.page_id) if q.page_id is not None else 0
        chunk = matched[start : start + q.page_size]
        links = []
        if chunk and start + q.page_size < len(matched):
            links.append((_link(request, ("page",), pageId=chunk[-1]), "next"))
    else:
        start = (q.page - 1) * q.page_size
        chunk = matched[start : start + q.page_size]
        links = _navigable_links(request, q, len(matched))
    if q.projection:
        text = _dumps([project(coll.by_id[i], q.projection) for i in chunk])
    else:
        text = "[" + ",".join(coll.json(i) for i in chunk) + "]"
    links = [(_faulted_next(sandbox.next_link, url) if rel == "next" else url, rel) for url, rel in links]
    headers = {"Link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)} if links else {}
    if q.forward_only:
        # Forward-only answers carry `Link` on every page, empty on the last: public clients (the
        # ConnectWiseManageAPI PowerShell module's Invoke-CWMAllResult) read a missing header as
        # "this endpoint does not support forward-only" and stop on an empty one (reference, Errors).
        headers.setdefault("Link", "")
    return _json_text(text, request, sandbox, **headers)


def _navigable_links(request: Request, q: ListQuery, total: int) -> list[tuple[str, str]]:
    last = max(1, math.ceil(total / q.page_size))
    links = []
    if q.page > 1:
        links += [
            (_link(request, (), page=1), "first"),
            (_link(request, (), page=min(q.page - 1, last)), "prev"),
        ]
    if q.page < last:
        links += [(_link(request, (), page=q.page + 1), "next"), (_link(request, (), page=last), "last")]
    return links


def count_response(request: Request, coll: Collection, ids: list[int] | None) -> Response:
    q = parse_list_query(request, coll)
    n = len(ids) if ids is not None and not q.predicate else len(_matching(coll, ids, q))
    return JSONResponse({"count": n}, media_type=JSON_TYPE)


def _matching(coll: Collection, ids: list[int] | None, q: ListQuery) -> list[int]:
    """The ids of `coll` (or of its `ids` subset) the query selects, in its order; whole-collection
    queries are cached."""
    if ids is None:
        return coll.cached(q.key, lambda: select(coll, coll.ids, q))
    return select(coll, ids, q)


def _path_id(request: Request, name: str, resource: str, what: str) -> int:
    raw = request.path_params[name]
    if not re.fullmatch(r"\d{1,10}", raw) or int(raw) > INT32_MAX:
        raise not_found(resource, f"{what} with id {raw[:40]} was not found.")
    return int(raw)


def _agreement_id(request: Request) -> int:
    return _path_id(request, "id", "agreement", "Agreement")


def _addition_ids(request: Request) -> tuple[int, int]:
    """The ids in a `.../agreements/{id}/additions/{additionId}` path."""
    return _agreement_id(request), _path_id(request, "additionId", ADDITION_RESOURCE, "Agreement addition")


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _field_error("body", "InvalidObject", "The body is not valid JSON.") from None
