"""Issue 21 §2: the settings page per tenant, over a real billing database and real Airflow Variables.

Tenants `north` and `south` (a tenants file: each tenant's `billing_day` is the file's) and the
single-tenant form; each tenant's Variable in Airflow's metadata database of this test process
(`airflow db migrate`), read and written through Airflow's own Variable model as the API server
does. Users told apart by a stand-in auth: ``X-Read`` names the DAGs they may read, ``X-Powers``
the areas they hold (issue 21 §3); saving takes the ``settings`` power.

The forms are posted as a browser would: every field of the rendered form, as rendered, with the
person's edits on top.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from billing_sync import frames, store, tenants
from billing_sync.config import POWER_AREAS, load_settings
from billing_sync.review import deps, tenancy
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth, Reviewer
from billing_sync.review.tenancy import PageTenant
from tests.conftest import migrate_airflow_db

RUN, DAY = "scheduled__2026-12-01T00:00:00+00:00", "2026-12-01"
DAG = "huntress_connectwise_billing_sync"
NORTH_DAG, SOUTH_DAG = f"{DAG}__north", f"{DAG}__south"
BOTH = f"{NORTH_DAG},{SOUTH_DAG},{DAG}"  # north, south, and the single-tenant form's DAG
MAPPER = {"X-User": "mia", "X-Read": BOTH, "X-Powers": ",".join(POWER_AREAS)}  # every power
VIEWER = {"X-User": "vic", "X-Read": BOTH}  # reading only
# Who may change who is billed and everything else, but not the settings; and the settings alone.
NO_SETTINGS = {"X-User": "max", "X-Read": BOTH, "X-Powers": "quarantine,mappings,approvals,overrides,apply"}
SETTINGS_ONLY = {"X-User": "sue", "X-Read": BOTH, "X-Powers": "settings"}
CATALOG = [
    {
        "id": 1,
        "identifier": "HUNTRESS-EDR",
        "description": "Huntress EDR",
        "price": 5.0,
        "inactiveFlag": False,
    },
    {
        "id": 2,
        "identifier": "HUNTRESS-EDR-INFO",
        "description": "EDR (info)",
        "price": 0.0,
        "inactiveFlag": False,
    },
    {"id": 3, "identifier": "OLD-EDR", "description": "Retired EDR", "price": 4.0, "inactiveFlag": True},
]


# --- the stand-in auth: the areas a user holds (issue 21 §3), named by headers ----------------------


def _areas(request: Request, tenant: PageTenant) -> frozenset[str]:
    """``X-Read``: the DAGs whose tenants the user may read; ``X-Powers``: the areas held there."""
    if tenant.dag_id not in (request.headers.get("x-read") or "").split(","):
        return frozenset()
    held = {"read", *(request.headers.get("x-powers") or "").split(",")}
    return frozenset(a for a in POWER_AREAS if a in held)


def reader(request: Request, tenant: Annotated[PageTenant, Depends(deps.current_tenant)]) -> Reviewer:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(401, "Not authenticated")
    read = (request.headers.get("x-read") or "").split(",")
    tenancy.remember_readable(request, tuple(c for c in tenant.choices if c.dag_id in read))
    held = _areas(request, tenant)
    if not held:
        raise HTTPException(403, "Forbidden")
    return Reviewer(user, f"{user}-id", powers=held)  # type: ignore[arg-type]


def holder(area: str) -> Callable[..., Reviewer]:
    def holds(request: Request, tenant: Annotated[PageTenant, Depends(deps.current_tenant)]) -> Reviewer:
        reviewer = reader(request, tenant)
        if area not in reviewer.powers:
            raise HTTPException(403, f"Forbidden: no {area} power")
        return reviewer

    return holds


def stand_in_auth() -> ReviewAuth:
    return ReviewAuth(
        reader=reader,
        editor=holder("quarantine"),
        mapper=holder("mappings"),
        holders={a: holder(a) for a in POWER_AREAS},  # type: ignore[misc]
    )


# --- Airflow's Variables, as the API server has them ------------------------------------------------


def variable_get(key: str) -> str | None:
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None)


def variable_set(key: str, value: str) -> None:
    from airflow.models.variable import Variable

    Variable.set(key, value)


def variable_delete(key: str) -> None:
    from airflow.models.variable import Variable

    Variable.delete(key)


class FormFields(HTMLParser):
    """The fields one form of a page would submit (text, hidden, checked boxes, selects, textareas)."""

    def __init__(self, testid: str) -> None:
        super().__init__()
        self.testid, self.inside = testid, False
        self.fields: dict[str, Any] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("data-testid") == self.testid
        if not self.inside or "disabled" in a:
            return
        if tag == "input" and a.get("name"):
            name = a["name"]
            if a.get("type") == "checkbox" and "checked" in a and name in self.fields:
                held = self.fields[name]  # boxes sharing a name: every ticked value is sent
                self.fields[name] = [*(held if isinstance(held, list) else [held]), a.get("value", "")]
            elif a.get("type") != "checkbox" or "checked" in a:
                self.fields[name] = a.get("value", "")
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.fields[self._textarea or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def form_fields(html: str, testid: str) -> dict[str, Any]:
    parser = FormFields(testid)
    parser.feed(html)
    return parser.fields


class Site:
    def __init__(self, client: TestClient, engine: Any, variables: dict[str, str]) -> None:
        self.client, self.engine, self.variables = client, engine, variables

    def get(self, path: str, headers: dict[str, str] = MAPPER) -> Any:
        return self.client.get(f"/billing-review{path}", headers=headers)

    def page(self, tenant: str = "north", headers: dict[str, str] = MAPPER) -> str:
        response = self.get(self.path("/settings", tenant), headers)
        assert response.status_code == 200, response.text
        return response.text

    @staticmethod
    def path(path: str, tenant: str) -> str:
        return path if tenant == "default" else f"{path}?tenant={tenant}"

    def preview(
        self,
        edits: dict[str, str | list[str] | None],
        tenant: str = "north",
        headers: dict[str, str] = MAPPER,
    ) -> Any:
        """The settings form as rendered, `edits` typed over it (None: a box unticked), posted."""
        fields = form_fields(self.page(tenant, MAPPER), "settings-form")
        assert "csrf_token" in fields, "the form carries its token"
        for name, value in edits.items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        if headers is not MAPPER:  # another user: its own token
            fields["csrf_token"] = self.token(tenant, headers)
        return self.client.post(
            f"/billing-review{self.path('/settings/preview', tenant)}",
            data=fields,
            headers=headers,
            follow_redirects=False,
        )

    def save(self, preview_html: str, tenant: str = "north", headers: dict[str, str] = MAPPER) -> Any:
        fields = form_fields(preview_html, "save-form")
        assert set(fields) == {"csrf_token", "proposed", "seen"}, fields
        if headers is not MAPPER:
            fields["csrf_token"] = self.token(tenant, headers)
        return self.client.post(
            f"/billing-review{self.path('/settings', tenant)}",
            data=fields,
            headers=headers,
            follow_redirects=False,
        )

    def token(self, tenant: str, headers: dict[str, str]) -> str:
        html = self.get(self.path("/settings", tenant), headers).text
        found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
        assert found
        return found.group(1)

    def decisions(self, tenant: str = "north") -> list[dict[str, Any]]:
        return store.list_decisions(self.engine, tenant=tenant)


def stage_run(engine: Any, tenant: str, settings: dict[str, Any]) -> None:
    store.start_run(engine, RUN, DAY, 7001, "push", settings, tenant=tenant)
    store.write_frame(engine, RUN, "catalog", frames.catalog_frame(CATALOG), tenant=tenant)
    active = {"agreementStatus": "Active", "cancelledFlag": False, "startDate": "2025-01-01T00:00:00Z"}
    agreements = [
        {
            **active,
            "id": 1580,
            "name": "Ten MSA",
            "company": {"id": 10},
            "type": {"name": "Managed Services"},
        },
        {**active, "id": 1581, "name": "Ten blocks", "company": {"id": 10}, "type": {"name": "Block Time"}},
    ]
    store.write_frame(engine, RUN, "agreements", frames.agreements_frame(agreements), tenant=tenant)
    store.finish_run(engine, RUN, "success", {}, {}, None, tenant=tenant)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    migrate_airflow_db()
    # Variable keys of this test alone: the metadata database is the test process's.
    variables = {t: f"billing_settings_{t}_{uuid.uuid4().hex[:8]}" for t in ("north", "south")}
    entries = [
        {"id": t, "huntress_conn_id": "huntress_default", "connectwise_conn_id": "connectwise_default",
         "variable": key, "billing_day": 5 if t == "north" else 1}
        for t, key in variables.items()
    ]  # fmt: skip
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": entries}))
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(path))
    variable_set(variables["north"], json.dumps({"max_change_units": 25, "billing_day": 9}))
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    # The run resolved with the settings in force then (the guard at its default).
    stage_run(engine, "north", load_settings({"billing_day": 9}).to_dict())
    stage_run(engine, "south", load_settings(None).to_dict())
    app = FastAPI()
    auth = stand_in_auth()
    app.mount("/billing-review", create_app(engine=engine, auth=auth, csrf_secret=b"k"))
    try:
        with TestClient(app) as client:
            yield Site(client, engine, variables)
    finally:
        engine.dispose()
        for key in variables.values():
            variable_delete(key)


def cell(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{re.escape(testid)}">([^<]*)<', html)
    assert found, testid
    return unescape(found.group(1)).strip()


# --- what the page shows --------------------------------------------------------------------------


def test_every_setting_shows_its_meaning_and_where_its_value_comes_from(site: Site) -> None:
    from billing_sync.config import Settings

    html = site.page()
    for key in Settings.model_fields:
        assert f'<tr data-key="{key}">' in html, key
    assert cell(html, "source-max_change_units") == "Variable"
    assert cell(html, "source-dry_run") == "default"
    # Under a tenants file the schedule's day is the file's (5), not the Variable's 9: shown, not editable.
    assert cell(html, "source-billing_day") == "tenants file"
    assert cell(html, "value-billing_day") == "5"
    assert 'name="billing_day"' not in html
    assert "the change guard [10]" in html and "the change guard [0.5]" in html  # the model's words
    # The catalog items the newest run read are offered for the products, the inactive one marked.
    # No ConnectWise connection here: the catalog items the newest run read are offered, the
    # inactive one marked, and the page says why ConnectWise's own were not read.
    assert '<option value="OLD-EDR">OLD-EDR — Retired EDR (inactive)</option>' in html
    assert cell(html, "catalog-note").startswith(
        "Could not read the catalog through connectwise_default: no connection of that id is defined"
    )
    assert (
        cell(html, "types-seen") == "Types on the agreements of the newest run: Block Time, Managed Services"
    )
    fields = form_fields(html, "settings-form")
    assert fields["max_change_units"] == "25" and fields["products.edr"] == "HUNTRESS-EDR"


def test_a_viewer_reads_the_settings_and_is_refused_any_change(site: Site) -> None:
    html = site.page(headers=VIEWER)
    assert cell(html, "value-max_change_units") == "25"
    assert 'data-testid="preview-button"' not in html and 'name="max_change_units"' not in html
    refused = site.preview({"max_change_units": "40"}, headers=VIEWER)
    assert refused.status_code == 403
    done = site.preview({"max_change_units": "40"})
    refused = site.save(done.text, headers=VIEWER)
    assert refused.status_code == 403
    assert json.loads(variable_get(site.variables["north"]) or "{}")["max_change_units"] == 25
    assert site.decisions() == []


def test_the_settings_power_alone_saves_settings_and_mapping_rights_do_not(site: Site) -> None:
    refused = site.preview({"max_change_units": "40"}, headers=NO_SETTINGS)
    assert refused.status_code == 403
    assert 'data-testid="preview-button"' not in site.page(headers=NO_SETTINGS)
    shown = site.preview({"max_change_units": "40"}, headers=SETTINGS_ONLY)
    assert shown.status_code == 200 and 'data-testid="preview"' in shown.text
    assert site.save(shown.text, headers=SETTINGS_ONLY).status_code == 303
    assert json.loads(variable_get(site.variables["north"]) or "{}")["max_change_units"] == 40
    (decision,) = site.decisions()
    assert decision["actor_name"] == "sue"


# --- a change: checked, previewed, saved ------------------------------------------------------------


def test_a_bad_value_is_shown_beside_its_field_with_the_form_kept(site: Site) -> None:
    before = variable_get(site.variables["north"])
    shown = site.preview(
        {"connectwise_concurrency": "99", "products.edr": 'HUNTRESS-"EDR"', "max_change_ratio": "lots"}
    )
    assert shown.status_code == 200  # the page again, not an error page
    html = shown.text
    assert cell(html, "error-connectwise_concurrency") == "must be an integer from 1 to 32"
    assert "double quote" in cell(html, "error-products")
    assert cell(html, "error-max_change_ratio") == "must be a non-negative number"
    assert 'data-testid="preview"' not in html  # nothing to save
    kept = form_fields(html, "settings-form")
    assert (kept["connectwise_concurrency"], kept["products.edr"], kept["max_change_ratio"]) == (
        "99",
        'HUNTRESS-"EDR"',
        "lots",
    )
    assert 'aria-invalid="true" aria-describedby="error-connectwise_concurrency"' in html
    assert variable_get(site.variables["north"]) == before


def test_the_change_is_previewed_as_a_diff_then_saved_to_the_variable_and_recorded(site: Site) -> None:
    key = site.variables["north"]
    edits = {
        "max_change_units": "40",
        "products.edr": "HUNTRESS-EDR, HUNTRESS-EDR-INFO",
        "four_eyes": "true",
        "agreement_types": "Managed Services\r\nBlock Time",
        "powers.settings": "Billing Admin",
    }
    shown = site.preview(edits)
    assert shown.status_code == 200
    html = shown.text
    diff = dict(
        (k, (unescape(b), unescape(a)))
        for k, b, a in re.findall(
            r'<tr data-key="([a-z_]+)"><td><code>[a-z_]+</code></td><td class="detail">([^<]*)</td>'
            r'<td class="detail"><strong>([^<]*)</strong>',
            html,
        )
    )
    assert diff == {
        "products": (
            "edr: HUNTRESS-EDR; itdr: HUNTRESS-ITDR; sat: HUNTRESS-SAT; siem: HUNTRESS-SIEM (default)",
            "edr: HUNTRESS-EDR, HUNTRESS-EDR-INFO; itdr: HUNTRESS-ITDR; sat: HUNTRESS-SAT; siem: HUNTRESS-SIEM",
        ),
        "max_change_units": ("25", "40"),
        "agreement_types": ("(none) (default)", "Managed Services, Block Time"),
        "four_eyes": ("false (default)", "true"),
        "powers": ("(none) (default)", "settings: Billing Admin"),
    }
    assert json.loads(variable_get(key) or "{}") == {"max_change_units": 25, "billing_day": 9}  # not yet

    saved = site.save(html)
    assert saved.status_code == 303 and saved.headers["location"].endswith("/settings?tenant=north&saved=1")
    stored = json.loads(variable_get(key) or "{}")
    assert stored["billing_day"] == 9  # what the form did not touch stays as it was
    settings = load_settings(stored)
    assert settings.max_change_units == 40 and settings.four_eyes is True
    assert settings.catalog_items["edr"] == ("HUNTRESS-EDR", "HUNTRESS-EDR-INFO")
    assert settings.agreement_types == ("Managed Services", "Block Time")
    assert settings.powers == {"settings": ("Billing Admin",)}
    assert "dry_run" not in stored  # still the default

    (decision,) = site.decisions()
    assert (decision["kind"], decision["subject"], decision["subject_id"]) == ("settings", "settings", key)
    assert (decision["actor_name"], decision["actor_id"]) == ("mia", "mia-id")
    assert decision["before"]["max_change_units"] == 25 and decision["after"]["max_change_units"] == 40
    assert decision["after"]["products"]["edr"] == ["HUNTRESS-EDR", "HUNTRESS-EDR-INFO"]
    assert set(decision["after"]) == set(diff)
    assert site.decisions("south") == []  # the other tenant's history is untouched

    after = site.client.get(saved.headers["location"], headers=MAPPER).text
    assert "Settings saved" in after and cell(after, "source-four_eyes") == "Variable"
    history = site.get("/history?tenant=north").text
    assert f"settings ({key})" in history and "max_change_units</strong>: 25 → 40" in history


def test_a_change_made_meanwhile_refuses_the_save(site: Site) -> None:
    key = site.variables["north"]
    shown = site.preview({"max_change_units": "40"})
    variable_set(key, json.dumps({"max_change_units": 30}))  # someone else, in Airflow, since the preview
    refused = site.save(shown.text)
    assert refused.status_code == 409
    assert "settings changed meanwhile; review again" in refused.text
    assert json.loads(variable_get(key) or "{}") == {"max_change_units": 30}
    assert site.decisions() == []
    assert form_fields(refused.text, "settings-form")["max_change_units"] == "30"  # the page as it is now


def test_nothing_typed_differently_saves_nothing(site: Site) -> None:
    shown = site.preview({})
    assert "Nothing to save" in shown.text and 'data-testid="preview"' not in shown.text


def test_the_other_tenants_variable_is_its_own(site: Site) -> None:
    """South's Variable does not exist yet: every setting at its default; the save creates it."""
    html = site.page("south")
    assert cell(html, "source-max_change_units") == "default"
    shown = site.preview({"dry_run": "true"}, tenant="south")
    assert site.save(shown.text, tenant="south").status_code == 303
    assert json.loads(variable_get(site.variables["south"]) or "{}") == {"dry_run": True}
    assert json.loads(variable_get(site.variables["north"]) or "{}") == {
        "max_change_units": 25,
        "billing_day": 9,
    }
    assert [d["tenant"] for d in site.decisions("south")] == ["south"]


def test_a_variable_set_in_the_environment_is_shown_read_only(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = site.variables["north"]
    monkeypatch.setenv(f"AIRFLOW_VAR_{key.upper()}", json.dumps({"max_change_units": 7}))
    html = site.page()
    assert f"AIRFLOW_VAR_{key.upper()}" in cell(html, "variable") or "AIRFLOW_VAR_" in html
    assert 'data-testid="read-only-variable"' in html
    assert cell(html, "value-max_change_units") == "7" and 'name="max_change_units"' not in html
    # A save previewed before the environment took over is refused: the database is not what runs read.
    monkeypatch.delenv(f"AIRFLOW_VAR_{key.upper()}")
    shown = site.preview({"max_change_units": "40"})
    monkeypatch.setenv(f"AIRFLOW_VAR_{key.upper()}", json.dumps({"max_change_units": 7}))
    refused = site.save(shown.text)
    assert refused.status_code == 409 and "Nothing saved" in refused.text
    assert site.decisions() == []


def test_a_broken_variable_is_named_without_its_value(site: Site) -> None:
    variable_set(site.variables["north"], json.dumps({"billing_day": 40, "secret_looking": "s3cr3t-value"}))
    html = site.page()
    problems = re.search(r'data-testid="variable-problems">(.*?)</div>', html, re.S)
    assert problems and "unknown key(s) ['secret_looking']" in unescape(problems.group(1))
    assert "s3cr3t-value" not in html
    assert 'data-testid="settings-form"' not in html


# --- the single-tenant form: billing_day is the Variable's ------------------------------------------


@pytest.fixture
def single(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    from billing_sync.names import VARIABLE_KEY

    migrate_airflow_db()
    monkeypatch.delenv(tenants.TENANTS_FILE_ENV, raising=False)
    monkeypatch.delenv(f"AIRFLOW_VAR_{VARIABLE_KEY.upper()}", raising=False)
    variable_set(VARIABLE_KEY, json.dumps({"billing_day": 3}))
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    stage_run(engine, "default", load_settings(None).to_dict())
    app = FastAPI()
    app.mount(
        "/billing-review",
        create_app(engine=engine, auth=stand_in_auth(), csrf_secret=b"k"),
    )
    try:
        with TestClient(app) as client:
            yield Site(client, engine, {"default": VARIABLE_KEY})
    finally:
        engine.dispose()
        variable_delete(VARIABLE_KEY)


def test_single_tenant_billing_day_is_edited_and_an_emptied_number_returns_to_its_default(
    single: Site,
) -> None:
    html = single.page("default")
    assert cell(html, "source-billing_day") == "Variable"
    shown = single.preview({"billing_day": "", "connectwise_concurrency": "8"}, tenant="default")
    assert "1 (default)" in shown.text  # billing_day: 3 → 1 (default)
    assert single.save(shown.text, tenant="default").status_code == 303
    assert json.loads(variable_get(single.variables["default"]) or "{}") == {"connectwise_concurrency": 8}


# --- the run page: the settings the run resolved with ----------------------------------------------


def test_the_run_page_shows_its_settings_as_a_table_marking_what_changed_since(site: Site) -> None:
    html = site.get(f"/runs/{RUN}?tenant=north").text
    table = re.search(r'data-testid="run-settings">(.*?)</table>', html, re.S)
    assert table, "a table, not raw JSON"
    rows = dict(re.findall(r'<tr data-key="([a-z_]+)"( class="focus" data-changed="true")?>', table.group(1)))
    assert rows["max_change_units"] and not rows["dry_run"] and not rows["billing_day"]
    changed = re.search(r'<tr data-key="max_change_units".*?</tr>', table.group(1), re.S)
    assert changed and re.findall(r'<td class="detail">([^<]*)</td>', changed.group(0)) == ["10", "25"]
    assert "max_change_units&#34;" not in html  # no JSON dump of them either


# --- ConnectWise's catalog and agreement types, read through the tenant's connection ----------------

CW_SECRET = "cw-private-settings-picker-7f3a"  # the connection's private key: never on a page


def picker_scenario() -> dict[str, Any]:
    """tests/helpers/sandbox_setup's role_scenario with a catalog of its own: EDR and its informational item,
    SAT, SIEM, and a retired item marked inactive (ITDR, which north's settings name, is missing)."""
    from tests.helpers.sandbox_setup import role_scenario

    data = role_scenario()
    data["connectwise"]["private_key"] = CW_SECRET
    data["connectwise"]["catalog"] = [
        {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 4.5},
        {"id": 753, "identifier": "HUNTRESS-EDR-INFO", "description": "EDR (informational)", "price": 0},
        {"id": 754, "identifier": "HUNTRESS-SAT", "description": "Huntress SAT", "price": 1},
        {"id": 755, "identifier": "HUNTRESS-SIEM", "description": "Huntress SIEM", "price": 12},
        {"id": 760, "identifier": "OLD-EDR", "description": "Retired EDR", "price": 4, "inactiveFlag": True},
    ]
    return data


@pytest.fixture
def cw(site: Site, sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Site, Any]:
    """The site with its tenants' `connectwise_default` pointing at a sandbox."""
    from tests.helpers.sandbox_setup import use_connections

    sb = sandbox_factory(picker_scenario())
    use_connections(monkeypatch, sb)
    return site, sb


def served(sb: Any) -> dict[str, Any]:
    import httpx

    return httpx.get(f"{sb.connectwise_url}/_sandbox/requests", timeout=10).json()


def requests_to(sb: Any, path: str) -> int:
    """GETs of an API path, whatever the codebase before it."""
    return sum(n for route, n in served(sb)["by_route"].items() if route.endswith(f"/apis/3.0{path}"))


def options(html: str) -> dict[str, str]:
    listed = re.search(r'<datalist id="catalog-items"[^>]*>(.*?)</datalist>', html, re.S)
    assert listed, "the picker's list"
    return {
        v: unescape(t) for v, t in re.findall(r'<option value="([^"]*)">([^<]*)</option>', listed.group(1))
    }


def test_the_picker_offers_connectwise_catalog_and_agreement_types(cw: tuple[Site, Any]) -> None:
    site, sb = cw
    variable_set(
        site.variables["north"],
        json.dumps({"max_change_units": 25, "agreement_types": ["Managed Services", "Retired Type"]}),
    )
    html = site.page()
    assert 'data-testid="catalog-note"' not in html and 'data-testid="types-note"' not in html
    # The sandbox's catalog, not the run's (HUNTRESS-SIEM was never staged), the inactive item marked.
    assert options(html) == {
        "HUNTRESS-EDR": "HUNTRESS-EDR — Huntress Managed EDR",
        "HUNTRESS-EDR-INFO": "HUNTRESS-EDR-INFO — EDR (informational)",
        "HUNTRESS-SAT": "HUNTRESS-SAT — Huntress SAT",
        "HUNTRESS-SIEM": "HUNTRESS-SIEM — Huntress SIEM",
        "OLD-EDR": "OLD-EDR — Retired EDR (inactive)",
    }
    assert cell(html, "flag-products.itdr") == "HUNTRESS-ITDR: not in the catalog"  # configured, missing
    assert 'data-testid="flag-products.edr"' not in html
    # Agreement types: ConnectWise's, as boxes; the configured ones ticked, an unknown one flagged.
    boxes = dict(
        re.findall(r'<input type="checkbox" name="agreement_types" value="([^"]*)"( checked)?', html)
    )
    assert boxes["Managed Services"] == " checked" and boxes["Retired Type"] == " checked"
    assert len(boxes) > 2 and sum(1 for v in boxes.values() if v) == 2
    assert cell(html, "type-flag") == "not a ConnectWise agreement type"
    assert 'name="agreement_types" rows=' not in html  # no free text while the types can be read
    assert requests_to(sb, "/procurement/catalog") == 1


def test_a_viewer_page_reads_nothing_from_connectwise(cw: tuple[Site, Any]) -> None:
    site, sb = cw
    site.page(headers=VIEWER)
    assert served(sb)["total"] == 0


def test_an_unknown_or_inactive_identifier_is_refused_beside_its_field(cw: tuple[Site, Any]) -> None:
    site, _ = cw
    before = variable_get(site.variables["north"])
    shown = site.preview({"products.edr": "HUNTRESS-EDR, HUNTRESS-NOPE", "products.sat": "OLD-EDR"})
    assert shown.status_code == 200
    html = shown.text
    assert cell(html, "error-products.edr") == "HUNTRESS-NOPE: not in the catalog"
    assert cell(html, "error-products.sat") == "OLD-EDR: inactive in the catalog"
    assert 'aria-invalid="true" aria-describedby="error-products.sat"' in html
    assert 'data-testid="preview"' not in html and variable_get(site.variables["north"]) == before
    kept = form_fields(html, "settings-form")
    assert kept["products.edr"] == "HUNTRESS-EDR, HUNTRESS-NOPE" and kept["products.sat"] == "OLD-EDR"

    # Items the catalog holds, active, and two ticked types: previewed and saved. ITDR, missing but
    # already in force, is flagged and does not hold the change up.
    shown = site.preview(
        {
            "products.edr": "HUNTRESS-EDR, HUNTRESS-EDR-INFO",
            "agreement_types": ["Managed Services", "Block Time"],
        }
    )
    assert 'data-testid="preview"' in shown.text, shown.text
    assert site.save(shown.text).status_code == 303
    stored = load_settings(json.loads(variable_get(site.variables["north"]) or "{}"))
    assert stored.catalog_items["edr"] == ("HUNTRESS-EDR", "HUNTRESS-EDR-INFO")
    assert stored.agreement_types == ("Managed Services", "Block Time")


def test_connectwise_unreachable_falls_back_to_the_staged_items_with_a_plain_reason(
    cw: tuple[Site, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.sandbox_setup import use_connections

    site, sb = cw
    use_connections(monkeypatch, sb, secret=CW_SECRET)
    sb.stop()  # the connection now points at a closed port
    html = site.page()
    note = cell(html, "catalog-note")
    assert note.startswith(
        "Could not read the catalog through connectwise_default: ConnectWise could not be reached"
    )
    assert note.endswith("type identifiers by hand (the items offered are those the newest run read).")
    assert CW_SECRET not in html and "hs_preflight_secret" not in html
    assert options(html)["OLD-EDR"] == "OLD-EDR — Retired EDR (inactive)"  # the staged catalog
    assert 'name="agreement_types" rows=' in html  # the types typed by hand again
    assert cell(html, "types-seen").startswith("Types on the agreements of the newest run")
    # An identifier nobody can check is accepted, the page still saying why.
    shown = site.preview({"products.edr": "HUNTRESS-UNCHECKED"})
    assert 'data-testid="preview"' in shown.text and 'data-testid="catalog-note"' in shown.text
    assert CW_SECRET not in shown.text


def test_connectwise_is_read_a_bounded_number_of_times(cw: tuple[Site, Any]) -> None:
    site, sb = cw
    site.page()
    site.page()  # within the cache's minute: nothing read again
    site.preview({"products.edr": "HUNTRESS-EDR, HUNTRESS-EDR-INFO"})  # its page and its check
    log = served(sb)
    assert requests_to(sb, "/procurement/catalog") == 1
    assert requests_to(sb, "/finance/agreements/types") == 1
    assert log["total"] <= 3, log["by_route"]  # the codebase's discovery, the catalog, the types


def test_a_catalog_beyond_one_page_is_offered_in_part_and_other_identifiers_asked_for_by_name(
    cw: tuple[Site, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing_sync.review import cw_lists

    site, sb = cw
    monkeypatch.setattr(cw_lists, "CATALOG_CAP", 2)  # a page of two stands for ConnectWise's 1,000
    html = site.page()
    assert cell(html, "catalog-note") == (
        "The first 2 items of the catalog are offered; type any other identifier by hand."
    )
    # The page's two, and the configured identifiers beyond it, asked for by name: ITDR is missing.
    assert set(options(html)) == {"HUNTRESS-EDR", "HUNTRESS-EDR-INFO", "HUNTRESS-SAT", "HUNTRESS-SIEM"}
    assert cell(html, "flag-products.itdr") == "HUNTRESS-ITDR: not in the catalog"
    assert 'data-testid="flag-products.sat"' not in html and 'data-testid="flag-products.siem"' not in html
    shown = site.preview({"products.sat": "OLD-EDR"})  # beyond the page, typed: asked for by name
    assert cell(shown.text, "error-products.sat") == "OLD-EDR: inactive in the catalog"
    assert requests_to(sb, "/procurement/catalog") == 3  # the page, the configured ones, the typed one
