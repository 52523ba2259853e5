"""ConnectWise sandbox: discovery (companyinfo), auth, the clientId header, unknown routes."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.connectwise import (
    CLIENT_ID,
    COMPANY_ID,
    PREFIX,
    PRIVATE_KEY,
    PUBLIC_KEY,
    assert_error,
    client,
)

# -- discovery and auth -----------------------------------------------------------------------


def test_companyinfo_needs_no_auth_and_names_the_codebase(sandbox: Sandbox) -> None:
    resp = httpx.get(f"{sandbox.connectwise_url}/login/companyinfo/DemoMSP")
    assert resp.status_code == 200
    info = resp.json()
    assert info["Codebase"] == "v4_6_release/"
    assert info["VersionCode"] == "v2026.11"
    assert info["CompanyID"] == COMPANY_ID
    assert info["CompanyName"] == "Demo MSP"
    assert info["IsCloud"] is True
    assert {"VersionNumber", "SiteUrl"} <= set(info)
    # An unknown company is a 200 whose body is JSON null, not a 404 (reference, Errors).
    unknown = httpx.get(f"{sandbox.connectwise_url}/login/companyinfo/other")
    assert (unknown.status_code, unknown.content, unknown.json()) == (200, b"null", None)


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        _basic(f"{COMPANY_ID}+{PUBLIC_KEY}:wrong-private-key"),
        _basic(f"{COMPANY_ID}+wrong-public:{PRIVATE_KEY}"),
        _basic(f"othercompany+{PUBLIC_KEY}:{PRIVATE_KEY}"),
        _basic(f"{PUBLIC_KEY}:{PRIVATE_KEY}"),  # no company+ prefix
        _basic(f"{COMPANY_ID}+{PUBLIC_KEY}"),  # no private key
    ],
)
def test_bad_credentials_are_401_without_echoing_them(sandbox: Sandbox, authorization: str | None) -> None:
    headers = {"clientId": CLIENT_ID, **({"Authorization": authorization} if authorization else {})}
    resp = httpx.get(sandbox.connectwise_url + PREFIX + "company/companies", headers=headers)
    body = assert_error(resp, 401, "Unauthorized", "Unauthorized")
    assert "wrong" not in resp.text and "othercompany" not in resp.text
    assert body["errors"][0]["field"] == "Authorization"


def test_company_id_is_case_insensitive_keys_are_not(sandbox: Sandbox) -> None:
    ok = {"Authorization": _basic(f"DEMOMSP+{PUBLIC_KEY}:{PRIVATE_KEY}"), "clientId": CLIENT_ID.upper()}
    assert httpx.get(sandbox.connectwise_url + PREFIX + "system/info", headers=ok).status_code == 200
    bad = {**ok, "Authorization": _basic(f"demomsp+{PUBLIC_KEY.upper()}:{PRIVATE_KEY}")}
    assert httpx.get(sandbox.connectwise_url + PREFIX + "system/info", headers=bad).status_code == 401


@pytest.mark.parametrize(
    ("client_id", "detail"), [(None, "Required"), ("", "Required"), ("not-ours", "InvalidClientId")]
)
def test_client_id_header_is_required_and_checked(
    sandbox: Sandbox, client_id: str | None, detail: str
) -> None:
    headers = {"Authorization": _basic(f"{COMPANY_ID}+{PUBLIC_KEY}:{PRIVATE_KEY}")}
    if client_id is not None:
        headers["clientId"] = client_id
    for path in ("company/companies", "finance/agreements/1578/additions", "system/audittrail"):
        resp = httpx.get(sandbox.connectwise_url + PREFIX + path, headers=headers)
        body = assert_error(resp, 400, "InvalidObject", detail)
        assert body["errors"][0]["field"] == "clientId"
        assert "not-ours" not in resp.text


def test_writes_need_auth_too(sandbox: Sandbox) -> None:
    url = sandbox.connectwise_url + PREFIX + "finance/agreements/1578/additions/501"
    resp = httpx.patch(
        url, json=[{"op": "replace", "path": "quantity", "value": 1}], headers={"clientId": CLIENT_ID}
    )
    assert_error(resp, 401, "Unauthorized")
    with client(sandbox.connectwise_url) as c:
        assert c.get("finance/agreements/1578/additions/501").json()["quantity"] == 38


def test_unknown_routes_and_methods_use_the_error_shape(cw: httpx.Client, sandbox: Sandbox) -> None:
    assert_error(cw.get("finance/nothing"), 404, "NotFound")
    assert_error(cw.delete("company/companies"), 405, "MethodNotAllowed")
    other_codebase = httpx.get(sandbox.connectwise_url + "/v2025_1/apis/3.0/company/companies")
    assert_error(other_codebase, 404, "NotFound")
