"""Issue 19 §8: every route of the review app fuzzed by schemathesis from the app's own OpenAPI, signed
in as a reader and as a mapper, over a real billing database filled by a billing run against the
sandbox (and a mapper's decisions): no server error, no change of any billing row by a reader, and no
response that echoes a credential the process can see.

What the OpenAPI is given on top of FastAPI's own: the query parameters the pages read from
``request.query_params`` (FastAPI knows none of them: `QUERY`, checked against the sources below),
the route FastAPI leaves out (``/``), and the ``Origin`` / ``Sec-Fetch-Site`` headers of the CSRF
check; every parameter and form field may also take values of this database (ids of its rows, its
run, its products) and the hand-crafted ids of test_bad_input.py, so the fuzz reaches the handlers'
work and not only their input checks. Each POST is sent twice: as generated (the CSRF check meets
whatever token schemathesis made up) and with a valid form token (the request reaches the handler).

Generation is derandomized and bounded (`POSITIVE` + `NEGATIVE` cases per route and user).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI, Form, HTTPException, Request, Response
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi

from billing_sandbox.generate import generate
from billing_sync import names, store
from billing_sync.review import tenancy
from billing_sync.review.app import create_app
from billing_sync.review.security import CSRF_COOKIE, CSRF_FIELD, Csrf, ReviewAuth, Reviewer
from billing_sync.scrub import forms
from tests.conftest import ROOT, _postgres_available, _postgres_base_url, start_sandbox
from tests.helpers.crafted_ids import CRAFTED_IDS
from tests.proof.helpers import connection_env, run_steps

pytestmark = pytest.mark.integration  # a whole billing run, then about 2,000 requests

# Cases per route and user: inside the schema, then outside it. REVIEW_FUZZ_SCALE=10 digs ten times
# deeper (an exploratory run by hand; the suite keeps the bounded default).
SCALE = int(os.environ.get("REVIEW_FUZZ_SCALE", "1"))
POSITIVE, NEGATIVE = 16 * SCALE, 4 * SCALE
MOUNT = "/billing-review"
BASE_URL = f"http://testserver{MOUNT}"
RUN_ID = "fuzz__2026-11-01"
UNMAPPED_ORG = 138  # "not_in_connectwise" in generate(40, 7): mapped by hand before the run
NONCE = "n" * 43  # the browser's CSRF cookie, as secrets.token_urlsafe(32) is long


# -- who signs in ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    name: str
    user_id: str
    role: str  # "" (reads only) or "mapper" (acts on rows, changes who and what is billed)
    bearer: str  # the Airflow token a browser would send: a credential the pages must never echo

    @property
    def headers(self) -> dict[str, str]:
        found = {"X-User": self.name, "X-User-Id": self.user_id, "Authorization": f"Bearer {self.bearer}"}
        return {**found, "X-Role": self.role} if self.role else found


def _signed_in(request: Request) -> Reviewer:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(401, "Not authenticated")
    return Reviewer(user, request.headers.get("x-user-id") or user)


def _acting(request: Request) -> Reviewer:
    if request.headers.get("x-role") != "mapper":
        raise HTTPException(403, "Forbidden")
    return _signed_in(request)


# -- the stand-in for Airflow's REST API (the re-run button) -----------------------------------------
class _Refusing(BaseHTTPRequestHandler):
    """Answers every trigger as Airflow answers a user without the right to run the DAG."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.dumps({"detail": "Forbidden"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


# -- the site --------------------------------------------------------------------------------------
@dataclass
class Site:
    root: FastAPI
    engine: sa.Engine
    csrf: Csrf
    secrets: dict[str, str]  # what must never appear in a response, by name
    hints: dict[str, list[str]]  # values of this database, by parameter name

    def token(self, user: User) -> str:
        return self.csrf.token(NONCE, Reviewer(user.name, user.user_id))


def secret_scenario(tag: str) -> dict[str, Any]:
    scenario = generate(40, 7)
    h, c = scenario["huntress"], scenario["connectwise"]
    h["api_key"], h["api_secret"] = f"hkLOGIN{tag}", f"hsSECRET{tag}"
    c["public_key"], c["private_key"] = f"cwPUBLIC{tag}", f"cwPRIVATE{tag}"
    c["client_id"] = str(uuid.uuid4()).upper()
    return scenario


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A billing database URL; on PostgreSQL a schema of its own, reached with a password in the URL
    (trust auth takes any): one more credential in the process's reach."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'billing.db'}"
        return
    base = _postgres_base_url()
    if not base or not _postgres_available(base):
        pytest.skip("TEST_DATABASE_URL unset or PostgreSQL unreachable")
    schema = f"fuzz_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(base).set(password=f"pgPASS{uuid.uuid4().hex[:12].upper()}")
    sep = "&" if url.query else "?"
    yield url.render_as_string(hide_password=False) + f"{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="module")
def site(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("fuzz")
    tag = uuid.uuid4().hex[:12].upper()
    scenario = secret_scenario(tag)
    h, c = scenario["huntress"], scenario["connectwise"]
    airflow = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=airflow.serve_forever, daemon=True).start()
    sb = start_sandbox(scenario, tmp)
    mp = pytest.MonkeyPatch()
    engine = store.make_engine(database)
    try:
        secrets = {
            "huntress api key": h["api_key"],
            "huntress api secret": h["api_secret"],
            "connectwise public key": c["public_key"],
            "connectwise private key": c["private_key"],
            "connectwise clientId": c["client_id"],
            "connectwise login": f"{c['company_id']}+{c['public_key']}",
            "smtp password": f"smtpPASS{tag}",
            "slack webhook path": f"T0FUZZ/B0FUZZ/slackHOOK{tag}",
            "[api] secret_key": f"apiSECRET{tag}",
            "[api_auth] jwt_secret": f"jwtSECRET{tag}",
            "csrf key": f"csrfKEY{tag}",
            "reader token": f"readerTOKEN{tag}",
            "mapper token": f"mapperTOKEN{tag}",
        }
        pg_password = sa.make_url(database).password
        if pg_password:
            secrets["billing db password"] = str(pg_password)
        # Pairs as Basic auth sends them (base64 of login:password; `forms` adds it).
        secrets["huntress basic pair"] = f"{h['api_key']}:{h['api_secret']}"
        secrets["connectwise basic pair"] = f"{secrets['connectwise login']}:{c['private_key']}"
        env = {
            **connection_env(scenario, sb.huntress_url, sb.connectwise_url),
            f"AIRFLOW_CONN_{names.DB_CONN_ID.upper()}": json.dumps(
                {"conn_type": "generic", "extra": {"sqlalchemy_url": database}}
            ),
            f"AIRFLOW_CONN_{names.SMTP_CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "login": "billing",
                    "password": secrets["smtp password"],
                }
            ),
            f"AIRFLOW_CONN_{names.SLACK_CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": "http",
                    "host": f"https://hooks.slack.test/services/{secrets['slack webhook path']}",
                }
            ),
            "AIRFLOW__API__SECRET_KEY": secrets["[api] secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets["[api_auth] jwt_secret"],
            "BILLING_SYNC_REPORTS_DIR": str(tmp / "reports"),
            "BILLING_REVIEW_AIRFLOW_API_URL": f"http://127.0.0.1:{airflow.server_address[1]}",
            # The settings Variable from the environment, as a deployment may hold it: the pages that
            # read it find it without a metadata database.
            f"AIRFLOW_VAR_{names.VARIABLE_KEY.upper()}": "{}",
        }
        for key, value in env.items():
            mp.setenv(key, value)
        seed_before_run(engine, scenario)
        run = run_steps(engine, RUN_ID)
        assert run.error is None, run.describe()
        # No run stages the org map any more; the table is still there for a page to read.
        frame = store.org_map_frame(engine, tenant="default")
        store.write_frame(engine, RUN_ID, "org_map", frame, tenant="default")
        csrf = Csrf(secrets["csrf key"].encode())
        auth = ReviewAuth(reader=_signed_in, editor=_acting, mapper=_acting)
        app = create_app(
            engine=engine, auth=auth, csrf_secret=secrets["csrf key"].encode(), reports_root=tmp / "reports"
        )
        root = FastAPI()
        root.mount(MOUNT, app)
        site = Site(root, engine, csrf, secrets, {})
        seed_decisions(site)
        site.hints = hints_of(engine)
        yield site
    finally:
        mp.undo()
        sb.stop()
        airflow.shutdown()
        engine.dispose()


def seed_before_run(engine: sa.Engine, scenario: dict[str, Any]) -> None:
    """A mapping and an override on record before the run, so it stages them too."""
    companies = [co["id"] for co in scenario["connectwise"]["companies"]]
    store.set_org_map(engine, UNMAPPED_ORG, companies[0], "fuzz seed", "Seed", user_id="1", tenant="default")
    store.add_override(
        engine,
        cw_company_id=companies[1],
        product="edr",
        rule="minimum",
        quantity=5,
        user="Seed",
        tenant="default",
    )


def seed_decisions(site: Site) -> None:
    """What a mapper decides at the desk, through the pages: an approval of a held row (every field
    its form carries, as a browser posts it) and a dismissed row."""
    from fastapi.testclient import TestClient

    mapper = User("Seed Mapper", "2", "mapper", "seedTOKEN")
    with TestClient(site.root) as client:
        client.cookies.set(CSRF_COOKIE, NONCE)
        held = store.list_quarantine(
            site.engine, status="open", reason_code="change_exceeds_limit", tenant="default"
        )
        assert held, "the run held no change for approval"
        form = client.get(f"{MOUNT}/approvals/new", params={"row": held[0]["id"]}, headers=mapper.headers)
        assert form.status_code == 200, form.text[:300]
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
        fields[CSRF_FIELD] = site.token(mapper)
        done = client.post(f"{MOUNT}/approvals", data=fields, headers=mapper.headers, follow_redirects=False)
        assert done.status_code == 303 and "approval=approved" in done.headers["location"], done.headers
        other = next(
            r
            for r in store.list_quarantine(site.engine, status="open", tenant="default")
            if r["id"] != held[0]["id"]
        )
        dismissed = client.post(
            f"{MOUNT}/quarantine/{other['id']}",
            data={"action": "dismiss", "note": "fuzz seed", "back": "row", CSRF_FIELD: site.token(mapper)},
            headers=mapper.headers,
            follow_redirects=False,
        )
        assert dismissed.status_code == 303, dismissed.text[:300]
    empty = [t for t, rows in snapshot(site.engine).items() if not rows]
    assert empty == [], f"tables without a row to protect: {empty}"


def hints_of(engine: sa.Engine) -> dict[str, list[str]]:
    """Values of this database for each parameter name: ids that exist, the run, its files."""

    def ids(sql: str) -> list[str]:
        with engine.connect() as conn:
            return [str(v) for v in conn.execute(sa.text(sql)).scalars() if v is not None][:8]

    quarantine = ids("select id from billing_quarantine order by id")
    companies = ids("select distinct cw_company_id from billing_quarantine where cw_company_id is not null")
    orgs = ids(
        "select distinct huntress_organization_id from billing_quarantine where huntress_organization_id is not null"
    )
    orgs += ids("select huntress_organization_id from billing_org_map")
    approvals = ids("select id from billing_approvals")
    overrides = ids("select id from billing_overrides")
    agreements = ids("select distinct agreement_id from billing_stg_agreements")
    crafted = list(CRAFTED_IDS)
    return {
        # Only these: any other tenant is refused (404) before a route runs; random ones took a third of the cases.
        "tenant": ["default", "", "north"],
        "status": [*store.QUARANTINE_STATUSES, *store.APPROVAL_STATUSES, "all"],
        "billing_date": ["2026-11-01", "2026-02-30", "1999-12-31", "2026-11-01T00:00"],
        "reason_code": ["unmapped_organization", "change_exceeds_limit", "no_live_addition"],
        "company_id": [*companies, *crafted],
        "id": [*quarantine, *orgs, *crafted],
        "row": [*quarantine, *crafted],
        "row_id": [*quarantine, *crafted],
        "pick": [*orgs, "bulk", *crafted],
        "organization_id": [*orgs, *crafted],
        "approval_id": [*approvals, *crafted],
        "override_id": [*overrides, *crafted],
        "agreement_id": [*agreements, *crafted],
        "run_id": [RUN_ID, "r" * 300, "a\x00b"],
        "name": ["report.html", "outcomes.csv", "../secret.txt", "report%00.html"],
        "view": ["groups", "rows"],
        "order": ["seen", "amount"],
        "page": ["1", "2", "0", "99999999999999999", *crafted],
        "form": [f"map-{orgs[0]}" if orgs else "map-1", "bulk-map", "pick-²"],
        "action": ["dismiss", "resolve", "reopen"],
        "rule": ["minimum", "fixed", "exclude"],
        "product": ["edr", "sat", "siem", "itdr"],
        "quantity": ["0", "5", "10000000", "-1", "1.5"],
        "back": ["", "row", "mapping", "status=all&view=rows", f"company_id={crafted[0]}"],
        "rerun": ["1", "queued", "exists"],
        "done": ["mapped", "unmapped", "dismissed", "override_added"],
        "error": ["note_required", "not_found"],
        "approval": ["approved", "revoked", "not_pending"],
        "date": ["2026-11-01"],
        "run": [RUN_ID],
        "saved": ["1"],
        CSRF_FIELD: [],
    }


# -- the OpenAPI the fuzz is drawn from ------------------------------------------------------------------
# Every query parameter a page reads from `request.query_params` (FastAPI's OpenAPI knows none of them),
# offered to every operation: a page ignores the ones it does not read. test_query_names_are_complete
# keeps the list in step with the sources.
QUERY = (
    "tenant", "status", "billing_date", "reason_code", "company_id", "run_id", "view", "order", "page",
    "pick", "q", "form", "id", "row", "done", "error", "approval", "rerun", "date", "run",
    "company", "organization", "behind", "saved",
)  # fmt: skip
HEADERS = ("Origin", "Sec-Fetch-Site")  # the CSRF check's, on every POST
EXTRA_ROUTES = {("get", "/")}  # routes FastAPI leaves out of its OpenAPI (include_in_schema=False)


def fuzz_schema(app: FastAPI, hints: dict[str, list[str]]) -> dict[str, Any]:
    """FastAPI's OpenAPI of the app, with the query parameters, the left-out routes and this
    database's values added."""
    raw = copy.deepcopy(app.openapi())
    for method, path in EXTRA_ROUTES:
        raw["paths"].setdefault(path, {})[method] = {"responses": {"200": {"description": "OK"}}}
    for ops in raw["paths"].values():
        for method, op in ops.items():
            params = op.setdefault("parameters", [])
            # A page reads its query; an action only its tenant from it (the rest is its form).
            query = QUERY if method == "get" else (tenancy.PARAM,)
            params += [
                {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in query
            ]
            if method == "post":
                params += [
                    {"name": n, "in": "header", "required": False, "schema": {"type": "string"}}
                    for n in HEADERS
                ]
            for param in params:
                param["schema"] = _hinted(param["name"], param["schema"], hints)
    for body in raw.get("components", {}).get("schemas", {}).values():
        for name, prop in body.get("properties", {}).items():
            body["properties"][name] = _hinted(name, prop, hints)
    return raw


def _hinted(name: str, schema: dict[str, Any], hints: dict[str, list[str]]) -> dict[str, Any]:
    values = hints.get(name)
    if not values:
        return schema
    if name == tenancy.PARAM:
        return {"enum": values}
    if schema.get("type") == "array":
        return {**schema, "items": _hinted(name, schema.get("items", {"type": "string"}), hints)}
    return {"anyOf": [{"enum": list(dict.fromkeys(values))}, schema]}


# -- what is checked -----------------------------------------------------------------------------------
def snapshot(engine: sa.Engine) -> dict[str, list[str]]:
    """Every row of every table of the billing database, as sorted text."""
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            name: sorted(map(repr, conn.execute(table.select()).all())) for name, table in meta.tables.items()
        }


def needles(secrets: dict[str, str]) -> dict[str, str]:
    """Every form of every secret (`scrub.forms`: as is, quoted, escaped, base64), lower-cased: a
    response is searched case-insensitively."""
    found = {}
    for name, value in secrets.items():
        for form in forms(value):
            found[form.lower()] = name
        found[base64.b64encode(value.encode()).decode().lower()] = name
    return found


def leaks(response: Any, wanted: dict[str, str]) -> list[str]:
    text = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    text = (text + "\n" + response.content.decode("utf-8", "replace")).lower()
    return sorted({name for form, name in wanted.items() if form in text})


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)  # requests per operation
    seconds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # (operation, user, with a valid form token, status) → responses
    statuses: Counter[tuple[str, str, bool, int]] = field(default_factory=Counter)
    named: int = 0  # responses that show the user's name: the search reads what a browser gets


def fuzz_as_reader_and_mapper(site: Site, positive: int = POSITIVE, negative: int = NEGATIVE) -> Tally:
    """The reader first, every billing row compared after each route; then the mapper."""
    reader, mapper = _users(site)
    tally = Tally()
    before = snapshot(site.engine)

    def unchanged(label: str) -> None:
        nonlocal before
        after = snapshot(site.engine)
        changed = sorted(t for t in after.keys() | before.keys() if after.get(t) != before.get(t))
        if changed:
            tally.failures.append(f"{label} as {reader.name} (a reader) changed {changed}")
            before = after

    fuzz(site, reader, tally, positive, negative, after_each_route=unchanged)
    fuzz(site, mapper, tally, positive, negative)
    return tally


def fuzz(
    site: Site, user: User, tally: Tally, positive: int, negative: int, *, after_each_route: Any = None
) -> None:
    """Every operation of the schema, `positive` + `negative` cases as `user`, each POST twice."""
    schema = schemathesis.openapi.from_dict(fuzz_schema(site.root.routes[-1].app, site.hints))
    wanted = needles(site.secrets)
    with asgi.get_client(site.root) as client:
        for result in schema.get_all_operations():
            op = result.ok()
            label = f"{op.method.upper()} {op.path}"
            started = time.monotonic()
            for mode, count in ((GenerationMode.POSITIVE, positive), (GenerationMode.NEGATIVE, negative)):

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=count,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                )
                def one(case: Any) -> None:
                    variants = [False]
                    if case.method.lower() == "post" and isinstance(case.body, dict):
                        variants.append(True)
                    for signed in variants:
                        if signed:
                            case.body[CSRF_FIELD] = site.token(user)
                            for name in HEADERS:
                                (case.headers or {}).pop(name, None)
                        _send(client, case, user, signed, wanted, tally)

                try:
                    one()
                except Unsatisfiable:  # nothing outside the schema to draw (a route without input)
                    pass
            if after_each_route is not None:
                after_each_route(label)
            tally.seconds[label] = tally.seconds.get(label, 0.0) + time.monotonic() - started


def _send(client: Any, case: Any, user: User, signed: bool, wanted: dict[str, str], tally: Tally) -> None:
    label = f"{case.method.upper()} {case.operation.path}"
    tally.sent[label] = tally.sent.get(label, 0) + 1
    cookies = {CSRF_COOKIE: NONCE, "_token": user.bearer}
    how = f"{label} as {user.name}{' (valid form token)' if signed else ''}"
    try:
        response = case.call(
            base_url=BASE_URL, session=client, headers=user.headers, cookies=cookies, allow_redirects=False
        )
    except Exception as exc:  # noqa: BLE001 (the app raised: a 500 to a browser)
        tally.failures.append(f"{how}: raised {type(exc).__name__}: {str(exc)[:300]}\n{_curl(case, user)}")
        return
    tally.statuses[(label, user.name, signed, response.status_code)] += 1
    tally.named += user.name in response.text
    if response.status_code >= 500:  # any server error (the stand-in Airflow refuses, never fails)
        tally.failures.append(f"{how}: {response.status_code} {response.text[:200]!r}\n{_curl(case, user)}")
    found = leaks(response, wanted)
    if found:
        tally.failures.append(f"{how}: the response echoes {found}\n{_curl(case, user)}")


def _curl(case: Any, user: User) -> str:
    try:
        return case.as_curl_command(headers=user.headers)
    except Exception:  # noqa: BLE001
        return repr(case)


# -- the tests ---------------------------------------------------------------------------------------------
def _users(site: Site) -> tuple[User, User]:
    """The reader and the mapper, each with the token the site's secrets hold for them."""
    return (
        User("Rita Reader", "21", "", site.secrets["reader token"]),
        User("Max Mapper", "22", "mapper", site.secrets["mapper token"]),
    )


def test_fuzz_every_route_as_a_reader_and_as_a_mapper(site: Site) -> None:
    tally = fuzz_as_reader_and_mapper(site)
    reader, mapper = _users(site)
    print(
        f"routes: {len(tally.sent)}; inputs per route and user: {POSITIVE + NEGATIVE}; requests: {sum(tally.sent.values())}"
    )
    for label, spent in sorted(tally.seconds.items(), key=lambda kv: -kv[1]):
        print(f"{spent:6.1f}s {tally.sent[label]:4d} {label}")
    for key, n in sorted(tally.statuses.items()):
        print(key, n)
    assert tally.failures == [], "\n\n".join(tally.failures[:20])
    assert set(tally.sent) == {f"{m.upper()} {p}" for m, p in route_table(site)}, "every route was fuzzed"
    assert all(n >= 2 * POSITIVE for n in tally.sent.values()), tally.sent
    assert tally.named > 0
    # With a valid form token the mapper's requests pass the CSRF check and reach the handlers: each
    # action route answered some of them with its own redirect (303) or its own refusal.
    for label in (label for label in tally.sent if label.startswith("POST")):
        answered = {
            s
            for (op, who, signed, s), _ in tally.statuses.items()
            if (op, who, signed) == (label, mapper.name, True)
        }
        assert answered - {403}, (label, answered)
    done = sum(
        n
        for (op, who, signed, s), n in tally.statuses.items()
        if (who, signed, s) == (mapper.name, True, 303)
    )
    assert done > 0, "no action of the mapper went through"


def route_table(site: Site) -> set[tuple[str, str]]:
    """(method, path) of every route the review app serves, as Starlette lists them."""
    app = site.root.routes[-1].app
    found = set()
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            if method in ("GET", "POST"):
                found.add((method.lower(), route.path))
    return found - {("get", "/openapi.json")}


def test_query_names_are_complete() -> None:
    """Each name a page reads from its query string is one the fuzz offers (`QUERY`): the names read
    from `request.query_params`, and those each parser handed the query (`X.parse(request.query_params)`)
    reads from it."""
    import importlib

    review = ROOT / "include" / "billing_sync" / "review"
    read = {tenancy.PARAM}  # read as `query_params.get(PARAM)`

    class Asked(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return default

    parsers = 0
    for source in review.rglob("*.py"):
        text = source.read_text()
        read.update(re.findall(r'query_params\.get\(\s*"([^"]+)"', text))
        module = importlib.import_module(".".join(source.relative_to(ROOT / "include").with_suffix("").parts))
        for dotted in set(re.findall(r"([\w.]+)\.parse\(request\.query_params\)", text)):
            parser: Any = module
            for name in dotted.split("."):
                parser = getattr(parser, name)
            parser.parse(Asked())
            parsers += 1
    assert parsers >= 2 and {"status", "pick", "q", "page"} <= read, (parsers, read)
    assert read <= set(QUERY), f"read from a query but not fuzzed: {sorted(read - set(QUERY))}"


def test_the_fuzz_finds_a_server_error_a_leak_and_a_readers_write(tmp_path: Path) -> None:
    """The harness itself, on an app with one fault per route, fuzzed the same way: each is reported."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'toy.db'}")
    notes = sa.Table("notes", sa.MetaData(), sa.Column("text", sa.String))
    notes.metadata.create_all(engine)
    tag = uuid.uuid4().hex[:12].upper()
    secrets = {"toy key": f"toyKEY{tag}", "reader token": f"rT{tag}", "mapper token": f"mT{tag}"}
    app = FastAPI()

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("an unhandled error")

    @app.get("/echo")
    def echo() -> Response:  # the key, base64-encoded, in a header
        return Response("ok", headers={"X-Debug": base64.b64encode(secrets["toy key"].encode()).decode()})

    @app.post("/note")
    def note(text: Annotated[str, Form()] = "") -> dict[str, str]:  # anyone may write
        with engine.begin() as conn:
            conn.execute(notes.insert().values(text=text))
        return {}

    root = FastAPI()
    root.mount(MOUNT, app)
    tally = fuzz_as_reader_and_mapper(Site(root, engine, Csrf(b"k"), secrets, {}), positive=2, negative=1)
    found = "\n".join(tally.failures)
    assert (
        "GET /crash as Rita Reader: raised RuntimeError" in found or "GET /crash as Rita Reader: 500" in found
    )
    assert "GET /echo as Max Mapper: the response echoes ['toy key']" in found
    assert "POST /note as Rita Reader (a reader) changed ['notes']" in found
    engine.dispose()
