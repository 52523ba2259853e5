"""Credentials go only to the configured site, and nothing an API writes back carries them.

Real HTTP servers on loopback: a "site" that answers as a hostile or broken API would (a paging
link or a redirect to another origin, a huge or deeply nested body), and an "elsewhere" server that
records whatever reaches it. The sandbox's `echo_credentials` fault quotes the request's
Authorization and clientId headers back, as a careless server or gateway does.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from billing_sandbox.generate import generate
from billing_sync import store
from billing_sync.connectwise import ConnectWiseClient
from billing_sync.errors import ApiError
from billing_sync.http import ApiSession, RetryPolicy
from tests.helpers.sandbox_setup import use_connections
from tests.helpers.scripted_server import CLIENT_ID, LOGIN, PASSWORD
from tests.proof.helpers import needles, run_steps, scan_database, scan_files, set_faults


def client(base_url: str, **kw: object) -> ConnectWiseClient:
    def factory() -> requests.Session:
        s = requests.Session()
        s.auth = (LOGIN, PASSWORD)
        s.headers["clientId"] = CLIENT_ID
        return s

    api = ApiSession(
        "ConnectWise",
        factory,
        base_url,
        retry=RetryPolicy(attempts=1),
        secrets=[LOGIN, PASSWORD, CLIENT_ID],
        **kw,  # type: ignore[arg-type]
    )
    return ConnectWiseClient(api)


def json_page(body: object, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


def test_a_next_link_to_another_origin_is_not_followed(servers):
    elsewhere = servers(lambda h: json_page([{"id": 2}]))
    site = servers(lambda h: json_page([{"id": 1}], Link=f'<{elsewhere.url}/page2>; rel="next"'))

    with pytest.raises(ApiError, match="not followed") as failed:
        list(client(site.url).paged("/company/companies", "/company/companies"))
    assert elsewhere.seen == [], "no request, so no credentials, went to the other origin"
    assert elsewhere.url.rsplit(":", 1)[1] in str(failed.value), "the error names where it led"


def test_a_next_link_on_the_same_origin_is_followed(servers):
    pages = {"/company/companies": "/company/companies?page=2"}

    def answer(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        path = h.path.split("?pageSize")[0] if "pageSize" in h.path else h.path
        nxt = pages.get(path)
        headers = {"Link": f'<{site.url}{nxt}>; rel="next"'} if nxt else {"Link": ""}
        return json_page([{"id": len(site.seen)}], **headers)

    site = servers(answer)
    assert len(list(client(site.url).paged("/company/companies", "/company/companies"))) == 2


@pytest.mark.parametrize(
    "link",
    ["https://127.0.0.1:{port}/page2", "http://localhost:{port}/page2", "http://127.0.0.1:{other}/page2"],
)
def test_scheme_host_and_port_must_each_match(link):
    api = ApiSession("ConnectWise", requests.Session, "http://127.0.0.1:8000/v4_6_release/apis/3.0")
    assert api.link("http://127.0.0.1:8000/v4_6_release/apis/3.0/x?page=2") == "x?page=2"
    with pytest.raises(ApiError, match="another scheme, host or port.*not followed"):
        api.link(link.format(port=8000, other=8001).replace("/page2", "/v4_6_release/apis/3.0/page2"))


def test_a_redirect_is_not_followed(servers):
    elsewhere = servers(lambda h: json_page([{"id": 2}]))
    site = servers(lambda h: (302, {"Location": f"{elsewhere.url}/stolen"}, b""))

    with pytest.raises(ApiError, match="redirect"):
        list(client(site.url).paged("/company/companies", "/company/companies"))
    assert elsewhere.seen == []


def test_a_huge_answer_is_an_api_error_not_read_whole(servers):
    big = json.dumps([{"id": i, "name": "x" * 100} for i in range(2000)]).encode()  # ~250 kB
    site = servers(lambda h: (200, {"Content-Type": "application/json"}, big))
    with pytest.raises(ApiError, match="more than 100,000 bytes"):
        list(client(site.url, max_body_bytes=100_000).paged("/company/companies", "/company/companies"))

    chunked = servers(lambda h: (200, {"Content-Type": "application/json", "Connection": "close"}, big))
    with pytest.raises(ApiError, match="bytes; not read"):
        list(client(chunked.url, max_body_bytes=100_000).paged("/x", "/x"))


def test_deeply_nested_json_is_an_api_error(servers):
    site = servers(lambda h: (200, {"Content-Type": "application/json"}, b"[" * 200_000 + b"]" * 200_000))
    with pytest.raises(ApiError, match="nested too deeply"):
        list(client(site.url).paged("/company/companies", "/company/companies"))


def test_an_echoed_credential_is_scrubbed_where_the_error_is_made(servers):
    def echo(h: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        said = f"bad request from {h.headers['Authorization']} / clientId {h.headers['clientId']}"
        return 400, {"Content-Type": "application/json"}, json.dumps({"message": said, "raw": said}).encode()

    site = servers(echo)
    with pytest.raises(ApiError) as failed:
        list(client(site.url).paged("/company/companies", "/company/companies"))
    text = str(failed.value) + json.dumps(failed.value.body)
    assert "HTTP 400 (bad request from Basic ***" in str(failed.value), "the API's words stay readable"
    wanted = needles({"password": PASSWORD, "client id": CLIENT_ID}, [(LOGIN, PASSWORD)])
    assert [name for name, v in wanted.items() if v in text] == []


# -- a whole run against the sandbox echoing credentials into every error ---------------------------
def test_no_stored_or_shown_text_carries_an_echoed_credential(sandbox_factory, monkeypatch, tmp_path: Path):
    scenario = generate(40, 7)
    c = scenario["connectwise"]
    c["public_key"], c["private_key"], c["client_id"] = "cwPUBecho5150", "cwPRIVecho5150", "cwCLIENTecho5150"
    sb = sandbox_factory(scenario)
    use_connections(monkeypatch, sb)
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    eng = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(eng)

    # Every write is refused with a 400 that quotes the request's Authorization and clientId.
    def refuse_pushes(ref: object) -> None:
        set_faults(sb.connectwise_url, status_rate={"400": 1.0}, echo_credentials=True)

    run = run_steps(eng, "manual__echo", "2026-11-01", before={"push": refuse_pushes})
    assert run.error is None, run.describe()
    with eng.connect() as conn:
        rejected = conn.exec_driver_sql(
            "select detail from billing_quarantine where reason_code = 'push_rejected'"
        ).all()
    assert rejected and all("HTTP 400" in r.detail for r in rejected), "the refusals are recorded"
    assert any("request headers: Authorization: ***, clientId: ***" in r.detail for r in rejected)

    wanted = needles(
        {"private key": c["private_key"], "public key": c["public_key"], "client id": c["client_id"]},
        [(f"{c['company_id']}+{c['public_key']}", c["private_key"])],
    )
    assert scan_database(eng, wanted) == {}
    assert scan_files(tmp_path / "reports", wanted) == {}
