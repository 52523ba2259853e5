"""Who may use the review pages, and proof that a form was posted from one of them.

Authentication and authorization are Airflow's own: the dependencies of the API server's
``airflow.api_fastapi.core_api.security`` (``get_user`` reads the ``Authorization: Bearer`` header
or the UI's ``_token`` cookie; ``requires_access_dag`` asks the configured auth manager). A plugin
app mounted in the API server inherits none of the core API's dependencies, so every route here
declares them itself. Billing data is treated as part of the billing DAG's runs:

- reading a page needs GET on the runs of ``huntress_connectwise_billing_sync``;
- acting (dismiss, resolve, reopen, map) needs PUT on them (SimpleAuthManager: role USER and up).

CSRF: the UI authenticates by cookie, so a form posted from another site would carry it. Every POST
must carry a token that is an HMAC (key derived from ``[api] secret_key``) of the user id and a
random per-browser nonce kept in an HttpOnly, SameSite=Strict cookie scoped to this app. A page of
another site can read neither. On top of that, a browser's ``Sec-Fetch-Site`` must say
``same-origin`` and an ``Origin`` header, when sent, must name this host.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from starlette.responses import Response

from billing_sync.names import DAG_ID

CSRF_COOKIE = "billing_review_csrf"
CSRF_FIELD = "csrf_token"
_NONCE_BYTES = 32


@dataclass(frozen=True)
class Reviewer:
    """The signed-in Airflow user, as recorded in resolved_by / created_by."""

    name: str
    user_id: str


@dataclass(frozen=True)
class ReviewAuth:
    """FastAPI dependencies returning the Reviewer: `reader` for pages, `editor` for actions, and
    the login page URL for a given "next" URL (None: anonymous browsers get the plain 401)."""

    reader: Callable[..., Any]
    editor: Callable[..., Any]
    login_url: Callable[[str], str] | None = None


def airflow_auth() -> ReviewAuth:
    """The dependencies built on Airflow's API-server security (imported here: API server only)."""
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

    can_read = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID)
    can_edit = requires_access_dag("PUT", DagAccessEntity.RUN, param_dag_id=DAG_ID)

    # FastAPI caches a dependency per request, so get_user resolves the token once for both.
    def reader(
        user: Annotated[BaseUser, Depends(get_user)], _: Annotated[None, Depends(can_read)]
    ) -> Reviewer:
        return _reviewer(user)

    def editor(
        user: Annotated[BaseUser, Depends(get_user)], _: Annotated[None, Depends(can_edit)]
    ) -> Reviewer:
        return _reviewer(user)

    return ReviewAuth(reader=reader, editor=editor, login_url=_airflow_login_url)


def _airflow_login_url(next_url: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def _reviewer(user: Any) -> Reviewer:
    user_id = str(user.get_id())
    return Reviewer(name=str(user.get_name() or user_id), user_id=user_id)


def airflow_secret() -> bytes:
    """``[api] secret_key``: shared by every API server worker and instance (Airflow requires it)."""
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback="") or conf.get("api_auth", "jwt_secret", fallback="")
    if not secret:
        raise RuntimeError("billing review needs [api] secret_key to sign its form tokens")
    return secret.encode()


class Csrf:
    """Signed double-submit tokens bound to the user and a per-browser nonce cookie."""

    def __init__(self, secret: bytes) -> None:
        # A key of our own, so a token can never be mistaken for anything else signed with secret_key.
        self._key = hashlib.sha256(b"billing-review-csrf\0" + secret).digest()

    def nonce(self, request: Request) -> tuple[str, bool]:
        """(the browser's nonce, whether it is new and must be set as a cookie)."""
        current = request.cookies.get(CSRF_COOKIE, "")
        if _looks_like_nonce(current):
            return current, False
        return secrets.token_urlsafe(_NONCE_BYTES), True

    def token(self, nonce: str, reviewer: Reviewer) -> str:
        message = f"{reviewer.user_id}\0{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def set_cookie(self, response: Response, request: Request, nonce: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            path=_cookie_path(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def check(self, request: Request, submitted: str | None, reviewer: Reviewer) -> None:
        """Refuse (403) a POST that did not come from one of our pages in this browser."""
        _check_fetch_metadata(request)
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not _looks_like_nonce(nonce) or not submitted:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Missing form token: reload the page and retry")
        if not hmac.compare_digest(self.token(nonce, reviewer), submitted):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid form token: reload the page and retry")


def _looks_like_nonce(value: str) -> bool:
    return 32 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)


def _check_fetch_metadata(request: Request) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-site form submission refused")
    origin = request.headers.get("origin")
    # Compare hosts only: behind a TLS-terminating proxy the scheme seen here may differ.
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-origin form submission refused")


def _cookie_path(request: Request) -> str:
    return request.scope.get("root_path") or "/"
