"""Who may use the review pages, and proof that a form was posted from one of them.

Authentication and authorization are Airflow's own: the dependencies of the API server's
``airflow.api_fastapi.core_api.security`` (``get_user`` reads the ``Authorization: Bearer`` header
or the UI's ``_token`` cookie; ``requires_access_dag`` asks the configured auth manager). A plugin
app mounted in the API server inherits none of the core API's dependencies, so every route here
declares them itself. Billing data is treated as part of the billing DAG's runs, the DAG of the page's
tenant (`tenancy`: ``huntress_connectwise_billing_sync``, or ``…__<tenant>`` under a tenants file):

- reading a page needs GET on the runs of the tenant's DAG;
- acting on the quarantine (dismiss, resolve, reopen) needs PUT on them (SimpleAuthManager: role
  USER and up);
- changing who is billed (map, change or remove an organization mapping) needs PUT on the runs AND
  either PUT on the DAG itself and on the tenant's settings Variable (``huntress_cw_billing_config``
  in the single-tenant form: who may edit the DAG and change its settings, SimpleAuthManager's OP
  and ADMIN, not USER), or, when that Variable's ``mapping_roles`` names roles, membership in one.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from starlette.responses import Response

from billing_sync.names import VARIABLE_KEY
from billing_sync.review import tenancy
from billing_sync.review.tenancy import PageTenant, current_tenant, require_active

CSRF_COOKIE = "billing_review_csrf"
CSRF_FIELD = "csrf_token"
_NONCE_BYTES = 32
_TOKEN_CHARS = frozenset(string.hexdigits.lower())  # a token is a SHA-256 HMAC in lowercase hex
_TOKEN_LENGTH = 64
_NONCE_CHARS = frozenset(string.ascii_letters + string.digits + "-_")  # token_urlsafe's alphabet


@dataclass(frozen=True)
class Reviewer:
    """The signed-in Airflow user, as recorded in resolved_by / created_by, and which actions the
    pages offer them: `may_act` (the quarantine actions and the re-run button: PUT on the DAG's
    runs) and `may_map` (mappings, overrides, approvals: the `mapper` rule). The flags only decide
    what a page shows; every POST route checks the permission itself. `airflow_auth`'s reader sets
    both; they default to True for stand-ins that do not tell users apart."""

    name: str
    user_id: str
    may_act: bool = True
    may_map: bool = True


@dataclass(frozen=True)
class ReviewAuth:
    """FastAPI dependencies returning the Reviewer: `reader` for pages, `editor` for quarantine
    actions, `mapper` for changing organization mappings (None: the same as `editor`, for stand-ins
    that do not tell the two apart), and the login page URL for a given "next" URL (None: anonymous
    browsers get the plain 401)."""

    reader: Callable[..., Any]
    editor: Callable[..., Any]
    login_url: Callable[[str], str] | None = None
    mapper: Callable[..., Any] | None = None


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

    def may_read(self, user: Any, tenant: PageTenant) -> bool:
        return self.may_dag(user, "GET", tenant.dag_id)

    def may_run(self, user: Any, tenant: PageTenant) -> bool:
        """PUT on the tenant DAG's runs: decide quarantine rows, re-run."""
        return self.may_dag(user, "PUT", tenant.dag_id)

    def may_edit_config(self, user: Any, variable: str) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import VariableDetails

        details = VariableDetails(key=variable)
        return bool(self.manager().is_authorized_variable(method="PUT", details=details, user=user))

    def may_map(self, user: Any, tenant: PageTenant) -> bool:
        """`require_mapping` as a yes or no (asked after `may_run`)."""
        try:
            self.require_mapping(user, tenant)
        except HTTPException:  # a broken Variable, a former tenant: no mapping change either
            return False
        return True

    def require_mapping(self, user: Any, tenant: PageTenant) -> None:
        """Changing who is billed: a role of the tenant's `mapping_roles`, else edit rights on its DAG
        and its settings Variable (403 otherwise)."""
        variable = _settings_of(tenant)
        roles = _mapping_roles(variable)  # read per request: a changed Variable applies at once
        if roles:
            if not may_map_by_role(roles, role_names(user)):
                raise HTTPException(status.HTTP_403_FORBIDDEN, MAPPING_ROLE_REFUSED)
            return
        _require(self.may_dag(user, "PUT", tenant.dag_id, on_runs=False))
        # Editing the DAG is no more than acting on its runs under SimpleAuthManager and FAB; who
        # pays is billing configuration, so it also takes the right to change the settings.
        if not self.may_edit_config(user, variable):
            raise HTTPException(status.HTTP_403_FORBIDDEN, mapping_needs_config_rights(variable))


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

    def reader(request: Request, user: UserDep, tenant: TenantDep) -> Reviewer:
        remember_readable(request, user, tenant)
        _require(ask.may_read(user, tenant))
        # What the pages offer: the same rules as `editor` and `mapper`, asked without raising.
        may_act = tenant.active and ask.may_run(user, tenant)
        return _reviewer(user, may_act=may_act, may_map=may_act and ask.may_map(user, tenant))

    def editor(request: Request, user: UserDep, tenant: TenantDep) -> Reviewer:
        remember_readable(request, user, tenant)
        _require(ask.may_run(user, tenant))
        return _reviewer(user)

    def mapper(request: Request, user: UserDep, tenant: TenantDep) -> Reviewer:
        remember_readable(request, user, tenant)
        _require(ask.may_run(user, tenant))
        ask.require_mapping(user, tenant)
        return _reviewer(user)

    return ReviewAuth(reader=reader, editor=editor, login_url=_airflow_login_url, mapper=mapper)


def _settings_of(tenant: PageTenant) -> str:
    """The tenant's settings Variable; a tenant that has none left takes no change (403)."""
    require_active(tenant)
    return tenant.variable or VARIABLE_KEY  # require_active passed: never the fallback


def _require(allowed: bool) -> None:
    if not allowed:  # Airflow's own answer to a refused `requires_access_*`
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


MAPPING_ROLE_REFUSED = (
    "Changing who is billed, or for what (mappings, overrides, approvals), needs one of the roles "
    "named by mapping_roles"
)


def mapping_needs_config_rights(variable: str) -> str:
    return (
        "Changing who is billed, or for what (mappings, overrides, approvals), needs the right to edit "
        f"the DAG and its Variable {variable} "
        "(SimpleAuthManager: OP or ADMIN), or a role named by mapping_roles"
    )


def mapping_variable_broken(variable: str) -> str:
    return f"Mapping changes are refused until the Variable {variable} is valid JSON with valid settings"


# The single-tenant form's messages, by the names the tests and docs know them.
MAPPING_NEEDS_CONFIG_RIGHTS = mapping_needs_config_rights(VARIABLE_KEY)
MAPPING_VARIABLE_BROKEN = mapping_variable_broken(VARIABLE_KEY)


def _mapping_roles(variable: str = VARIABLE_KEY) -> tuple[str, ...]:
    """`mapping_roles` of the tenant's Variable, asked through Airflow's backends (secrets backend,
    environment, metadata database). A Variable that does not parse refuses every mapping change
    (fail closed) rather than falling back to a weaker rule."""
    from airflow.models.variable import Variable

    from billing_sync.config import ConfigError, load_settings

    try:
        return load_settings(Variable.get(variable, default_var=None)).mapping_roles
    except ConfigError:  # the message quotes the value: the resolve task's log says it, not this page
        raise HTTPException(status.HTTP_403_FORBIDDEN, mapping_variable_broken(variable)) from None


def role_names(user: Any) -> set[str]:
    """The user's role names, case-folded: SimpleAuthManager's one ``role``; FAB's ``roles``
    (objects with a ``name``); any auth manager whose users carry role names as text. A user object
    with neither has no roles, so a configured ``mapping_roles`` refuses it."""
    found: list[Any] = [getattr(user, "role", None), *(getattr(user, "roles", None) or ())]
    names = (getattr(r, "name", r) for r in found)
    return {n.casefold() for n in names if isinstance(n, str) and n}


def may_map_by_role(configured: Iterable[str], held: set[str]) -> bool:
    """True when the user holds one of the configured roles (compared case-insensitively)."""
    return any(r.casefold() in held for r in configured)


def _airflow_login_url(next_url: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def _reviewer(user: Any, *, may_act: bool = True, may_map: bool = True) -> Reviewer:
    """The Reviewer of an Airflow user; `editor` and `mapper` have passed their checks already."""
    user_id = str(user.get_id())
    return Reviewer(name=str(user.get_name() or user_id), user_id=user_id, may_act=may_act, may_map=may_map)


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
