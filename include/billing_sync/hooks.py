"""The Airflow hooks of the connection types `huntress` and `connectwise_manage`, with the Test button.

Registered through the provider entry point (billing_sync.provider), which also carries their forms
(Airflow 3.2+ reads a connection form from the provider info's `conn-fields` and
`ui-field-behaviour`; a hook's `get_connection_form_widgets`/`get_ui_field_behaviour` are deprecated
there). Sessions and auth are billing_sync.api_hooks'; `test_connection` is the form's Test button:
read-only calls, an answer in plain words (billing_sync.conn_check).
"""

from __future__ import annotations

from .api_hooks import ConnectWiseApiHook, HuntressApiHook


class HuntressHook(HuntressApiHook):
    """Huntress API: `login` = API key, `password` = API secret, `host` [https://api.huntress.io]."""

    def test_connection(self) -> tuple[bool, str]:
        from .conn_check import check_huntress

        return check_huntress(self.http_conn_id)


class ConnectWiseHook(ConnectWiseApiHook):
    """ConnectWise Manage API: site URL, private key, and company id, public key, client id, API
    version and codebase as fields (typed form) or as `login` and extra `clientId` (http form)."""

    def test_connection(self) -> tuple[bool, str]:
        from .conn_check import check_connectwise

        return check_connectwise(self.http_conn_id)
