"""The Test button of the `huntress` and `connectwise_manage` connections: read-only calls, plain words.

ConnectWise: `/login/companyinfo/{companyId}` (unauthenticated; finds the codebase unless the
connection names one), then `GET /system/info` with the credentials. Huntress: `GET /v1/account`.
Each failure says what went wrong and what to check, from the step that failed: a site that does
not answer the company lookup is a wrong site URL, a refused authenticated read is the keys.

No answer names a credential: messages are made from the connection's non-secret parts (site,
company id, codebase) and the API's own words, and the whole answer is scrubbed of the connection's
secrets (private key, public key, client id, API key and secret) at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .api_records import Account
from .conn_settings import (
    HUNTRESS_HOST,
    ConnectWiseCredentials,
    connectwise_credentials,
    extra_of,
    site_of,
)
from .errors import ApiError, CredentialsError
from .http import RetryPolicy
from .scrub import scrubber, secrets_of

# A person waits at the button: two tries, short waits, no minute-long timeouts.
QUICK = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, timeout=20.0)
CW_SITE_EXAMPLE = "https://api-na.myconnectwise.net"
CW_KEYS = "System → Members → API Members → the member's API Keys"


def shown_site(url: str) -> str:
    """The URL's scheme, host and port: never a user-info part someone pasted into the host."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = parts.hostname or url
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def _detail(exc: BaseException) -> str:
    """The error's own words, for the end of a message (already scrubbed by the client)."""
    text = str(exc).strip()
    return text[:300]


def _guarded(secrets: list[str], check: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    scrub = scrubber(secrets)
    try:
        ok, message = check()
    except Exception as exc:  # the button must answer, whatever broke
        ok, message = False, f"The test could not run: {type(exc).__name__}: {_detail(exc)}"
    return ok, scrub(message)


# -- ConnectWise -----------------------------------------------------------------------------------


def check_connectwise(conn_id: str) -> tuple[bool, str]:
    """(success, message) for the ConnectWise connection `conn_id`."""
    from .api_hooks import ConnectWiseApiHook

    conn = ConnectWiseApiHook(connectwise_conn_id=conn_id).get_connection(conn_id)
    try:
        creds = connectwise_credentials(conn, "this connection")
    except CredentialsError as exc:
        malformed = f"{exc}."
        return _guarded(secrets_of(conn), lambda: (False, malformed))
    # The company id names the tenant in the answer: it is no secret of its own.
    secrets = [s for s in creds.secrets(extra_of(conn)) if s != creds.company_id]
    return _guarded(secrets, lambda: _connectwise(conn_id, creds))


def _connectwise(conn_id: str, creds: ConnectWiseCredentials) -> tuple[bool, str]:
    from .connectwise import API_VERSION, ConnectWiseClient

    if not creds.site:
        return False, f"The site URL (host) is empty: enter the ConnectWise API site, e.g. {CW_SITE_EXAMPLE}."
    site = shown_site(creds.site)
    try:
        client = ConnectWiseClient.from_connection(conn_id, retry=QUICK)
    except CredentialsError as exc:
        if exc.status is None and "no such company" in str(exc):
            return False, (
                f"ConnectWise at {site} knows no company '{creds.company_id}': check the company id "
                "(the one you sign in to ConnectWise with) and the site URL."
            )
        return False, _site_problem(site, creds, exc)
    except ApiError as exc:
        return False, _site_problem(site, creds, exc)
    try:
        info = client.system_info()
    except CredentialsError as exc:
        return False, _refused(site, creds, client.codebase, exc)
    except ApiError as exc:
        return False, _answered(site, creds, client.codebase, exc)
    version = info.get("version")
    return True, (
        f"Authenticated as company {creds.company_id} on codebase {client.codebase} at {site} "
        f"(ConnectWise {version or 'version unknown'}; API version {creds.api_version or API_VERSION})."
    )


def _site_problem(site: str, creds: ConnectWiseCredentials, exc: ApiError) -> str:
    if exc.status is None and "connection error" in str(exc):
        return (
            f"Could not reach ConnectWise at {site}: check the site URL (e.g. {CW_SITE_EXAMPLE}) "
            f"and that this machine can reach it ({_detail(exc)})."
        )
    if creds.codebase is None:
        return (
            f"{site} did not answer ConnectWise's company lookup (/login/companyinfo/{creds.company_id}): "
            f"check the site URL, e.g. {CW_SITE_EXAMPLE} ({_detail(exc)})."
        )
    return f"The connection could not be used at {site}: {_detail(exc)}."


def _refused(site: str, creds: ConnectWiseCredentials, codebase: str | None, exc: CredentialsError) -> str:
    if exc.status == 403:
        return (
            f"ConnectWise at {site} took the keys of company {creds.company_id} but refused a read "
            f"(HTTP 403): check the API member's security role ({_detail(exc)})."
        )
    if exc.status == 404:  # ConnectWise cloud's answer to bad credentials too (reference, Errors)
        return (
            f"ConnectWise at {site} refused the credentials for company {creds.company_id} on codebase "
            f"{codebase} (HTTP 404, its answer to bad credentials or a wrong codebase): check the public "
            f"key and the private key ({CW_KEYS}) and the codebase if you set one."
        )
    return (
        f"ConnectWise at {site} refused the credentials for company {creds.company_id} (HTTP "
        f"{exc.status}): check the public key and the private key ({CW_KEYS}) and that the API member "
        "is active."
    )


def _answered(site: str, creds: ConnectWiseCredentials, codebase: str | None, exc: ApiError) -> str:
    text = str(exc)
    if exc.status == 400 and "clientid" in text.lower():
        return (
            f"ConnectWise at {site} refused the client id (HTTP 400): check the client id, the "
            "integration's ClientID from developer.connectwise.com."
        )
    if exc.status == 400 and "version" in text.lower():
        return f"ConnectWise at {site} refused the API version: {_detail(exc)}."
    if exc.status is None and "connection error" in text:
        return f"Could not reach ConnectWise at {site}: check the site URL ({_detail(exc)})."
    return (
        f"{site} did not answer as ConnectWise does on codebase {codebase}: check the site URL and "
        f"the codebase ({_detail(exc)})."
    )


# -- Huntress --------------------------------------------------------------------------------------


def check_huntress(conn_id: str) -> tuple[bool, str]:
    """(success, message) for the Huntress connection `conn_id`."""
    from .api_hooks import HuntressApiHook

    conn: Any = HuntressApiHook(huntress_conn_id=conn_id).get_connection(conn_id)
    return _guarded(secrets_of(conn), lambda: _huntress(conn_id, conn))


def _huntress(conn_id: str, conn: Any) -> tuple[bool, str]:
    from .huntress import HuntressClient

    if not (conn.login and conn.password):
        return False, "The API key (login) and API secret (password) are both needed."
    site = shown_site(site_of(conn, HUNTRESS_HOST))
    try:
        account = HuntressClient.from_connection(conn_id, retry=QUICK).get("v1/account", "/v1/account")
    except CredentialsError as exc:
        return False, (
            f"Huntress at {site} refused the API key and secret (HTTP {exc.status}): check both "
            "(Huntress portal → API Credentials; the secret is shown once, when the key is made)."
        )
    except ApiError as exc:
        if exc.status is None and "connection error" in str(exc):
            return False, f"Could not reach Huntress at {site}: check the API URL ({_detail(exc)})."
        return False, (
            f"{site} did not answer as the Huntress API does: check the API URL, normally "
            f"{HUNTRESS_HOST} ({_detail(exc)})."
        )
    info: Account = account.get("account") if isinstance(account.get("account"), dict) else Account()
    name, subdomain = info.get("name"), info.get("subdomain")
    return True, f"Authenticated to Huntress account {name or '?'} ({subdomain or 'no subdomain'}) at {site}."
