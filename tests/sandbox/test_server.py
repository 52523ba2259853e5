"""The sandbox process: its CLI, the JSON line, clean stops, scenario validation, and the admin
routes and fault injection both servers share."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_sandbox.common import Faults
from billing_sandbox.huntress import HuntressSandbox
from billing_sandbox.scenario import ScenarioError, load_scenario, validate_scenario
from tests.conftest import DEMO_SCENARIO, Sandbox, start_sandbox
from tests.sandbox import API_KEY, API_SECRET, make_scenario

# Huntress's defaults include the faults only it takes (rate_limit_headers, foreign_requests_per_minute).
HUNTRESS_FAULTS = Faults.defaults(HuntressSandbox.FAULT_OPTIONS).to_json()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(make_scenario(), tmp_path_factory.mktemp("server"))
    yield sb
    sb.stop()


@pytest.fixture
def hunt(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client


@pytest.fixture
def cw(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.connectwise_url, timeout=10) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing_sandbox", *args], capture_output=True, text=True, timeout=timeout
    )


# --- process ----------------------------------------------------------------------------------------------
# The integration-marked tests start fresh interpreters (most of a CPU second each): `make test` runs
# them, the fast loop does not; the module's shared sandbox still starts through its JSON line there.


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_prints_one_json_line_and_stops_cleanly(sandbox_factory: Any, sig: signal.Signals) -> None:
    sb = sandbox_factory(make_scenario())
    for url in (sb.huntress_url, sb.connectwise_url):
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/_sandbox/requests").status_code == 200
    assert sb.huntress_url != sb.connectwise_url
    sb.process.send_signal(sig)
    out, err = sb.process.communicate(timeout=10)
    assert sb.process.returncode == 0, err
    assert out == ""  # the JSON line was the only output, already read by the fixture


@pytest.mark.integration
def test_explicit_ports(sandbox_factory: Any) -> None:
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    sb = sandbox_factory(
        make_scenario(), "--huntress-port", str(ports[0]), "--connectwise-port", str(ports[1])
    )
    assert sb.huntress_url == f"http://127.0.0.1:{ports[0]}"
    assert sb.connectwise_url == f"http://127.0.0.1:{ports[1]}"


def bad(mutate: Any) -> dict[str, Any]:
    scenario = make_scenario()
    mutate(scenario)
    return scenario


BAD_SCENARIOS = {
    "line org id not an integer": (
        lambda s: s["huntress"]["invoices"][0]["lines"][2].update(organization_id="abc"),
        "huntress.invoices[0].lines[2].organization_id: 'abc' is not of type 'integer'",
    ),
    "float id": (
        lambda s: s["huntress"]["organizations"][0].update(id=101.0),
        "huntress.organizations[0].id: 101.0 is not of type 'integer'",
    ),
    "missing required": (
        lambda s: s["huntress"]["account"].pop("subdomain"),
        "huntress.account: 'subdomain' is a required property",
    ),
    "bad status": (
        lambda s: s["huntress"]["invoices"][0].update(status="settled"),
        "huntress.invoices[0].status: 'settled' is not one of",
    ),
    "bad timestamp": (
        lambda s: s["huntress"]["invoices"][0].update(created_at="yesterday"),
        "huntress.invoices[0].created_at: 'yesterday' is not a 'date-time'",
    ),
    "typo in a huntress key": (
        lambda s: s["huntress"]["organizations"][1].update(nmae="x"),
        "huntress.organizations[1]: Additional properties are not allowed ('nmae' was unexpected)",
    ),
    "unknown organization": (
        lambda s: s["huntress"]["invoices"][0]["lines"][0].update(organization_id=999),
        "huntress.invoices[0].lines[0].organization_id: 999 is not in huntress.organizations",
    ),
    "duplicate id": (
        lambda s: s["huntress"]["organizations"][2].update(id=101),
        "huntress.organizations[2].id: 101 is not unique",
    ),
    "connectwise addition": (
        lambda s: s["connectwise"]["agreements"][0]["additions"][0].pop("product_id"),
        "connectwise.agreements[0].additions[0]: 'product_id' is a required property",
    ),
    "connectwise company id": (
        lambda s: s["connectwise"]["companies"][0].update(id="250"),
        "connectwise.companies[0].id: '250' is not of type 'integer'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SCENARIOS))
def test_invalid_scenarios_name_the_field(case: str) -> None:
    mutate, expected = BAD_SCENARIOS[case]
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(bad(mutate))
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


@pytest.mark.integration
def test_cli_exits_2_on_a_bad_scenario(tmp_path: Path) -> None:
    mutate, expected = BAD_SCENARIOS["line org id not an integer"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad(mutate)))
    result = run_cli("--scenario", str(path))
    assert result.returncode == 2 and result.stdout == ""
    assert expected in result.stderr and str(path) in result.stderr
    for text, why in [("{not json", "not valid JSON"), ('{"a": NaN}', "NaN is not valid JSON")]:
        path.write_text(text)
        result = run_cli("--scenario", str(path))
        assert result.returncode == 2 and why in result.stderr
    result = run_cli("--scenario", str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_usage_values_and_names_accept_anything() -> None:
    scenario = make_scenario()
    usage = {"edr": -1, "itdr": 2.5, "sat": "twelve", "siem": None, "ispm": 10**40, "new": {"x": [1]}}
    scenario["huntress"]["invoices"][0]["lines"][0]["actual_usage"] = usage
    scenario["huntress"]["organizations"][0]["name"] = "<b>Ünïcødé</b> & ' \" 🚀"
    scenario["connectwise"]["companies"][0].update(deletedFlag=True, status={"id": 1, "name": "Active"}, x=1)
    scenario["connectwise"]["agreements"][0].update(
        endDate=None, dateCancelled=None, billToCompany={"id": 250}
    )
    scenario["connectwise"]["agreements"][0]["additions"][0].update(
        agreementStatus="Active",
        additionStatus="Active",
        lessIncluded=2,
        unitPrice=3.5,
        billCustomer="Billable",
    )
    scenario["meta"] = {"planted": [{"kind": "invalid_usage", "organization_id": 101}]}
    validate_scenario(scenario)


def test_demo_scenario_is_valid() -> None:
    load_scenario(DEMO_SCENARIO)


@pytest.mark.integration
def test_generate_is_delegated() -> None:
    result = run_cli("generate", "--help")
    assert result.returncode == 0 and "--organizations" in result.stdout


# --- admin routes ------------------------------------------------------------------------------------------


def test_requests_are_counted_by_route_and_status(hunt: httpx.Client) -> None:
    for url in ["/v1/account", "/v1/organizations/101", "/v1/organizations/102", "/v1/organizations/9"]:
        hunt.get(url)
    httpx.get(str(hunt.base_url) + "/v1/account")  # no credentials: counted as a 401
    hunt.get("/_sandbox/state")  # admin routes are not counted
    counts = hunt.get("/_sandbox/requests").json()
    assert counts["server"] == "huntress" and counts["total"] == 5
    assert counts["by_route"] == {"GET /v1/account": 2, "GET /v1/organizations/{id}": 3}
    assert counts["by_status"] == {"200": 3, "404": 1, "401": 1}
    assert counts["by_route_status"]["GET /v1/organizations/{id}"] == {"200": 2, "404": 1}
    assert "log" not in counts
    since = time.time()
    hunt.get("/v1/invoices", params={"limit": 2, "status": "paid"})
    log = hunt.get("/_sandbox/requests", params={"log": 1, "since": since}).json()["log"]
    assert [(e["method"], e["path"], e["query"], e["status"]) for e in log] == [
        ("GET", "/v1/invoices", "limit=2&status=paid", "200")
    ]
    assert log[0]["route"] == "GET /v1/invoices" and log[0]["time"] >= since and log[0]["duration_ms"] >= 0


def test_reset_restores_data_and_clears_counters_and_faults(hunt: httpx.Client) -> None:
    before = hunt.get("/_sandbox/state").json()
    hunt.get("/v1/account")
    hunt.post("/_sandbox/faults", json={"latency_ms": 5, "status_rate": {"500": 0.5}})
    assert hunt.post("/_sandbox/reset").json() == {"reset": True, "server": "huntress"}
    assert hunt.get("/_sandbox/requests").json()["total"] == 0
    assert hunt.get("/_sandbox/faults").json() == HUNTRESS_FAULTS
    assert hunt.get("/_sandbox/state").json() == before


def test_connectwise_has_the_same_admin_routes(cw: httpx.Client) -> None:
    assert isinstance(cw.get("/_sandbox/state").json(), dict)
    cw.get("/no/such/route")
    counts = cw.get("/_sandbox/requests").json()
    assert counts["server"] == "connectwise" and counts["total"] == 1
    assert cw.post("/_sandbox/faults", json={"status_rate": {"500": 1.0}}).status_code == 200
    assert cw.get("/anything").status_code == 500
    assert cw.post("/_sandbox/reset").status_code == 200
    assert cw.get("/_sandbox/requests").json()["total"] == 0


def test_reset_restores_connectwise_writes(cw: httpx.Client) -> None:
    section = make_scenario()["connectwise"]
    before = cw.get("/_sandbox/state").json()
    auth = (f"{section['company_id']}+{section['public_key']}", section["private_key"])
    headers = {"clientId": section["client_id"]}
    codebase = cw.get(f"/login/companyinfo/{section['company_id']}").json()["Codebase"]
    url = f"/{codebase}apis/3.0/finance/agreements/1578/additions/501"
    patch = [{"op": "replace", "path": "quantity", "value": 41}]
    assert cw.patch(url, json=patch, auth=auth, headers=headers).json()["quantity"] == 41
    after = cw.get("/_sandbox/state").json()
    assert next(a for a in after["additions"] if a["id"] == 501)["quantity"] == 41
    assert cw.get("/_sandbox/requests").json()["by_route_status"] == {
        "GET /login/companyinfo/{company_id}": {"200": 1},
        f"PATCH /{codebase}apis/3.0/finance/agreements/{{id}}/additions/{{additionId}}": {"200": 1},
    }
    cw.post("/_sandbox/reset").raise_for_status()
    assert cw.get("/_sandbox/state").json() == before
    assert cw.get("/_sandbox/requests").json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"latency_ms": -1},
        {"status_rate": {"500": 1.5}},
        {"status_rate": {"200": 0.1}},
        {"status_rate": {"500": 0.6}, "reset_rate": 0.6},
        {"retry_after_s": "soon"},
        {"seed": 1.5},
        {"unknown": 1},
        [],
        "not json",
    ],
)
def test_bad_faults_are_400(hunt: httpx.Client, body: Any) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = hunt.post("/_sandbox/faults", content=content)
    assert response.status_code == 400 and "invalid faults" in response.json()["error"]
    assert hunt.get("/_sandbox/faults").json() == HUNTRESS_FAULTS


# --- faults ---------------------------------------------------------------------------------------------------


def test_partial_faults_take_the_defaults(hunt: httpx.Client) -> None:
    effective = hunt.post("/_sandbox/faults", json={"status_rate": {"503": 0.25}}).json()
    assert effective["status_rate"] == {"500": 0.0, "429": 0.0, "503": 0.25}
    assert effective["latency_ms"] == 0 and effective["retry_after_s"] == 1 and effective["seed"] == 0


def test_latency_is_applied(hunt: httpx.Client) -> None:
    def fastest_of(n: int) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            hunt.get("/v1/account").raise_for_status()
            times.append(time.perf_counter() - start)
        return min(times)

    baseline = fastest_of(3)
    # A delay far above any loopback round trip, so a busy machine cannot blur the two.
    hunt.post("/_sandbox/faults", json={"latency_ms": 800}).raise_for_status()
    assert fastest_of(2) >= 0.8 > baseline
    start = time.perf_counter()
    hunt.get("/_sandbox/requests").raise_for_status()  # admin routes are never delayed
    assert time.perf_counter() - start < 0.8


def status_sequence(client: httpx.Client, faults: dict[str, Any], n: int = 60) -> list[int]:
    client.post("/_sandbox/reset").raise_for_status()
    client.post("/_sandbox/faults", json=faults).raise_for_status()
    return [client.get("/v1/account").status_code for _ in range(n)]


def test_status_faults_repeat_with_the_seed(hunt: httpx.Client) -> None:
    faults = {"status_rate": {"500": 0.2, "429": 0.3}, "seed": 42, "retry_after_s": 7}
    first = status_sequence(hunt, faults)
    assert status_sequence(hunt, faults) == first
    assert 5 <= first.count(500) <= 25 and 8 <= first.count(429) <= 30 and first.count(200) >= 15
    assert status_sequence(hunt, {**faults, "seed": 43}) != first
    counts = hunt.get("/_sandbox/requests").json()
    assert counts["faults_injected"].get("500", 0) + counts["faults_injected"].get("429", 0) > 0


def test_injected_429_carries_retry_after_and_500_does_not(hunt: httpx.Client) -> None:
    hunt.post("/_sandbox/faults", json={"status_rate": {"429": 1.0}, "retry_after_s": 4}).raise_for_status()
    limited = hunt.get("/v1/invoices")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    assert limited.json()["status"] == 429
    hunt.post("/_sandbox/faults", json={"status_rate": {"500": 1.0}}).raise_for_status()
    failed = hunt.get("/v1/invoices")
    assert failed.status_code == 500 and "retry-after" not in failed.headers


def test_reset_fault_drops_the_connection(hunt: httpx.Client) -> None:
    hunt.post("/_sandbox/faults", json={"reset_rate": 1.0}).raise_for_status()
    with pytest.raises(httpx.TransportError):
        hunt.get("/v1/account")
    # The server survives: a fresh connection works once faults are cleared.
    hunt.post("/_sandbox/faults", json={}).raise_for_status()
    assert hunt.get("/v1/account").status_code == 200
    counts = hunt.get("/_sandbox/requests").json()
    assert counts["faults_injected"] == {"reset": 1} and counts["by_status"]["reset"] == 1


def test_admin_routes_are_never_faulted(hunt: httpx.Client) -> None:
    hunt.post("/_sandbox/faults", json={"reset_rate": 0.5, "status_rate": {"500": 0.5}}).raise_for_status()
    for _ in range(20):
        assert hunt.get("/_sandbox/requests").status_code == 200
    assert hunt.get("/_sandbox/requests").json()["total"] == 0


def test_admin_routes_answer_loopback_clients_only() -> None:
    from billing_sandbox.common import _is_loopback

    assert all(_is_loopback({"client": (host, 1)}) for host in ["127.0.0.1", "127.8.9.1", "::1"])
    assert not any(_is_loopback({"client": (host, 1)}) for host in ["10.0.0.5", "192.168.1.2", "example.org"])
    assert not _is_loopback({"client": None})


def test_wrong_method_is_405_and_counted_under_its_route(hunt: httpx.Client) -> None:
    response = hunt.post("/v1/account")
    assert response.status_code == 405 and response.json()["status"] == 405
    assert hunt.get("/_sandbox/requests").json()["by_route"] == {"POST /v1/account": 1}
