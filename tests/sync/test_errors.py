"""The error hierarchy: one base, permanent (fail now) vs transient (retry), and who raises which."""

from __future__ import annotations

import json
from datetime import date

import pytest
import requests

from billing_sync import errors
from billing_sync.connectwise import ConnectWiseClient, discover_codebase
from billing_sync.errors import (
    ApiError,
    BillingSyncError,
    ConfigError,
    CredentialsError,
    InvoiceChoiceError,
    NoInvoiceError,
    PermanentError,
    TransientError,
)
from billing_sync.http import ApiSession, RetryPolicy


def answer(status: int, body: bytes = b'{"message": "no"}') -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp._content_consumed = True  # as a streamed response reads once its body is in
    resp.headers["Content-Type"] = "application/json"
    return resp


class Server:
    """A session whose answers are scripted (the last one repeats)."""

    def __init__(self, *answers: requests.Response):
        self.answers, self.calls = list(answers), 0

    def request(self, method, url, **kw):
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def session(server: Server, api: str = "Huntress") -> ApiSession:
    return ApiSession(
        api,
        lambda: server,
        "https://api.example",
        retry=RetryPolicy(attempts=3, base_delay=0),
        sleep=lambda s: None,
    )


# -- the hierarchy ---------------------------------------------------------------------------------
PERMANENT = (ConfigError, NoInvoiceError, InvoiceChoiceError, CredentialsError)


@pytest.mark.parametrize("kind", PERMANENT)
def test_permanent_kinds(kind):
    assert issubclass(kind, PermanentError) and issubclass(kind, BillingSyncError)
    assert errors.is_permanent(kind("x"))


def test_api_errors_are_transient_except_refused_credentials():
    assert issubclass(ApiError, TransientError) and not errors.is_permanent(ApiError("x", status=500))
    # A refused credential is still an ApiError (the push records it as push_rejected, as before),
    # but permanent wins when it reaches a task.
    assert issubclass(CredentialsError, ApiError) and errors.is_permanent(CredentialsError("x", status=401))
    assert not issubclass(TransientError, PermanentError) and not issubclass(PermanentError, TransientError)


def test_old_bases_and_old_import_paths_still_hold():
    from billing_sync import config, http, huntress, steps

    assert (config.ConfigError, http.ApiError, huntress.InvoiceChoiceError, steps.NoInvoiceError) == (
        ConfigError,
        ApiError,
        InvoiceChoiceError,
        NoInvoiceError,
    )
    assert issubclass(ConfigError, ValueError) and issubclass(InvoiceChoiceError, ValueError)
    assert issubclass(NoInvoiceError, RuntimeError) and issubclass(ApiError, RuntimeError)
    assert issubclass(InvoiceChoiceError, NoInvoiceError)  # whoever stops on "no invoice" stops on both
    err = ApiError("m", status=502, body={"a": 1})
    assert (str(err), err.status, err.body) == ("m", 502, {"a": 1})


# -- failing_fast: what the DAG wraps every task body in ----------------------------------------------
def test_failing_fast_turns_a_permanent_error_into_airflows_fail_now():
    from airflow.sdk.exceptions import AirflowFailException

    original = ConfigError("huntress_cw_billing_config is not valid JSON")
    with pytest.raises(AirflowFailException) as failed, errors.failing_fast():
        raise original
    assert str(failed.value) == str(original) and failed.value.__cause__ is original
    assert errors.unwrap(failed.value) is original  # what the alert names


@pytest.mark.parametrize("error", [ApiError("HTTP 500", status=500), RuntimeError("boom"), KeyError("k")])
def test_failing_fast_lets_everything_else_through(error):
    with pytest.raises(type(error)) as raised, errors.failing_fast():
        raise error
    assert raised.value is error and errors.unwrap(error) is error


def test_failing_fast_returns_normally():
    with errors.failing_fast():
        value = 1
    assert value == 1


# -- where each kind is raised ---------------------------------------------------------------------
def test_bad_settings_are_a_config_error():
    from billing_sync.config import load_settings

    with pytest.raises(PermanentError, match="not valid JSON"):
        load_settings("{not json")


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_fail_at_once_and_permanently(status):
    server = Server(answer(status))
    with pytest.raises(CredentialsError) as err:
        session(server).request("GET", "v1/organizations", label="/v1/organizations")
    assert str(err.value).startswith(f"Huntress GET /v1/organizations was refused: HTTP {status}")
    assert err.value.status == status and server.calls == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_refusals_stay_plain_api_errors(status):
    with pytest.raises(ApiError) as err:
        session(Server(answer(status))).request("GET", "v1/x", label="/v1/x")
    assert type(err.value) is ApiError and not errors.is_permanent(err.value)


def test_server_errors_after_retries_are_transient():
    server = Server(answer(503))
    with pytest.raises(ApiError, match="failed after 3 attempts: HTTP 503") as err:
        session(server).request("GET", "v1/x", label="/v1/x")
    assert not errors.is_permanent(err.value) and server.calls == 3


def test_connectwise_404_to_the_first_request_is_a_credentials_error():
    client = ConnectWiseClient(session(Server(answer(404)), "ConnectWise"))
    with pytest.raises(CredentialsError, match="check the company id / credentials") as err:
        client.companies()
    assert err.value.status == 404
    # After a good answer a 404 is what it says: a missing record (transient, like any ApiError).
    client = ConnectWiseClient(session(Server(answer(200, b"[]"), answer(404)), "ConnectWise"))
    assert client.companies() == []
    with pytest.raises(ApiError) as err:
        client.addition(1, 2)
    assert type(err.value) is ApiError


def test_connectwise_companyinfo_null_is_a_credentials_error():
    with pytest.raises(CredentialsError, match="knows no such company"):
        discover_codebase(session(Server(answer(200, b"null")), "ConnectWise"), "nosuch+pub")
    with pytest.raises(CredentialsError, match="companyId\\+publicKey"):
        discover_codebase(session(Server(answer(200)), "ConnectWise"), "no-plus-sign")


def test_invoice_choice_errors_are_permanent():
    from billing_sync.huntress import select_invoice

    two = [{"id": i, "status": "paid", "created_at": "2026-11-01T00:00:00Z"} for i in (6, 7)]
    with pytest.raises(InvoiceChoiceError) as err:
        select_invoice(two, date(2026, 11, 1))
    assert errors.is_permanent(err.value) and isinstance(err.value, NoInvoiceError)
    with pytest.raises(PermanentError, match="pinned"):
        select_invoice([{**two[0], "status": "voided"}], date(2026, 11, 1), invoice_id=6)


def test_errors_module_imports_nothing_of_ours_or_airflows():
    import subprocess
    import sys

    code = (
        "import sys; import billing_sync.errors; "
        "print(sorted(m for m in sys.modules if m.startswith(('billing_sync', 'airflow'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == ["billing_sync", "billing_sync.errors"]


def test_the_failure_alert_names_the_permanent_error_not_the_wrapper():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from billing_sync.notify import build

    original = ConfigError("huntress_cw_billing_config is not valid JSON")
    with pytest.raises(AirflowFailException) as failed, errors.failing_fast():
        raise original
    ti = SimpleNamespace(
        dag_id="huntress_connectwise_billing_sync", task_id="resolve", map_index=-1, try_number=1
    )
    message = build.failure_message({"ti": ti, "run_id": "", "exception": failed.value})
    facts = dict(message.facts)
    assert facts["Error"] == "ConfigError: huntress_cw_billing_config is not valid JSON"
    assert facts["Attempt"] == "1" and "task resolve" in message.subject
