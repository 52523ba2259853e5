"""How a Huntress or ConnectWise connection becomes an authenticated session (HttpHook subclasses).

The clients build their sessions through these hooks, so a connection of the typed form
(`huntress`, `connectwise_manage`) and one of the generic `http` form under the same id are sent
alike: Basic `companyId+publicKey:privateKey` and the `clientId` header for ConnectWise, Basic
`key:secret` for Huntress. The registered hooks (billing_sync.hooks) add the Test button; they live
apart so that the clients, which the Test button calls, do not import it back.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from requests import Session
from requests.auth import HTTPBasicAuth

from .conn_settings import (
    CONNECTWISE_TYPE,
    CW_TYPED_FIELDS,
    HTTP_CLIENT_ID,
    HUNTRESS_HOST,
    HUNTRESS_TYPE,
    connectwise_credentials,
)


class HuntressApiHook(HttpHook):
    """Huntress API: `login` = API key, `password` = API secret, `host` [https://api.huntress.io]."""

    conn_name_attr = "huntress_conn_id"
    default_conn_name = "huntress_default"
    conn_type = HUNTRESS_TYPE
    hook_name = "Huntress"
    default_host = HUNTRESS_HOST

    def __init__(self, huntress_conn_id: str = default_conn_name, method: str = "GET", **kwargs: Any) -> None:
        super().__init__(method=method, http_conn_id=huntress_conn_id, **kwargs)
        self.huntress_conn_id = huntress_conn_id


class ConnectWiseApiHook(HttpHook):
    """ConnectWise Manage API: `host` = site URL, `password` = private key; company id, public key,
    client id, API version and codebase as fields (typed form) or as `login` = companyId+publicKey
    and extra `clientId` (http form)."""

    conn_name_attr = "connectwise_conn_id"
    default_conn_name = "connectwise_default"
    conn_type = CONNECTWISE_TYPE
    hook_name = "ConnectWise Manage"

    def __init__(
        self, connectwise_conn_id: str = default_conn_name, method: str = "GET", **kwargs: Any
    ) -> None:
        super().__init__(method=method, http_conn_id=connectwise_conn_id, **kwargs)
        self.connectwise_conn_id = connectwise_conn_id

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> Session:
        """HttpHook's session, with ConnectWise's auth and `clientId` header from either form.

        HttpHook sends every extra as a header: the typed form's fields are settings or credentials
        sent otherwise, so they are taken off again."""
        creds = connectwise_credentials(self.get_connection(self.http_conn_id), self.http_conn_id)
        session: Session = super().get_conn(
            headers={**(headers or {}), HTTP_CLIENT_ID: creds.client_id}, extra_options=extra_options
        )
        for field in CW_TYPED_FIELDS:
            session.headers.pop(field, None)
        session.auth = HTTPBasicAuth(creds.login, creds.private_key)
        return session
