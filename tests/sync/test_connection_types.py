"""The connection types `huntress` and `connectwise_manage` (issue 22 §2): both forms of a connection
read alike, Airflow discovers the types through the entry point, and the Test button answers in plain
words against the real sandbox, naming no credential."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from billing_sync.conn_check import check_connectwise, check_huntress
from billing_sync.conn_settings import connectwise_credentials
from billing_sync.connectwise import ConnectWiseClient
from billing_sync.errors import CredentialsError
from billing_sync.huntress import HuntressClient
from tests.conftest import DEMO_SCENARIO, Sandbox, start_sandbox

# Long enough that the scrubber masks them anywhere, and that finding one in a message means a leak.
PRIVATE_KEY = "cw_private_key_value_4711"
PUBLIC_KEY = "cw_public_key_value_0815"
CLIENT_ID = "aaaabbbb-cccc-dddd-eeee-ffff00001111"
API_KEY, API_SECRET = "hk_api_key_value_2323", "hs_api_secret_value_4242"
WRONG_PRIVATE_KEY = "not_the_private_key_9999"
SECRETS = (PRIVATE_KEY, PUBLIC_KEY, CLIENT_ID, API_KEY, API_SECRET, WRONG_PRIVATE_KEY)


def conn(**fields: Any) -> SimpleNamespace:
    extra = fields.pop("extra", {})
    return SimpleNamespace(
        **{"conn_id": "cw", "host": "https://cw.example", "login": None, "password": PRIVATE_KEY, **fields},
        extra_dejson=extra,
    )


TYPED_EXTRA = {"company_id": "demomsp", "public_key": PUBLIC_KEY, "client_id": CLIENT_ID}


# -- parsing both forms -----------------------------------------------------------------------------


def test_the_http_form_and_the_typed_form_read_alike() -> None:
    http = connectwise_credentials(
        conn(login=f"demomsp+{PUBLIC_KEY}", extra={"clientId": CLIENT_ID, "codebase": "v4_6_release/"})
    )
    typed = connectwise_credentials(conn(extra={**TYPED_EXTRA, "codebase": "v4_6_release/"}))
    assert http == typed
    assert typed.login == f"demomsp+{PUBLIC_KEY}"
    assert (typed.company_id, typed.client_id, typed.codebase) == ("demomsp", CLIENT_ID, "v4_6_release/")


def test_empty_typed_fields_are_unset() -> None:
    creds = connectwise_credentials(conn(extra={**TYPED_EXTRA, "api_version": "", "codebase": None}))
    assert creds.codebase is None and not creds.api_version


def test_both_forms_together_must_agree() -> None:
    same = conn(login=f"demomsp+{PUBLIC_KEY}", extra={**TYPED_EXTRA, "clientId": CLIENT_ID})
    assert connectwise_credentials(same).company_id == "demomsp"
    other = conn(login=f"othermsp+{PUBLIC_KEY}", extra={**TYPED_EXTRA})
    with pytest.raises(CredentialsError, match="company id is given twice") as caught:
        connectwise_credentials(other)
    assert PUBLIC_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"extra": {"company_id": "demomsp", "client_id": CLIENT_ID}}, "public key"),
        ({"extra": {**TYPED_EXTRA, "client_id": ""}}, "client id"),
        ({"password": "", "extra": TYPED_EXTRA}, "private key"),
        ({"login": f"demomsp+{PUBLIC_KEY}", "extra": {}}, "client id"),
    ],
)
def test_a_missing_setting_is_named_never_a_value(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(CredentialsError, match=named) as caught:
        connectwise_credentials(conn(**fields))
    assert not [s for s in SECRETS if s in str(caught.value)]


def test_an_http_login_without_a_plus_is_refused() -> None:
    with pytest.raises(CredentialsError, match="companyId\\+publicKey"):
        connectwise_credentials(conn(login="demomsp", extra={"clientId": CLIENT_ID}))


# -- Airflow finds the types -----------------------------------------------------------------------


def test_airflow_discovers_both_connection_types_with_their_forms() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "huntress-cw-billing" in pm.providers
    hooks = pm.hooks
    assert hooks["huntress"].hook_class_name == "billing_sync.hooks.HuntressHook"
    assert hooks["connectwise_manage"].hook_class_name == "billing_sync.hooks.ConnectWiseHook"
    assert hooks["connectwise_manage"].connection_id_attribute_name == "connectwise_conn_id"
    widgets = pm.connection_form_widgets
    for name in ("company_id", "public_key", "client_id", "api_version", "codebase"):
        assert f"extra__connectwise_manage__{name}" in widgets, name
    behaviour = pm.field_behaviours["connectwise_manage"]
    assert {"login", "schema"} <= set(behaviour["hidden_fields"]) and "port" not in behaviour["hidden_fields"]
    assert behaviour["relabeling"] == {"host": "Site URL", "password": "Private key"}
    huntress = pm.field_behaviours["huntress"]
    assert huntress["relabeling"]["login"] == "API key" and huntress["relabeling"]["password"] == "API secret"


def test_make_airflow_enables_the_test_button() -> None:
    from scripts.airflow_local import airflow_env

    scenario = json.loads(DEMO_SCENARIO.read_text())
    urls = {"huntress_url": "http://127.0.0.1:1", "connectwise_url": "http://127.0.0.1:2"}
    assert airflow_env(urls, scenario, "127.0.0.1", 8080)["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"


# -- against the sandbox ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    scenario = json.loads(DEMO_SCENARIO.read_text())
    scenario["connectwise"].update(public_key=PUBLIC_KEY, private_key=PRIVATE_KEY, client_id=CLIENT_ID)
    scenario["huntress"].update(api_key=API_KEY, api_secret=API_SECRET)
    sb = start_sandbox(scenario, Path(tmp_path_factory.mktemp("conn-types")))
    yield sb
    sb.stop()


def typed_connectwise(sb: Sandbox, **changes: Any) -> str:
    c = sb.scenario["connectwise"]
    extra = {"company_id": c["company_id"], "public_key": c["public_key"], "client_id": c["client_id"]}
    extra.update(changes.pop("extra", {}))
    body = {"conn_type": "connectwise_manage", "host": sb.connectwise_url, "password": c["private_key"]}
    return json.dumps({**body, **changes, "extra": extra})


def no_secret(message: str) -> None:
    assert not [s for s in SECRETS if s in message], message


def test_the_client_sends_the_typed_form_as_the_http_form(sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CW_TYPED", typed_connectwise(sandbox))
    for key, value in sandbox.connections().items():
        monkeypatch.setenv(key, value)
    typed = ConnectWiseClient.from_connection("cw_typed")
    http = ConnectWiseClient.from_connection("connectwise_default")
    headers = {k.lower(): v for k, v in typed.api.session.headers.items()}
    assert headers["clientid"] == CLIENT_ID
    assert not {"company_id", "public_key", "client_id", "codebase", "api_version"} & set(headers)
    assert typed.api.session.auth.username == http.api.session.auth.username == f"demomsp+{PUBLIC_KEY}"
    assert typed.codebase == http.codebase == "v4_6_release/"
    assert [c["id"] for c in typed.companies()] == [c["id"] for c in http.companies()]


def test_connectwise_test_succeeds_in_both_forms(sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CW_TYPED", typed_connectwise(sandbox))
    for key, value in sandbox.connections().items():
        monkeypatch.setenv(key, value)
    for conn_id in ("cw_typed", "connectwise_default"):
        ok, message = check_connectwise(conn_id)
        assert ok, message
        assert message.startswith("Authenticated as company demomsp on codebase v4_6_release/ at "), message
        no_secret(message)


def test_the_test_button_runs_the_hook_of_the_type(sandbox: Sandbox, monkeypatch) -> None:
    """What the API's /connections/test does: a Connection of the type, its hook's test_connection."""
    from airflow.models.connection import Connection

    monkeypatch.setenv("AIRFLOW_CONN_CW_BUTTON", typed_connectwise(sandbox))
    ok, message = Connection.get_connection_from_secrets("cw_button").test_connection()
    assert ok and "company demomsp" in message, message


def test_a_wrong_private_key_fails_in_plain_words(sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CW_WRONG", typed_connectwise(sandbox, password=WRONG_PRIVATE_KEY))
    ok, message = check_connectwise("cw_wrong")
    assert not ok
    assert "refused the credentials for company demomsp" in message
    assert "check the public key and the private key" in message
    no_secret(message)


def test_a_wrong_site_url_says_to_check_it(sandbox: Sandbox, monkeypatch) -> None:
    # A server that is no ConnectWise (the Huntress sandbox), then nothing listening at all.
    monkeypatch.setenv("AIRFLOW_CONN_CW_ELSEWHERE", typed_connectwise(sandbox, host=sandbox.huntress_url))
    ok, message = check_connectwise("cw_elsewhere")
    assert (
        not ok
        and "did not answer ConnectWise's company lookup" in message
        and "check the site URL" in message
    )
    no_secret(message)
    monkeypatch.setenv("AIRFLOW_CONN_CW_NOWHERE", typed_connectwise(sandbox, host="http://127.0.0.1:9"))
    ok, message = check_connectwise("cw_nowhere")
    assert not ok and message.startswith(
        "Could not reach ConnectWise at http://127.0.0.1:9: check the site URL"
    )
    no_secret(message)


def test_an_unknown_company_and_a_wrong_client_id_are_named(sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CW_CO", typed_connectwise(sandbox, extra={"company_id": "nosuchmsp"}))
    ok, message = check_connectwise("cw_co")
    assert not ok and "knows no company 'nosuchmsp'" in message, message
    other_client = "00000000-1111-2222-3333-444444444444"
    monkeypatch.setenv("AIRFLOW_CONN_CW_CID", typed_connectwise(sandbox, extra={"client_id": other_client}))
    ok, message = check_connectwise("cw_cid")
    assert not ok and "refused the client id" in message and other_client not in message, message


def test_huntress_test_names_the_account_or_the_refusal(sandbox: Sandbox, monkeypatch) -> None:
    typed = {"conn_type": "huntress", "host": sandbox.huntress_url, "login": API_KEY, "password": API_SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_HN_TYPED", json.dumps(typed))
    ok, message = check_huntress("hn_typed")
    assert ok and message.startswith("Authenticated to Huntress account Demo MSP (demomsp) at "), message
    monkeypatch.setenv("AIRFLOW_CONN_HN_WRONG", json.dumps({**typed, "password": "hs_wrong_secret_0000"}))
    ok, message = check_huntress("hn_wrong")
    assert not ok and "refused the API key and secret (HTTP 401)" in message, message
    no_secret(message)
    assert "hs_wrong_secret_0000" not in message


def test_a_huntress_connection_without_host_goes_to_the_public_api(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HN_NOHOST",
        json.dumps({"conn_type": "huntress", "login": API_KEY, "password": API_SECRET}),
    )
    assert HuntressClient.from_connection("hn_nohost").api.base_url == "https://api.huntress.io"


def test_the_typed_form_login_pair_is_a_secret_for_every_scrub() -> None:
    """Alerts scrub with scrub.secrets_of: Basic auth's `companyId+publicKey:privateKey`, which the
    typed form never stores as one value, is masked as it travels (base64) too."""
    import base64

    from billing_sync.scrub import scrubber, secrets_of

    pair = base64.b64encode(f"demomsp+{PUBLIC_KEY}:{PRIVATE_KEY}".encode()).decode()
    scrub = scrubber(secrets_of(conn(extra=TYPED_EXTRA)))
    assert scrub(f"the server echoed the header as {pair}") == "the server echoed the header as ***"
    assert CLIENT_ID not in scrub(f"clientId {CLIENT_ID}")
