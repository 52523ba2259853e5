"""The package's Airflow provider info: the connection types `huntress` and `connectwise_manage`.

Airflow finds it through the entry point `apache_airflow_provider` (pyproject.toml). The forms are
declared here, as Airflow 3.2+ reads them (provider info's `conn-fields`, stored in the connection's
extra under each field's name, and `ui-field-behaviour` for the standard fields); the hooks'
`get_connection_form_widgets`/`get_ui_field_behaviour` are deprecated there and not defined.

Imports nothing: Airflow reads this while it lists providers, without importing any hook.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

PACKAGE = "huntress-cw-billing"
HUNTRESS_HOOK = "billing_sync.hooks.HuntressHook"
CONNECTWISE_HOOK = "billing_sync.hooks.ConnectWiseHook"
# The port stays on the forms for Airflow 3.3.2's Test button alone: the connections list posts
# `port: Number(null)` = 0 for a connection without one, which the API takes for another endpoint
# and refuses (HTTP 400; apache/airflow#73298, fixed in the API after 3.3.2). With the port filled
# in (443 for an https site) the button works; the clients need no port.
PORT_HINT = "443 (only for the Test button of Airflow 3.3.2)"


class FieldSchema(TypedDict):
    """The JSON Schema of one form field (provider_info.schema.json: `conn-fields.*.schema`)."""

    type: list[str]
    pattern: NotRequired[str]


class ConnField(TypedDict):
    """One field of a connection form, stored in the connection's extra under its name."""

    label: str
    description: str
    schema: FieldSchema


# provider_info.schema.json spells its keys with hyphens: these take the functional form.
UiFieldBehaviour = TypedDict(
    "UiFieldBehaviour",
    {"hidden-fields": list[str], "relabeling": dict[str, str], "placeholders": dict[str, str]},
)
ConnectionType = TypedDict(
    "ConnectionType",
    {
        "hook-class-name": str,
        "hook-name": str,
        "connection-type": str,
        "ui-field-behaviour": UiFieldBehaviour,
        "conn-fields": NotRequired[dict[str, ConnField]],
    },
)
ProviderInfo = TypedDict(
    "ProviderInfo",
    {
        "package-name": str,
        "name": str,
        "description": str,
        "versions": list[str],
        "connection-types": list[ConnectionType],
    },
)


def _text(label: str, description: str, pattern: str | None = None) -> ConnField:
    schema: FieldSchema = {"type": ["string", "null"]}
    if pattern is not None:
        schema["pattern"] = pattern
    return {"label": label, "description": description, "schema": schema}


HUNTRESS_FORM: ConnectionType = {
    "hook-class-name": HUNTRESS_HOOK,
    "hook-name": "Huntress",
    "connection-type": "huntress",
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {"host": "API URL", "login": "API key", "password": "API secret"},
        "placeholders": {
            "host": "https://api.huntress.io (the default when empty)",
            "port": PORT_HINT,
            "login": "the API key (hk_…) from Huntress → API Credentials",
            "password": "the API secret shown once when the key was made",
            "extra": '{"rate_limit_per_minute": 60}',
        },
    },
}

CONNECTWISE_FORM: ConnectionType = {
    "hook-class-name": CONNECTWISE_HOOK,
    "hook-name": "ConnectWise Manage",
    "connection-type": "connectwise_manage",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "login"],
        "relabeling": {"host": "Site URL", "password": "Private key"},
        "placeholders": {
            "host": "https://api-na.myconnectwise.net",
            "port": PORT_HINT,
            "password": "the API member's private key",
            "extra": '{"max_retries": 6}',
        },
    },
    "conn-fields": {
        "company_id": _text("Company id", "The company id you sign in to ConnectWise with, e.g. demomsp."),
        "public_key": _text("Public key", "The API member's public key (System → Members → API Members)."),
        "client_id": _text(
            "Client id", "The integration's ClientID (a GUID) from developer.connectwise.com."
        ),
        "api_version": _text(
            "API version",
            "The ConnectWise API release to request (Accept version); empty: 2025.1.",
            pattern=r"^(\d{4}\.\d{1,2})?$",
        ),
        "codebase": _text(
            "Codebase",
            "e.g. v4_6_release/; empty: looked up through /login/companyinfo.",
        ),
    },
}


def get_provider_info() -> ProviderInfo:
    """What Airflow's ProvidersManager reads from the entry point (provider_info.schema.json)."""
    return {
        "package-name": PACKAGE,
        "name": "Huntress → ConnectWise billing",
        "description": "Connection types for the Huntress API and the ConnectWise Manage API.",
        "versions": ["0.1.0"],
        "connection-types": [HUNTRESS_FORM, CONNECTWISE_FORM],
    }
