"""Who may use the review pages, and proof that a form was posted from one of them.

Authentication and authorization are Airflow's own: the dependencies of the API server's
``airflow.api_fastapi.core_api.security`` (``get_user`` reads the ``Authorization: Bearer`` header
or the UI's ``_token`` cookie; ``requires_access_dag`` asks the configured auth manager). A plugin
app mounted in the API server inherits none of the core API's dependencies, so every route here
declares them itself. Billing data is treated as part of the billing DAG's runs, the DAG of the page's
tenant (`tenancy`: ``huntress_connectwise_billing_sync``, or ``…__<tenant>`` under a tenants file):

what a user may do is one power per area (`powers`: read, quarantine, mappings, approvals,
overrides, settings, apply), granted to roles in the tenant's settings, else by the earlier rule
(reading: GET on the runs of the tenant's DAG; quarantine and apply: PUT on them, SimpleAuthManager's
USER and up; mappings, approvals, overrides: PUT on the runs and either a role of ``mapping_roles``
or PUT on the DAG itself and on the tenant's settings Variable, OP and ADMIN; settings: PUT on the
DAG and the Variable). `powers.decide` is the rule; the Variable is read once per request.

CSRF: the UI authenticates by cookie, so a form posted from another site would carry it. Every POST
must carry a token that is an HMAC (key derived from ``[api] secret_key``) of the user id and a
random per-browser nonce kept in an HttpOnly, SameSite=Strict cookie scoped to this app. A page of
another site can read neither. On top of that, a browser's ``Sec-Fetch-Site`` must say
``same-origin`` and an ``Origin`` header, when sent, must name this host.
"""

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from starlette.responses import Response

from billing_sync.config import POWER_AREAS, AreaName, Settings
from billing_sync.review import tenancy
from billing_sync.review.powers import EVERY_AREA, LABELS, Held, decide
from billing_sync.review.tenancy import PageTenant, current_tenant

CSRF_COOKIE = "billing_review_csrf"
CSRF_FIELD = "csrf_token"
_NONCE_BYTES = 32
_TOKEN_CHARS = frozenset(string.hexdigits.lower())  # a token is a SHA-256 HMAC in lowercase hex
_TOKEN_LENGTH = 64
_NONCE_CHARS = frozenset(string.ascii_letters + string.digits + "-_")  # token_urlsafe's alphabet


@dataclass(frozen=True)
class Reviewer:
    """The signed-in Airflow user, as recorded in resolved_by / created_by, and the areas they hold
    on the page's tenant (`powers`: `may("overrides")`). The areas only decide what a page shows;
    every POST route checks its area itself (`deps.requires`). `airflow_auth` sets them; they
    default to every area for stand-ins that do not tell users apart."""

    name: str
    user_id: str
    powers: frozenset[AreaName] = EVERY_AREA

    def may(self, area: AreaName) -> bool:
        return area in self.powers

    def held_labels(self) -> list[str]:
        """The areas held beyond reading, as the pages name them (in `powers`' order)."""
        return [LABELS[a] for a in POWER_AREAS if a != "read" and a in self.powers]

    def missing_labels(self) -> list[str]:
        return [LABELS[a] for a in POWER_AREAS if a != "read" and a not in self.powers]

    # The two flags the pages knew before the areas, kept for templates that still say them.
    @property
    def may_act(self) -> bool:
        return self.may("quarantine")

    @property
    def may_map(self) -> bool:
        return self.may("mappings")


@dataclass(frozen=True)
class ReviewAuth:
    """FastAPI dependencies returning the Reviewer: `reader` for pages, `editor` for quarantine
    actions, `mapper` for changing organization mappings (None: the same as `editor`, for stand-ins
    that do not tell the two apart), and the login page URL for a given "next" URL (None: anonymous
    browsers get the plain 401). `holders`: per area, the dependency of a user who holds it
    (`airflow_auth` gives every area; an area a stand-in leaves out is `deps.stand_in`'s)."""

    reader: Callable[..., Any]
    editor: Callable[..., Any]
    login_url: Callable[[str], str] | None = None
    mapper: Callable[..., Any] | None = None
    holders: Mapping[AreaName, Callable[..., Any]] | None = None


@dataclass(frozen=True)
class AirflowRights:
    """What the auth manager allows a user on one tenant's DAG and settings: the one place the
    pages ask it. `manager` returns the auth manager and `team_of` a DAG's team, as Airflow's own
    `requires_access_dag` asks them (`airflow_rights()`); every question names the tenant's DAG, so
    an auth manager that allows a user one tenant's DAG only allows them that tenant's pages."""

    manager: Callable[[], Any]
    team_of: Callable[[str], str | None]

    def may_dag(self, user: Any, method: Literal["GET", "PUT"], dag_id: str, on_runs: bool = True) -> bool:
        """What `requires_access_dag(method, RUN or the DAG itself, param_dag_id=dag_id)` asks."""
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        details = DagDetails(id=dag_id, team_name=self.team_of(dag_id))
        entity = DagAccessEntity.RUN if on_runs else None
        answer = self.manager().is_authorized_dag(
            method=method, access_entity=entity, details=details, user=user
        )
        return bool(answer)

    def may_edit_config(self, user: Any, variable: str) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import VariableDetails

        details = VariableDetails(key=variable)
        return bool(self.manager().is_authorized_variable(method="PUT", details=details, user=user))

    def held(self, user: Any, tenant: PageTenant) -> Held:
        """The areas `user` holds on `tenant` (`powers.decide`), its Variable read now."""
        variable = tenant.variable
        return decide(
            self,
            user,
            role_names(user),
            dag_id=tenant.dag_id,
            variable=variable,
            settings=lambda: tenant_settings(variable) if variable else None,
        )


def airflow_rights() -> AirflowRights:
    """The API server's auth manager, and a DAG's team as `requires_access_dag` looks it up."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.models.dag import DagModel

    return AirflowRights(manager=get_auth_manager, team_of=lambda dag_id: DagModel.get_team_name(dag_id))


def airflow_auth(rights: AirflowRights | None = None) -> ReviewAuth:
    """The dependencies built on Airflow's API-server security (imported here: API server only),
    every right asked of `rights` (default: `airflow_rights()`) about the page's tenant."""
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
    from airflow.api_fastapi.core_api.security import get_user

    ask = rights or airflow_rights()
    TenantDep = Annotated[PageTenant, Depends(current_tenant)]
    # FastAPI caches a dependency per request: get_user resolves the token once, and the user comes
    # before the tenant, so an anonymous request is a 401 whatever tenant it names.
    UserDep = Annotated[BaseUser, Depends(get_user)]

    def remember_readable(request: Request, user: Any, tenant: PageTenant) -> None:
        """Before any refusal: the 403 page offers the other tenants this user may read."""
        ids = tuple(c for c in tenant.choices if ask.may_dag(user, "GET", c.dag_id))
        tenancy.remember_readable(request, ids)

    def holder(area: AreaName) -> Callable[..., Reviewer]:
        def holds(request: Request, user: UserDep, tenant: TenantDep) -> Reviewer:
            remember_readable(request, user, tenant)
            # Once per request: the page's reader and an action's area ask the same Variable.
            held = getattr(request.state, _HELD, None)
            if not isinstance(held, Held):
                held = ask.held(user, tenant)
                setattr(request.state, _HELD, held)
            if area not in held.areas:
                raise HTTPException(status.HTTP_403_FORBIDDEN, held.refusal(area, tenant.id))
            return _reviewer(user, held.areas)

        holds.__name__ = f"holds_{area}"
        return holds

    holders = {area: holder(area) for area in EVERY_AREA}
    return ReviewAuth(
        reader=holders["read"],
        editor=holders["quarantine"],
        login_url=_airflow_login_url,
        mapper=holders["mappings"],
        holders=holders,
    )


_HELD = "billing_held_powers"


def tenant_settings(variable: str) -> Settings | None:
    """The tenant's settings, read through Airflow's backends (secrets backend, environment,
    metadata database) on each request, so a change applies at once; None when the Variable does
    not parse (every power but reading then fails closed)."""
    from airflow.models.variable import Variable

    from billing_sync.config import load_settings
    from billing_sync.errors import ConfigError

    try:
        return load_settings(Variable.get(variable, default_var=None))
    except ConfigError:  # the message quotes the value: the resolve task's log says it, not a page
        return None


def role_names(user: Any) -> set[str]:
    """The user's role names, case-folded: SimpleAuthManager's one ``role``; FAB's ``roles``
    (objects with a ``name``); any auth manager whose users carry role names as text. A user object
    with neither has no roles, so a configured ``mapping_roles`` refuses it."""
    found: list[Any] = [getattr(user, "role", None), *(getattr(user, "roles", None) or ())]
    names = (getattr(r, "name", r) for r in found)
    return {n.casefold() for n in names if isinstance(n, str) and n}


def _airflow_login_url(next_url: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def _reviewer(user: Any, powers: frozenset[AreaName]) -> Reviewer:
    """The Reviewer of an Airflow user holding `powers` on the page's tenant."""
    user_id = str(user.get_id())
    return Reviewer(name=str(user.get_name() or user_id), user_id=user_id, powers=powers)


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
        """Refuse (403) a POST that did not come from one of our pages in this browser; a token
        that cannot be one of ours (wrong length, not lowercase hex, non-ASCII) is a 400."""
        _check_fetch_metadata(request)
        if submitted and not _looks_like_token(submitted):
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "Malformed form token: reload the page and retry"
            )
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not _looks_like_nonce(nonce) or not submitted:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Missing form token: reload the page and retry")
        # Both ASCII by now; compared as bytes (compare_digest raises TypeError on non-ASCII str).
        if not hmac.compare_digest(self.token(nonce, reviewer).encode(), submitted.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Invalid form token: reload the page and retry")


def _looks_like_token(value: str) -> bool:
    return len(value) == _TOKEN_LENGTH and set(value) <= _TOKEN_CHARS


def _looks_like_nonce(value: str) -> bool:
    return 32 <= len(value) <= 64 and set(value) <= _NONCE_CHARS


def _check_fetch_metadata(request: Request) -> None:
    """Two independent checks; either alone refuses a cross-site POST."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-site form submission refused")
    origin = request.headers.get("origin")
    # Compare hosts only: behind a TLS-terminating proxy the scheme seen here may differ.
    if origin is not None and _origin_host(origin) != request.headers.get("host", ""):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-origin form submission refused")


def _origin_host(origin: str) -> str | None:
    try:
        return urlsplit(origin).netloc
    except ValueError:  # e.g. "http://[": no host we could be
        return None


def _cookie_path(request: Request) -> str:
    return request.scope.get("root_path") or "/"
