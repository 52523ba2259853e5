"""Reading a Huntress or ConnectWise Airflow connection in either of its forms.

A connection id may hold the generic `http` form (docs/contract.md §1: ConnectWise's `login` is
`companyId+publicKey`, its extra `clientId`) or the typed form the package registers
(`huntress`, `connectwise_manage`: each ConnectWise setting a field of its own, stored in the extra
by name, as Airflow's connection form stores provider fields). Both read to the same settings here,
so the clients, the hooks and the Test button agree on what a connection says.

Imports nothing of Airflow: the connection is whatever has `host`, `login`, `password` and
`extra_dejson`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CredentialsError
from .scrub import connection_secrets

HUNTRESS_TYPE = "huntress"
CONNECTWISE_TYPE = "connectwise_manage"
HUNTRESS_HOST = "https://api.huntress.io"
# The typed ConnectWise form's fields in the extra (the provider's conn-fields, billing_sync.provider).
CW_COMPANY_ID, CW_PUBLIC_KEY, CW_CLIENT_ID = "company_id", "public_key", "client_id"
CW_API_VERSION, CW_CODEBASE = "api_version", "codebase"
CW_TYPED_FIELDS = (CW_COMPANY_ID, CW_PUBLIC_KEY, CW_CLIENT_ID, CW_API_VERSION, CW_CODEBASE)
HTTP_CLIENT_ID = "clientId"  # the http form's extra, sent as the header of that name


@dataclass(frozen=True)
class ConnectWiseCredentials:
    """What a ConnectWise connection says, whichever form it has."""

    site: str
    company_id: str
    public_key: str
    private_key: str
    client_id: str
    api_version: object  # as written (text such as "2025.1"); connectwise.api_version checks it
    codebase: str | None

    @property
    def login(self) -> str:
        """Basic auth's user: `companyId+publicKey`."""
        return f"{self.company_id}+{self.public_key}"

    def secrets(self, extra: Mapping[str, Any] | None = None) -> list[str]:
        """Every credential of the connection, in the forms a client sends them (scrub.forms)."""
        return connection_secrets(self.login, self.private_key, {**(extra or {}), "clientId": self.client_id})


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def site_of(conn: Any, default_host: str = "") -> str:
    """The base URL as HttpHook makes it: the host (a URL, or a name under the schema field's
    scheme [http]) and the port field, if set."""
    host = _text(getattr(conn, "host", None)) or default_host
    if not host:
        return ""
    if "://" not in host:
        host = f"{_text(getattr(conn, 'schema', None)) or 'http'}://{host}"
    port = getattr(conn, "port", None)
    return f"{host}:{port}" if port else host


def extra_of(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:  # an extra that is no JSON: Airflow logs it; the fields are simply absent
        return {}
    return dict(extra) if isinstance(extra, Mapping) else {}


def _one(name: str, conn_id: str, *values: tuple[str, str]) -> str:
    """The single value that the forms give for one setting; two different ones are an error."""
    given = {value: where for where, value in values if value}
    if len(given) > 1:
        places = " and ".join(sorted(given.values()))
        raise CredentialsError(
            f"connection {conn_id}: the {name} is given twice, differently ({places}); keep one"
        )
    return next(iter(given), "")


def connectwise_credentials(conn: Any, conn_id: str | None = None) -> ConnectWiseCredentials:
    """The ConnectWise settings of `conn` (either form); a missing or contradictory one is a
    CredentialsError that names the field, never its value."""
    conn_id = conn_id or str(getattr(conn, "conn_id", "") or "connectwise")
    extra = extra_of(conn)
    login = _text(getattr(conn, "login", None))
    login_company, login_key = "", ""
    if login:
        if "+" not in login:
            raise CredentialsError(
                f"connection {conn_id}: the login must be 'companyId+publicKey' (http form), or leave "
                "it empty and fill in the company id and public key fields"
            )
        login_company, login_key = (part.strip() for part in login.split("+", 1))
    company_id = _one(
        "company id",
        conn_id,
        ("login", login_company),
        (f"extra {CW_COMPANY_ID}", _text(extra.get(CW_COMPANY_ID))),
    )
    public_key = _one(
        "public key",
        conn_id,
        ("login", login_key),
        (f"extra {CW_PUBLIC_KEY}", _text(extra.get(CW_PUBLIC_KEY))),
    )
    client_id = _one(
        "client id",
        conn_id,
        (f"extra {HTTP_CLIENT_ID}", _text(extra.get(HTTP_CLIENT_ID))),
        (f"extra {CW_CLIENT_ID}", _text(extra.get(CW_CLIENT_ID))),
    )
    missing = [
        name
        for name, value in (
            ("company id", company_id),
            ("public key", public_key),
            ("private key (password)", _text(getattr(conn, "password", None))),
            ("client id", client_id),
        )
        if not value
    ]
    if missing:
        raise CredentialsError(
            f"connection {conn_id}: ConnectWise needs the {', '.join(missing)}; the connection has none"
        )
    codebase = _text(extra.get(CW_CODEBASE)) or None
    return ConnectWiseCredentials(
        site=site_of(conn),
        company_id=company_id,
        public_key=public_key,
        private_key=str(conn.password),
        client_id=client_id,
        api_version=extra.get(CW_API_VERSION),
        codebase=codebase,
    )
