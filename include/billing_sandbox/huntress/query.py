"""Query parameters (filters, sorting, limit), page tokens and paging of list answers."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ApiError

INVOICE_STATUSES = (
    "open",
    "paid",
    "failed",
    "partial_refund",
    "full_refund",
    "draft",
    "voided",
    "processing",
)
INVOICE_SORT_FIELDS = ("id", "created_at", "updated_at", "status")
ACCOUNT_SORT_FIELDS = ("id", "name", "subdomain", "created_at", "updated_at")
ACCOUNT_STATUSES = ("enabled", "disabled")
ORGANIZATION_SORT_FIELDS = ("id", "created_at", "updated_at", "name", "key")
SORT_DIRECTIONS = ("asc", "desc")
TRUE_WORDS, FALSE_WORDS = ("true", "1"), ("false", "0")


DEFAULT_LIMIT, MIN_LIMIT, MAX_LIMIT = 10, 1, 500


TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


# --- query parameters, paging ----------------------------------------------------------------------------


def _filter(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"{name} does not have a valid value (one of {', '.join(allowed)})")
    return value


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _filter(request, name, allowed)
    return default if value is None else value


def _boolean(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ApiError(400, f"{name} is invalid (true or false)")


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[+-]?\d{1,9}", value.strip()):
        raise ApiError(400, "limit is invalid")
    limit = int(value)
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be between {MIN_LIMIT} and {MAX_LIMIT}")
    return limit


def _encode_token(tag: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{tag}:{offset}".encode()).rstrip(b"=").decode()


def _decode_token(token: str, tag: str) -> int:
    """The offset a token of this list stands for; anything else is a 400."""
    bad = ApiError(400, "page_token is invalid")
    if not TOKEN_RE.match(token):
        raise bad
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        raise bad from None
    token_tag, _, offset = text.rpartition(":")
    if token_tag != tag or not offset.isdigit() or int(offset) < 1:
        raise bad
    return int(offset)


def _page(request: Request, items: list[dict[str, Any]], plural: str, tag: str) -> Response:
    limit = _limit(request)
    token = request.query_params.get("page_token") or None
    offset = _decode_token(token, tag) if token else 0
    pagination: dict[str, str] = {}
    if offset + limit < len(items):
        next_token = _encode_token(tag, offset + limit)
        pagination = {
            "next_page_url": _next_page_url(request, next_token, limit),
            "next_page_token": next_token,
        }
    return JSONResponse({plural: items[offset : offset + limit], "pagination": pagination})


def _next_page_url(request: Request, token: str, limit: int) -> str:
    others = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page_token", "limit")]
    query = urlencode([("page_token", token), ("limit", str(limit)), *others])
    return str(request.url.replace(query=query))


def _path_id(request: Request, name: str = "id") -> int:
    raw = request.path_params[name]
    if not re.fullmatch(r"\d{1,18}", raw):
        raise ApiError(400, f"{name} is invalid")
    return int(raw)


def _sorted(items: list[dict[str, Any]], field: str, direction: str) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (item[field], item["id"]), reverse=direction == "desc")
