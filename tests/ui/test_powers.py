"""Issue 21 §3 at the level of the app: one power per area, granted to roles per tenant in its
settings' `powers`, else the earlier rule. The rule itself (`powers.decide`) over a stand-in of the
auth manager's answers, then the review app with `security.airflow_auth` asking a per-DAG auth
manager (test_tenants_pages.py's) about users whose roles are named in the tenants' Variables. The
same through Airflow's real login is test_powers_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException, Request

from billing_sync.config import POWER_AREAS, load_settings
from billing_sync.review.powers import LABELS, decide
from billing_sync.review.security import AirflowRights, airflow_auth
from tests.helpers.two_tenants import NORTH_DAG, SOUTH_DAG, PerDagAuthManager, Site, make_site

VARIABLE = "billing_north"
ACTIONS = ("quarantine", "mappings", "approvals", "overrides", "apply")


# --- the rule ---------------------------------------------------------------------------------------


class Answers:
    """The auth manager's answers, as `powers.Rights` asks them, and which questions were asked."""

    def __init__(
        self, *, get: bool = True, put_runs: bool = False, put_dag: bool = False, put_var: bool = False
    ):
        self.answers = {("GET", True): get, ("PUT", True): put_runs, ("PUT", False): put_dag}
        self.put_var = put_var
        self.asked: list[str] = []

    def may_dag(self, user: Any, method: Any, dag_id: str, on_runs: bool = True) -> bool:
        self.asked.append(f"{method} {'runs' if on_runs else 'dag'}")
        return self.answers[(method, on_runs)]

    def may_edit_config(self, user: Any, variable: str) -> bool:
        self.asked.append(f"PUT {variable}")
        return self.put_var


def areas(
    answers: Answers, variable: dict[str, Any] | None = None, roles: frozenset[str] = frozenset()
) -> set[str]:
    held = decide(
        answers,
        None,
        set(roles),
        dag_id=NORTH_DAG,
        variable=VARIABLE,
        settings=lambda: load_settings(variable),
    )
    return set(held.areas)


def test_the_defaults_keep_the_earlier_behaviour() -> None:
    viewer, user = Answers(), Answers(put_runs=True)
    op = Answers(put_runs=True, put_dag=True, put_var=True)
    assert areas(viewer) == {"read"}
    assert areas(user) == {"read", "quarantine", "apply"}
    assert areas(op) == set(POWER_AREAS)
    # DAG edit without the Variable: no mappings, approvals, overrides or settings.
    assert areas(Answers(put_runs=True, put_dag=True)) == {"read", "quarantine", "apply"}
    # mapping_roles decide mappings, approvals and overrides as they decided mapping; not settings.
    named = {"mapping_roles": ["Billing"]}
    assert areas(user, named, frozenset({"billing"})) == {
        "read",
        "quarantine",
        "apply",
        "mappings",
        "approvals",
        "overrides",
    }
    assert areas(op, named) == {"read", "quarantine", "apply", "settings"}
    assert areas(Answers(), named, frozenset({"billing"})) == {"read"}, "mapping_roles on top of PUT on runs"


def test_roles_named_for_an_area_decide_it_alone_with_reading_the_dag() -> None:
    powers = {"powers": {"settings": ["Config"], "quarantine": ["Clerk", "Op"], "read": ["Reader"]}}
    op = Answers(put_runs=True, put_dag=True, put_var=True)
    assert areas(Answers(), powers, frozenset({"config", "reader"})) == {"settings", "read"}
    assert areas(Answers(), powers, frozenset({"clerk"})) == {"quarantine"}, "read names roles too"
    # An op without the named roles keeps what the areas left out give them, nothing named.
    assert areas(op, powers) == {"mappings", "approvals", "overrides", "apply"}
    assert areas(op, powers, frozenset({"op"})) == {
        "mappings",
        "approvals",
        "overrides",
        "apply",
        "quarantine",
    }
    # Without GET on the tenant's DAG no role holds anything: the auth manager says who sees a tenant.
    assert areas(Answers(get=False), powers, frozenset({"config", "clerk", "reader"})) == set()


def test_the_questions_are_asked_only_when_an_area_needs_them() -> None:
    every = {"powers": {a: ["Someone"] for a in POWER_AREAS}}
    answers = Answers(put_runs=True, put_dag=True, put_var=True)
    assert areas(answers, every, frozenset({"someone"})) == set(POWER_AREAS)
    assert answers.asked == ["GET runs"]


def test_a_broken_variable_leaves_reading_alone_and_says_why() -> None:
    from billing_sync.errors import ConfigError

    def broken() -> None:
        try:
            load_settings('{"powers": {"quarantine": []}}')
        except ConfigError:
            return None
        raise AssertionError("an area with no role is refused by the settings model")

    op = Answers(put_runs=True, put_dag=True, put_var=True)
    held = decide(op, None, {"op"}, dag_id=NORTH_DAG, variable=VARIABLE, settings=broken)
    assert set(held.areas) == {"read"}
    assert held.refusal("quarantine", "north") == (
        f"This needs the Quarantine power on tenant north, and it is refused until the Variable {VARIABLE} "
        "is valid JSON with valid settings"
    )
    former = decide(op, None, {"op"}, dag_id=NORTH_DAG, variable=None, settings=lambda: None)
    assert set(former.areas) == {"read"}, "a tenant gone from the tenants file is read only"
    unseen = decide(Answers(get=False), None, set(), dag_id=NORTH_DAG, variable=VARIABLE, settings=broken)
    assert unseen.refusal("settings", "north") == "Forbidden", (
        "a tenant the user may not read is not described"
    )


# --- the app, asking a per-DAG auth manager -----------------------------------------------------------


def powers_of(tenant: str) -> str:
    """Each action area held by a role of its own per tenant: ``north_quarantine``, ``south_apply``."""
    return json.dumps({"powers": {area: [f"{tenant}_{area}"] for area in ACTIONS}})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    for t in ("north", "south"):
        monkeypatch.setenv(f"AIRFLOW_VAR_BILLING_{t.upper()}", powers_of(t))
    # Everyone reads both tenants; no one may edit anything in Airflow: only the named roles act.
    readers = {f"north_{a}": {"GET": {NORTH_DAG, SOUTH_DAG}} for a in ACTIONS}
    manager = PerDagAuthManager(readers)
    rights = AirflowRights(manager=lambda: manager, team_of=lambda dag_id: None)

    def user(request: Request) -> SimpleAuthManagerUser:
        name = request.headers.get("x-user")
        if not name:
            raise HTTPException(401, "Not authenticated")
        return SimpleAuthManagerUser(username=name, role=name)  # each user's one role is its name

    for s in make_site(tmp_path, monkeypatch, airflow_auth(rights)):
        s.sub.dependency_overrides[get_user] = user
        yield s


def post(site: Site, user: str, tenant: str, path: str, form: dict[str, str]) -> Any:
    headers = {"X-User": user}
    html = site.page(f"/quarantine?tenant={tenant}", headers)
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html).group(1)
    return site.client.post(
        f"/billing-review{path}?tenant={tenant}",
        data={**form, "csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )


def attempts(site: Site, tenant: str) -> dict[str, tuple[str, dict[str, str]]]:
    """One POST of each action area on `tenant`'s rows."""
    ids = site.ids[tenant]
    return {
        "quarantine": (
            f"/quarantine/{ids['unmapped_organization']}",
            {"action": "dismiss", "note": "n", "back": "row"},
        ),
        "mappings": ("/mapping", {"organization_id": "1", "company_id": "10"}),
        "approvals": (f"/approvals/{ids['approval']}/revoke", {}),
        "overrides": (f"/overrides/{ids['override']}/retire", {}),
        "apply": ("/rerun", {"billing_date": "2026-11-01", "back": "mapping"}),
    }


@pytest.mark.parametrize("area", ACTIONS)
def test_a_role_named_for_one_area_does_that_and_nothing_else_on_its_tenant_only(
    site: Site, area: str
) -> None:
    user = f"north_{area}"
    for other, (path, form) in attempts(site, "north").items():
        done = post(site, user, "north", path, form)
        if other == area:
            # Held: the action goes through (apply reaches Airflow, which this stand-in does not run).
            assert done.status_code in (303, 401), (other, done.status_code, done.text)
        else:
            assert (done.status_code, done.json()["detail"]) == (
                403,
                f"This needs the {LABELS[other]} power on tenant north; ask an administrator",
            ), other
    path, form = attempts(site, "south")[area]
    refused = post(site, user, "south", path, form)
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        f"This needs the {LABELS[area]} power on tenant south; ask an administrator",
    ), "south names its own roles"


def test_pages_offer_each_role_its_area_only(site: Site) -> None:
    row = site.ids["north"]["unmapped_organization"]
    clerk = site.page("/quarantine?tenant=north&view=rows", {"X-User": "north_quarantine"})
    assert f'data-testid="actions-{row}"' in clerk and 'value="resolve_apply"' not in clerk
    assert 'data-testid="rerun-' not in clerk
    assert "Your powers on this tenant: Quarantine." in clerk
    mapper = site.page("/mapping?tenant=north", {"X-User": "north_mappings"})
    assert 'action="/billing-review/mapping/2/delete?tenant=north"' in mapper
    assert 'name="apply"' not in mapper, "no 'and apply now' without the apply power"
    assert 'data-testid="read-only"' in site.page("/quarantine?tenant=south", {"X-User": "north_mappings"})
    south = site.page("/quarantine?tenant=south&view=rows", {"X-User": "north_quarantine"})
    assert 'data-testid="actions-' not in south and "Read only" in south
    overrides = site.page("/overrides?tenant=north", {"X-User": "north_overrides"})
    assert "Add override" in overrides and "Add and apply now" not in overrides
    assert "Add override" not in site.page("/overrides?tenant=north", {"X-User": "north_approvals"})
    # A held change's row: the approver is offered Approve, the overrider Adjust, neither the row's actions.
    held = site.ids["north"]["change_exceeds_limit"]
    approver = site.page(f"/quarantine/{held}?tenant=north", {"X-User": "north_approvals"})
    assert f'data-testid="approve-{held}"' in approver and f'data-testid="adjust-{held}"' not in approver
    overrider = site.page(f"/quarantine/{held}?tenant=north", {"X-User": "north_overrides"})
    assert f'data-testid="adjust-{held}"' in overrider and f'data-testid="approve-{held}"' not in overrider
    assert 'data-testid="actions-' not in approver + overrider


def test_a_decision_and_apply_now_without_apply_is_recorded_and_says_so(site: Site) -> None:
    from billing_sync import store

    row = site.ids["north"]["unmapped_organization"]
    done = post(
        site,
        "north_quarantine",
        "north",
        f"/quarantine/{row}",
        {"action": "resolve_apply", "back": "view=rows"},
    )
    assert done.status_code == 303 and "rerun=apply_not_allowed" in done.headers["location"]
    assert store.get_quarantine(site.engine, row, tenant="north")["status"] == "resolved"
    page = site.client.get(done.headers["location"], headers={"X-User": "north_quarantine"}).text
    assert "applying it now was not allowed: you do not hold the Apply power" in page
