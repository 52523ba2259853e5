"""ConnectWise sandbox: the API member's security role (docs/contract.md §5, issue 22 §3).

What the role forbids is answered 403 with ConnectWise's `Security` body; a customized agreements
level allows only the listed agreements; GET /system/mySecurity tells the member its own levels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import CONNECTWISE_SECTION, make_scenario

PREFIX = "/v4_6_release/apis/3.0"
SECURITY = {
    "code": "Security",
    "message": "You do not have security permission to perform this action.",
    "errors": [],
}


def scenario(role: dict[str, Any] | None) -> dict[str, Any]:
    data = make_scenario(1)
    cw = data["connectwise"] = {**CONNECTWISE_SECTION}
    second = {**CONNECTWISE_SECTION["agreements"][0], "id": 1579, "name": "Second"}
    second["additions"] = [{**second["additions"][0], "id": 502}]
    cw["agreements"] = [CONNECTWISE_SECTION["agreements"][0], second]
    if role is not None:
        cw["security_role"] = role
    return data


def client(sb: Sandbox) -> httpx.Client:
    return httpx.Client(
        base_url=sb.connectwise_url + PREFIX,
        auth=("demomsp+pub", "priv"),
        headers={"clientId": CONNECTWISE_SECTION["client_id"]},
        timeout=10,
    )


@pytest.fixture(scope="module")
def customized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    role = {
        "name": "Billing sync, one agreement",
        "levels": {
            "finance/agreements": {"inquire": "all", "edit": "customized"},
            "procurement/catalog": {"inquire": "none"},
        },
        "customized_agreements": [1578],
    }
    sb = start_sandbox(scenario(role), tmp_path_factory.mktemp("cw-role"))
    yield sb
    sb.stop()


def test_a_customized_edit_writes_the_listed_agreement_only(customized: Sandbox) -> None:
    with client(customized) as api:
        patch = [{"op": "replace", "path": "quantity", "value": 40}]
        assert api.patch("/finance/agreements/1578/additions/501", json=patch).status_code == 200
        refused = api.patch("/finance/agreements/1579/additions/502", json=patch)
        assert (refused.status_code, refused.json()) == (403, SECURITY)
        # Add and Delete are left out of the area: None.
        assert api.delete("/finance/agreements/1578/additions/501").status_code == 403
        assert (
            api.post("/finance/agreements/1578/additions", json={"product": {"id": 752}}).status_code == 403
        )
        assert [a["id"] for a in api.get("/finance/agreements").json()] == [1578, 1579]  # Inquire All
        assert api.get("/procurement/catalog").status_code == 403
        assert api.get("/company/companies").status_code == 200  # an area the role does not name
        httpx.post(f"{customized.connectwise_url}/_sandbox/reset", timeout=10).raise_for_status()


def test_my_security_tells_the_member_its_levels(customized: Sandbox) -> None:
    with client(customized) as api:
        rows = {r["moduleFunctionName"]: r for r in api.get("/system/mySecurity").json()}
    agreements, catalog = rows["Agreements"], rows["Product Catalog"]
    levels = ("addLevel", "editLevel", "deleteLevel", "inquireLevel")
    assert [agreements[k] for k in levels] == ["None", "Customize", "None", "All"]
    assert agreements["moduleIdentifier"] == "Finance" and agreements["customFlag"] is True
    assert catalog["inquireLevel"] == "None"
    assert rows["Company Maintenance"]["inquireLevel"] == "All"


def test_a_customized_inquire_lists_the_listed_agreements(tmp_path) -> None:
    role = {"levels": {"finance/agreements": {"inquire": "customized"}}, "customized_agreements": [1579]}
    sb = start_sandbox(scenario(role), tmp_path)
    try:
        with client(sb) as api:
            assert [a["id"] for a in api.get("/finance/agreements").json()] == [1579]
            assert api.get("/finance/agreements/count").json() == {"count": 1}
            assert api.get("/finance/agreements/1578").status_code == 403
            assert api.get("/finance/agreements/1578/additions").status_code == 403
            assert api.get("/finance/agreements/1579/additions").status_code == 200
            types = api.get("/finance/agreements/types").json()
            assert "Managed Services" in [t["name"] for t in types]
    finally:
        sb.stop()


def test_without_a_role_everything_is_allowed(tmp_path) -> None:
    sb = start_sandbox(scenario(None), tmp_path)
    try:
        with client(sb) as api:
            rows = api.get("/system/mySecurity").json()
            assert {r["editLevel"] for r in rows} == {"All"}
            patch = [{"op": "replace", "path": "quantity", "value": 40}]
            assert api.patch("/finance/agreements/1579/additions/502", json=patch).status_code == 200
    finally:
        sb.stop()
