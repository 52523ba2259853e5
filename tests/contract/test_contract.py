"""Contract tests (issue 22 §5): every answer the sandbox gives our real clients (a run's reads and
writes in both invoice modes, preflight, the Test button, an apply's POST, the refusals of a
customized role and of a managed account) holds against the vendors' public definitions (specs/,
provenance in specs/README.md), strictly: a field a definition does not name fails, naming the
operation and the JSON path. Answers no definition covers are exempt by name, with the reason
(recorder.py); nothing else is skipped."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.__main__ import main
from billing_sync.connectwise import ConnectWiseClient
from billing_sync.errors import ApiError
from billing_sync.huntress import AccountRefused, HuntressClient
from tests.conftest import DEMO_SCENARIO
from tests.contract.definitions import SPECS, Operation, check, operation
from tests.contract.recorder import EXEMPT_OPERATIONS, Recorder, Verdicts
from tests.helpers.sandbox_setup import HUNTRESS_ROLE, role_scenario, use_connections
from tests.proof.helpers import run_steps

DAY = "2026-11-01"
# The fewest distinct operations (with status) the tests below must validate between them (each names
# its own): the lists may grow, never shrink below this, or the contract would cover less than it
# claims.
MIN_VALIDATED = 20
# What the demo plants on purpose, off the definition (scenarios/demo.json meta.planted.invalid_usage):
# counts the client must refuse. Each must be caught here, and nothing else may fail.
OFF_DEFINITION_VARIANTS = {"fractional", "null", "string"}


def demo() -> dict[str, Any]:
    """scenarios/demo.json, its Huntress rate limit lifted: the window's answers are the rate-limit
    tests' business, and 60 a minute would make these runs wait."""
    data = json.loads(DEMO_SCENARIO.read_text(encoding="utf-8"))
    data["huntress"]["rate_limit_per_minute"] = 100_000
    return data


def planted_organizations(data: dict[str, Any]) -> set[int]:
    planted = data["meta"]["planted"]["invalid_usage"]
    return {p["organization_id"] for p in planted if p["variant"] in OFF_DEFINITION_VARIANTS}


def organization_of(problem_where: str, body: Any) -> int | None:
    """The organization whose usage a problem sits in (a usage line's, or /v1/organizations/{id}'s)."""
    line = re.match(r"\$\.organization_usage_line_items\[(\d+)\]\.actual_usage\b", problem_where)
    if line:
        return body["organization_usage_line_items"][int(line[1])]["organization"]["id"]
    if problem_where.startswith("$.organization.actual_usages"):
        return body["organization"]["id"]
    return None


def drive_clients(sb: Any) -> None:
    """One of each read and write the run's reads leave: the push's (GET an addition, PATCH it), the
    Test button's, the settings page's picker, an apply's (its reads, the POST)."""
    cw = ConnectWiseClient.from_connection()
    assert cw.system_info()["version"]
    cw.catalog_page(5)
    cw.agreement_types()
    state = httpx.get(f"{sb.connectwise_url}/_sandbox/state", timeout=10).json()
    addition = next(a for a in state["additions"] if not a.get("cancelledDate"))
    agreement = next(a for a in state["agreements"] if a["id"] == addition["agreementId"])
    cw.companies_by_id([agreement["company"]["id"]])
    cw.agreements(company_ids=[agreement["company"]["id"]])
    cw.agreement(agreement["id"])
    cw.addition(agreement["id"], addition["id"])
    cw.agreement_additions(agreement["id"], addition["product"]["identifier"])
    created = cw.create_addition(agreement["id"], addition["product"]["identifier"], 3, date(2026, 11, 1))
    cw.set_quantity(agreement["id"], created["id"], 4)
    hc = HuntressClient.from_connection()
    hc.get("v1/account", "/v1/account")
    hc.invoice("reseller", hc.invoices("reseller")[0]["id"])


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorded = Recorder()
    recorded.install(monkeypatch)
    return recorded


def assert_holds(verdicts: Verdicts, must_validate: set[str], planted: set[int] = frozenset()) -> None:
    """Every answer judged; nothing departs from its definition but what the scenario plants (each
    of which must be caught); at least `must_validate` ("api METHOD template status") validated."""
    print("\n" + verdicts.summary())  # shown with -s / -rP
    assert not verdicts.unjudged, [f"{a.method} {a.url} → {a.status}" for a in verdicts.unjudged]
    unexplained = [
        f"{problem} ({url})"
        for problem, url, body in verdicts.problems
        if organization_of(problem.where, body) not in planted
    ]
    assert not unexplained, "the sandbox departs from the definitions:\n" + "\n".join(unexplained[:40])
    caught = {organization_of(problem.where, body) for problem, _, body in verdicts.problems}
    assert caught == set(planted), f"planted off-definition usage not caught: {set(planted) - caught}"
    validated = {f"{op} {status}" for op, status in verdicts.validated}
    assert must_validate <= validated, f"not validated: {sorted(must_validate - validated)}"


CW_READS = {
    "connectwise GET /company/companies 200",
    "connectwise GET /procurement/catalog 200",
    "connectwise GET /finance/agreements 200",
    "connectwise GET /finance/agreements/{parentId}/additions 200",
    "connectwise GET /finance/agreements/{parentId}/additions/{id} 200",
}
DEMO_RESELLER = CW_READS | {
    "connectwise PATCH /finance/agreements/{parentId}/additions/{id} 200",
    "connectwise POST /finance/agreements/{parentId}/additions 201",
    "connectwise GET /finance/agreements/{id} 200",
    "connectwise GET /finance/agreements/types 200",
    "connectwise GET /system/info 200",
    "huntress GET /v1/account 200",
    "huntress GET /v1/organizations 200",
    "huntress GET /v1/reseller/invoices 200",
    "huntress GET /v1/reseller/invoices/{id} 200",
    "huntress GET /v1/reseller/invoices/{id}/organization_usage_line_items 200",
}
DEMO_ACCOUNT = {
    "huntress GET /v1/invoices 200",
    "huntress GET /v1/organizations 200",
    "huntress GET /v1/organizations/{id} 200",
}
REFUSALS = {
    "connectwise PATCH /finance/agreements/{parentId}/additions/{id} 200",
    "connectwise PATCH /finance/agreements/{parentId}/additions/{id} 403",
    "huntress GET /v1/accounts/{account_id}/organizations 200",
}


def test_demo_month_reseller_run_preflight_and_the_desk(
    sandbox_factory, monkeypatch, eng, tmp_path: Path, recorder: Recorder, capsys
) -> None:
    """The demo month: a run's reads and its writes (GET, then PATCH an addition), preflight's reads,
    and those of the Test button and an apply (its POST)."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.delenv("BILLING_SYNC_TENANTS_FILE", raising=False)
    data = demo()
    sb = sandbox_factory(data)
    use_connections(monkeypatch, sb)
    # A run's reads, as its tasks make them; its writes (GET the addition, PATCH it) are
    # drive_clients's, without validate and reconcile's seconds between.
    run = run_steps(eng, "contract-reseller", DAY, stop_before="validate")
    assert run.error is None, run.describe()
    assert main(["preflight", "--today", "2026-11-20"]) == 0
    capsys.readouterr()  # preflight's table: what it read is what counts here
    drive_clients(sb)
    verdicts = recorder.judge(sb.huntress_url, sb.connectwise_url)
    assert_holds(verdicts, DEMO_RESELLER, planted_organizations(data))


DEMO_ACCOUNT_ONLY = DEMO_ACCOUNT | {"huntress GET /v1/invoices/{id} 200"}


def test_the_tests_validate_enough_operations() -> None:
    assert len(DEMO_RESELLER | DEMO_ACCOUNT_ONLY | REFUSALS) >= MIN_VALIDATED


def test_an_exempt_operation_is_one_no_definition_covers() -> None:
    """Were a definition vendored that covers an exempt operation, its exemption would hide it."""
    for (api, method, template), reason in EXEMPT_OPERATIONS.items():
        concrete = re.sub(r"\{[^}]+\}", "1", template)
        assert operation(api, method, concrete) is None, (template, reason)
        assert len(reason) > 40


def test_demo_month_account_mode(sandbox_factory, monkeypatch, eng, recorder: Recorder) -> None:
    """Account mode's Huntress reads (/v1/invoices, /v1/organizations/{id} with actual_usages); its
    ConnectWise reads are the reseller run's."""
    data = demo()
    sb = sandbox_factory(data)
    use_connections(monkeypatch, sb)
    variable = {"invoice_source": "account"}
    run = run_steps(eng, "contract-account", DAY, variable=variable, stop_before="extract_connectwise")
    assert run.error is None, run.describe()
    hc = HuntressClient.from_connection()
    hc.invoice("account", hc.invoices("account")[0]["id"])
    # The demo gives its organizations' actual_usages as they are, nothing planted in them.
    assert_holds(recorder.judge(sb.huntress_url, sb.connectwise_url), DEMO_ACCOUNT_ONLY)


def test_refusals(sandbox_factory, monkeypatch, recorder: Recorder) -> None:
    """Issue 22 §3, §4: a role customized to one agreement answers ConnectWise's 403 Security to an
    edit of another; a managed account answers Huntress's 403, another its organizations."""
    role = {
        **HUNTRESS_ROLE,
        "levels": {
            **HUNTRESS_ROLE["levels"],
            "finance/agreements": {"add": "none", "edit": "customized", "delete": "none", "inquire": "all"},
        },
        "customized_agreements": [1578],
    }
    data = role_scenario(role, forbidden_account=True)
    readable = {"id": 8, "name": "East Client", "subdomain": "east", "forbidden": False}
    data["huntress"]["managed_accounts"].append(
        readable | {"organizations": [{"id": 801, "name": "East Co", "key": "east"}]}
    )
    sb = sandbox_factory(data)
    use_connections(monkeypatch, sb)
    hc = HuntressClient.from_connection()
    with pytest.raises(AccountRefused):
        hc.account_organizations(7)
    assert [o["id"] for o in hc.account_organizations(8) or []] == [801]
    cw = ConnectWiseClient.from_connection()
    cw.set_quantity(1578, 501, 31)
    with pytest.raises(ApiError, match="403"):
        cw.set_quantity(1579, 502, 31)
    assert_holds(recorder.judge(sb.huntress_url, sb.connectwise_url), REFUSALS)


# --- the validator itself ------------------------------------------------------------------------


def test_the_vendored_definitions_are_the_recorded_ones() -> None:
    readme = (SPECS / "README.md").read_text(encoding="utf-8")
    recorded = dict(re.findall(r"\| `([\w.-]+\.json)` \|[^\n]*?sha256 `([0-9a-f]{64})`", readme))
    assert set(recorded) == {"huntress-openapi.json", "connectwise-manage-2026.4-get.json"}
    for name, digest in recorded.items():
        assert hashlib.sha256((SPECS / name).read_bytes()).hexdigest() == digest, name
    listed = set(re.findall(r"^\| `([\w.-]+\.json)` \|", readme, re.MULTILINE))
    assert listed == {p.name for p in SPECS.glob("*.json")}, "every vendored file has its source recorded"


ADDITION = Operation("connectwise", "GET", "/finance/agreements/{parentId}/additions/{id}")


def test_the_validator_names_the_operation_the_path_and_the_field() -> None:
    assert operation("connectwise", "GET", "/finance/agreements/12/additions/7") == ADDITION
    assert operation("connectwise", "GET", "/finance/agreements/types") == Operation(
        "connectwise", "GET", "/finance/agreements/types"
    )
    good = {"id": 7, "quantity": 3.0, "product": {"id": 1, "identifier": "X"}, "agreementId": None}
    assert check(ADDITION, 200, good) == []  # nullable admits null; fields= trims: nothing required
    [extra] = check(ADDITION, 200, {**good, "product": {"id": 1, "shoeSize": 4}})
    assert (extra.where, str(extra.operation)) == ("$.product", str(ADDITION))
    assert "shoeSize" in extra.message and "undeclared" in extra.message
    [typed] = check(ADDITION, 200, {**good, "quantity": "3"})
    assert typed.where == "$.quantity" and "type" in typed.message
    [null] = check(ADDITION, 200, {**good, "id": None})  # `id` is not nullable
    assert null.where == "$.id"
    [status] = check(ADDITION, 201, good)
    assert "undeclared" in status.message


def test_error_bodies_and_huntress_readings() -> None:
    error = {"code": "Security", "message": "no", "errors": []}
    assert check(ADDITION, 403, error) == []
    assert check(ADDITION, 403, {**error, "status": 403})[0].where == "$"
    org = Operation("huntress", "GET", "/v1/organizations/{id}")
    required = {"microsoft_365_tenant_id": "t", "microsoft_365_users_count": 0, "notify_emails": []}
    usages = {"edr": {"billable_agents_count": 4}, "sat": {"learners_count": 2}}
    assert check(org, 200, {"organization": {"id": 1, **required, "actual_usages": usages}}) == []
    assert check(org, 200, {"organization": {"id": 1, **required, "actual_usages": json.dumps(usages)}}) == []
    bad = {"edr": {"billable_agents_count": 4, "extra": 1}}
    assert check(org, 200, {"organization": {"id": 1, **required, "actual_usages": bad}})
    assert check(org, 200, {"organization": {"id": 1, "actual_usages": usages}})  # Huntress's required
    lines = Operation("huntress", "GET", "/v1/reseller/invoices/{id}/organization_usage_line_items")
    line = {"id": 1, "account": {"id": 1, "name": "a", "subdomain": "a"}, "actual_usage": {"edr": 2}}
    page = {"organization_usage_line_items": [line], "pagination": {}}
    assert check(lines, 200, page) == []
    line["account"]["region"] = "eu"
    assert [p.where for p in check(lines, 200, page)] == ["$.organization_usage_line_items[0].account"]
