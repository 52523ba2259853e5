"""What an API answers never reaches a message, a log, the database or a report unscrubbed, and a body
built to crash a recursive walk is a clear error (or a `push_rejected` row), never a crash.

Real HTTP servers on loopback: the small scripted `Server` of tests/helpers/scripted_server.py, and the
sandbox with its `non_json_rate`, `error_depth` and `echo_credentials` faults (hostile answers, not
API behaviour) for whole runs whose pushes meet them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import requests

from billing_sandbox.generate import generate
from billing_sync import store
from billing_sync.errors import ApiError, CredentialsError
from billing_sync.http import ApiSession, RetryPolicy
from billing_sync.scrub import TOO_DEEP
from tests.conftest import Sandbox, start_sandbox
from tests.helpers.scripted_server import CLIENT_ID, LOGIN, PASSWORD
from tests.proof.helpers import connection_env, needles, run_steps, scan_database, scan_files, set_faults

WANTED = needles({"password": PASSWORD, "client id": CLIENT_ID}, [(LOGIN, PASSWORD)])
DEPTH = 800  # deep enough that a recursive walk of it fails; shallow enough that json decodes it


def session(base_url: str, attempts: int = 2) -> ApiSession:
    def factory() -> requests.Session:
        s = requests.Session()
        s.auth = (LOGIN, PASSWORD)
        s.headers["clientId"] = CLIENT_ID
        return s

    retry = RetryPolicy(attempts=attempts, base_delay=0)
    return ApiSession(
        "ConnectWise",
        factory,
        base_url,
        retry=retry,
        sleep=lambda s: None,
        secrets=[LOGIN, PASSWORD, CLIENT_ID],
    )


def leaked(text: str) -> list[str]:
    wanted = {**WANTED, "client id (upper case)": CLIENT_ID.upper()}
    return [name for name, value in wanted.items() if value in text]


def nested(depth: int, inner: object) -> object:
    for _ in range(depth):
        inner = [inner]
    return inner


def test_a_content_type_that_echoes_the_credentials_is_scrubbed(servers, caplog):  # noqa: F811
    def echo(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        ctype = f"text/html; echo={h.headers['Authorization']}; client={h.headers['clientId'].upper()}"
        return 200, {"Content-Type": ctype}, b"<html>busy</html>"

    site = servers(echo)
    with caplog.at_level(logging.WARNING, logger="billing_sync.http"), pytest.raises(ApiError) as failed:
        session(site.url).request("GET", "company/companies", label="/company/companies")
    text = str(failed.value)
    assert "failed after 2 attempts: HTTP 200 with a non-JSON body (text/html; echo=Basic ***" in text
    assert leaked(text) == [] and leaked(caplog.text) == []
    assert "non-JSON body" in caplog.text, "the retry was logged, scrubbed"


def test_an_error_body_nested_hundreds_deep_is_an_api_error(servers):  # noqa: F811
    body = {"message": nested(DEPTH, f"refused {PASSWORD}"), "errors": nested(DEPTH, {"x": 1})}
    site = servers(lambda h: (403, {"Content-Type": "application/json"}, json.dumps(body).encode()))
    with pytest.raises(CredentialsError) as failed:
        session(site.url).request("GET", "company/companies", label="/company/companies")
    assert "was refused: HTTP 403 ([[[" in str(failed.value)
    assert TOO_DEEP in json.dumps(failed.value.body, ensure_ascii=False)
    assert leaked(str(failed.value) + json.dumps(failed.value.body)) == []


def test_a_data_answer_nested_hundreds_deep_is_an_api_error(servers):  # noqa: F811
    answer = [{"id": 1, "quantity": nested(DEPTH, 3)}]
    site = servers(lambda h: (200, {"Content-Type": "application/json"}, json.dumps(answer).encode()))
    with pytest.raises(ApiError, match="nested deeper than 32 levels; not read"):
        session(site.url).request("GET", "company/companies", label="/company/companies")
    shallow = servers(lambda h: (200, {"Content-Type": "application/json"}, b'[{"a": {"b": [[1]]}}]'))
    assert session(shallow.url).request("GET", "x", label="/x").payload == [{"a": {"b": [[1]]}}]


def test_every_api_error_of_the_session_is_made_scrubbed():
    """Structure, not luck: in ApiSession only `_error` builds an ApiError (a new raise that builds
    its own would bypass the scrub where the message is made)."""
    import ast
    import inspect

    from billing_sync import http

    tree = ast.parse(inspect.getsource(http.ApiSession))
    makers = {
        method.name
        for method in ast.walk(tree)
        if isinstance(method, ast.FunctionDef)
        for call in ast.walk(method)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in ("ApiError", "CredentialsError")
    }
    assert makers == set(), f"ApiSession methods that build an ApiError themselves: {sorted(makers)}"


# -- whole runs whose pushes meet the hostile answers ----------------------------------------------
def hostile_scenario() -> dict:
    scenario = generate(40, 7)
    c = scenario["connectwise"]
    c["public_key"], c["private_key"] = "cwPUBhostile5150", "cwPRIVhostile5150"
    c["client_id"] = "7d1e2c3b-4a5f-4e6d-8c7b-9a0b1c2d3e4f"
    return scenario


@pytest.fixture(scope="module")
def hostile_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(hostile_scenario(), tmp_path_factory.mktemp("hostile"))
    yield sb
    sb.stop()


@pytest.fixture
def hostile(hostile_sandbox: Sandbox) -> Sandbox:
    """One sandbox process for the module's runs, reset before each (its data, faults and counts)."""
    for url in (hostile_sandbox.huntress_url, hostile_sandbox.connectwise_url):
        httpx.post(f"{url}/_sandbox/reset", timeout=10).raise_for_status()
    return hostile_sandbox


@pytest.mark.parametrize(
    "faults",
    [
        {"status_rate": {"400": 1.0}, "error_depth": 600, "echo_credentials": True},
        {"non_json_rate": 1.0, "echo_credentials": True},
    ],
    ids=["deep-error-body", "echoing-content-type"],
)
def test_a_push_meeting_hostile_answers_records_push_rejected(
    hostile: Sandbox, monkeypatch, tmp_path: Path, faults
):
    sb, scenario = hostile, hostile.scenario
    c = scenario["connectwise"]
    # One attempt per request: an answer that is no JSON is otherwise retried with backoff.
    env = connection_env(scenario, sb.huntress_url, sb.connectwise_url, max_retries=1)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    eng = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(eng)

    run = run_steps(
        eng,
        "manual__hostile",
        "2026-11-01",
        before={"push": lambda ref: set_faults(sb.connectwise_url, **faults)},
    )
    assert run.error is None, run.describe()
    with eng.connect() as conn:
        rejected = conn.exec_driver_sql(
            "select detail from billing_quarantine where reason_code = 'push_rejected'"
        ).all()
    assert rejected, "every write met the hostile answer and was recorded as refused"
    if "error_depth" in faults:
        assert all("HTTP 400" in r.detail and TOO_DEEP in r.detail for r in rejected)
    else:
        assert all("non-JSON body (text/html" in r.detail for r in rejected)
        assert any('echo="Authorization: ***' in r.detail for r in rejected)

    wanted = needles(
        {
            "private key": c["private_key"],
            "public key": c["public_key"],
            "client id": c["client_id"],
            "client id (upper case)": c["client_id"].upper(),
        },
        [(f"{c['company_id']}+{c['public_key']}", c["private_key"])],
    )
    assert scan_database(eng, wanted) == {}
    assert scan_files(tmp_path / "reports", wanted) == {}
