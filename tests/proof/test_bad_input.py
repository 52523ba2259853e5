"""Bad input from either API ends as a quarantine row with the right reason, or as a clear task error.

Never a wrong quantity in ConnectWise, never a bare traceback. Two tables:

- DATA_CASES: bad values inside otherwise normal answers. Each case lives on its own customer
  (organization 100+n, company 200+n, agreement 300+n), so one run carries them all; each case
  is then checked on its own sync key, and every addition of every case on its quantity.
- RUN_CASES: answers that break a whole request (HTML or an empty body with 200, truncated JSON, a
  body cut off mid-transfer, the wrong JSON type). Each is one run that must stop with a message
  naming the API and the endpoint, having written nothing.

The sandbox serves what a scenario says; what it cannot say (an id as a string, NaN, a missing
`organization` object, a broken body) a CorruptingProxy in front of it says instead.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from billing_sync import steps, store
from tests.conftest import start_sandbox
from tests.proof.helpers import (
    admin,
    connection_env,
    cw_api,
    cw_quantities,
    run_steps,
    served,
)
from tests.proof.proxy import CorruptingProxy, Rule

PRODUCTS = {"edr": 752, "itdr": 753, "sat": 754, "siem": 755}
MARKUP_NAME = "<script>alert('x')</script> Zürich 東京 Ünïcode™ & Söhne \"Quoted\""
BASE_USAGE = {"edr": 12, "itdr": 0, "sat": 0, "siem": 0}
USAGE_LINES = r"/organization_usage_line_items$"
ADDITIONS = r"/finance/agreements/\d+/additions$"
ADDITION = r"/finance/agreements/\d+/additions/\d+$"


def org_id(n: int) -> int:
    return 100 + n


def company_id(n: int) -> int:
    return 200 + n


def agreement_id(n: int) -> int:
    return 300 + n


def addition_id(n: int, product: str = "edr") -> int:
    return 1000 + 10 * n + list(PRODUCTS).index(product)


# -- JSON rewrites (each targets one case's records) ------------------------------------------------
def on_lines(n: int, edit: Callable[[dict], None]) -> Callable[[Any], Any]:
    def rewrite(body: dict) -> dict:
        for line in body["organization_usage_line_items"]:
            org = line.get("organization")
            if isinstance(org, dict) and org.get("id") == org_id(n):
                edit(line)
        return body

    return rewrite


def on_records(
    match: Callable[[dict], bool], edit: Callable[[dict], None], key: str | None = None
) -> Callable[[Any], Any]:
    """Edit the records of a list answer (ConnectWise: the body; Huntress: body[key])."""

    def rewrite(body: Any) -> Any:
        for record in body[key] if key else body:
            if match(record):
                edit(record)
        return body

    return rewrite


def drop_records(match: Callable[[dict], bool]) -> Callable[[Any], Any]:
    return lambda body: [r for r in body if not match(r)]


def set_field(name: str, value: Any) -> Callable[[dict], None]:
    return lambda record: record.__setitem__(name, value)


def is_addition(n: int) -> Callable[[dict], bool]:
    return lambda r: r.get("id") == addition_id(n)


def set_usage(product: str, value: Any) -> Callable[[dict], None]:
    return lambda line: line["actual_usage"].__setitem__(product, value)


def duplicate_org(n: int, **changes: Any) -> Callable[[Any], Any]:
    def rewrite(body: dict) -> dict:
        org = next(o for o in body["organizations"] if o["id"] == org_id(n))
        body["organizations"].append({**org, **changes})
        return body

    return rewrite


def huge_org_id(n: int) -> Callable[[Any], Any]:
    def line(record: dict) -> None:
        record["organization"]["id"] = 2**70

    return on_lines(n, line)


# -- edits "by someone else" in ConnectWise between the read and the write -------------------------
def delete_addition(n: int) -> Callable[[dict, Any], None]:
    def edit(scenario: dict, url: str) -> None:
        with cw_api(scenario, url) as api:
            api.delete(f"finance/agreements/{agreement_id(n)}/additions/{addition_id(n)}").raise_for_status()

    return edit


def edit_quantity(n: int, quantity: int) -> Callable[[dict, Any], None]:
    def edit(scenario: dict, url: str) -> None:
        with cw_api(scenario, url) as api:
            api.patch(
                f"finance/agreements/{agreement_id(n)}/additions/{addition_id(n)}",
                json=[{"op": "replace", "path": "quantity", "value": quantity}],
            ).raise_for_status()

    return edit


@dataclass(frozen=True)
class DataCase:
    id: str
    expect: str  # the key's final outcome (updated / unchanged) or its quarantine reason code
    edr: Any = 12  # the EDR count on the invoice line (the scenario may carry any JSON value)
    cw_edr: float = 10  # the addition's quantity in ConnectWise before the run
    extra_usage: dict = field(default_factory=dict)
    key: str = "company"  # the sync key checked: company | organization | line
    name: str | None = None
    identifier: str | None = None  # company identifier; None = the organization key
    has_company: bool = True
    lines: int = 1
    huntress: tuple = ()  # (method, path regex, JSON rewrite) on the Huntress API
    connectwise: tuple = ()  # the same on the ConnectWise API
    before_push: Callable[[dict, Any], None] | None = None
    final: Any = "auto"  # the addition's quantity after the run; "auto" = usage if updated else before
    detail: str = ""  # a regex the quarantine detail must match


DATA_CASES: list[DataCase] = [
    DataCase("clean_change", "updated"),
    DataCase("clean_unchanged", "unchanged", edr=10),
    DataCase("count_missing", "invalid_usage", edr=..., detail="absent"),
    DataCase("count_null", "invalid_usage", edr=None, detail="null"),
    DataCase("count_negative", "invalid_usage", edr=-5, detail="negative"),
    DataCase("count_fractional", "invalid_usage", edr=12.5, detail="fractional"),
    DataCase("count_float_integral", "invalid_usage", edr=12.0, detail="decimal number"),
    DataCase("count_as_string", "invalid_usage", edr="12", detail="a string"),
    DataCase("count_huge", "invalid_usage", edr=10**12, detail="plausible maximum"),
    DataCase("count_beyond_int64", "invalid_usage", edr=2**70, detail="plausible maximum"),
    DataCase("count_boolean", "invalid_usage", edr=True, detail="boolean"),
    DataCase("count_object", "invalid_usage", edr={"count": 12}, detail="not a number"),
    DataCase(
        "count_nan_literal",
        "invalid_usage",
        huntress=(("GET", USAGE_LINES, lambda n: on_lines(n, set_usage("edr", math.nan))),),
        detail="not a number",
    ),
    DataCase("organization_twice_on_invoice", "invalid_usage", lines=2, detail="2 invoice lines"),
    DataCase("unknown_products_ignored", "updated", extra_usage={"xdr": 5, "ispm": 3, "": 1}),
    DataCase(
        "usage_not_an_object",
        "invalid_usage",
        huntress=(("GET", USAGE_LINES, lambda n: on_lines(n, set_field("actual_usage", [12, 0]))),),
    ),
    DataCase(
        "organization_object_missing",
        "invalid_usage",
        key="line",
        huntress=(("GET", USAGE_LINES, lambda n: on_lines(n, lambda line: line.pop("organization"))),),
        detail="no organization id",
    ),
    DataCase(
        "organization_is_a_string",
        "invalid_usage",
        key="line",
        huntress=(("GET", USAGE_LINES, lambda n: on_lines(n, set_field("organization", "Customer"))),),
        detail="no organization id",
    ),
    DataCase(
        "organization_id_as_string",
        "invalid_usage",
        key="line",
        huntress=(
            (
                "GET",
                USAGE_LINES,
                lambda n: on_lines(n, lambda line: line["organization"].__setitem__("id", str(org_id(n)))),
            ),
        ),
        detail="no organization id",
    ),
    DataCase(
        "organization_id_beyond_int64",
        "invalid_usage",
        key="line",
        huntress=(("GET", USAGE_LINES, huge_org_id),),
        detail="no organization id",
    ),
    DataCase(
        "organization_listed_twice_identically",
        "updated",
        huntress=(("GET", r"/v1/organizations$", lambda n: duplicate_org(n)),),
    ),
    # Which record is right cannot be known: held (as invalid_usage: reconcile matches on the first record).
    DataCase(
        "organization_listed_twice_differently",
        "invalid_usage",
        detail="more than once",
        huntress=(
            ("GET", r"/v1/organizations$", lambda n: duplicate_org(n, key="decoy", name="Decoy Industries")),
        ),
    ),
    DataCase("markup_and_unicode_names_sync", "updated", name=MARKUP_NAME),
    DataCase(
        "markup_name_unmapped",
        "unmapped_organization",
        key="organization",
        name=MARKUP_NAME + " Ltd",
        has_company=False,
        final=None,
    ),
    DataCase(
        "sql_injection_name_unmapped",
        "unmapped_organization",
        key="organization",
        name="'; DROP TABLE billing_runs;--",
        has_company=False,
        final=None,
    ),
    DataCase(
        "cw_quantity_as_string",
        "invalid_addition",
        connectwise=(("GET", ADDITIONS, lambda n: on_records(is_addition(n), set_field("quantity", "10"))),),
    ),
    DataCase(
        "cw_quantity_negative",
        "invalid_addition",
        connectwise=(("GET", ADDITIONS, lambda n: on_records(is_addition(n), set_field("quantity", -3))),),
    ),
    DataCase("cw_quantity_fractional", "invalid_addition", cw_edr=9.5),
    DataCase(
        "cw_quantity_null",
        "invalid_addition",
        connectwise=(("GET", ADDITIONS, lambda n: on_records(is_addition(n), set_field("quantity", None))),),
    ),
    DataCase(
        "cw_quantity_huge",
        "change_exceeds_limit",
        connectwise=(("GET", ADDITIONS, lambda n: on_records(is_addition(n), set_field("quantity", 1e300))),),
    ),
    DataCase(
        "cw_addition_id_as_string",
        "invalid_addition",
        connectwise=(
            ("GET", ADDITIONS, lambda n: on_records(is_addition(n), set_field("id", str(addition_id(n))))),
        ),
    ),
    DataCase(
        "cw_addition_without_product",
        "no_live_addition",
        connectwise=(("GET", ADDITIONS, lambda n: on_records(is_addition(n), lambda r: r.pop("product"))),),
    ),
    DataCase(
        "cw_effective_date_garbage",
        "no_live_addition",
        connectwise=(
            (
                "GET",
                ADDITIONS,
                lambda n: on_records(is_addition(n), set_field("effectiveDate", "last tuesday")),
            ),
        ),
    ),
    DataCase(
        "cw_cancelled_flag_as_string",
        "no_live_addition",
        connectwise=(
            (
                "GET",
                r"/finance/agreements$",
                lambda n: on_records(
                    lambda r: r["id"] == agreement_id(n), set_field("cancelledFlag", "false")
                ),
            ),
        ),
    ),
    DataCase(
        "cw_agreement_company_id_as_string",
        "no_live_addition",
        connectwise=(
            (
                "GET",
                r"/finance/agreements$",
                lambda n: on_records(
                    lambda r: r["id"] == agreement_id(n),
                    lambda r: r["company"].__setitem__("id", str(company_id(n))),
                ),
            ),
        ),
    ),
    DataCase(
        "cw_company_id_as_string",
        "unmapped_organization",
        key="organization",
        connectwise=(
            (
                "GET",
                r"/company/companies$",
                lambda n: on_records(lambda r: r["id"] == company_id(n), set_field("id", str(company_id(n)))),
            ),
        ),
    ),
    # The company went between the companies read and the agreements read: its agreement is gone.
    DataCase(
        "company_deleted_between_reads",
        "no_live_addition",
        connectwise=(
            (
                "GET",
                r"/finance/agreements$",
                lambda n: drop_records(lambda r: r["company"]["id"] == company_id(n)),
            ),
        ),
    ),
    DataCase(
        "addition_deleted_before_push",
        "push_rejected",
        before_push=delete_addition,
        final=None,
        detail="HTTP 404",
    ),
    DataCase(
        "addition_edited_before_push",
        "changed_since_read",
        before_push=lambda n: edit_quantity(n, 99),
        final=99,
        detail="99",
    ),
    # The write happened; only its answer is wrong: the quantity is right, the ledger says failed.
    DataCase(
        "patch_answers_other_quantity",
        "push_rejected",
        final=12,
        detail="777",
        connectwise=(
            (
                "PATCH",
                ADDITION,
                lambda n: (
                    lambda body: {**body, "quantity": 777} if body.get("id") == addition_id(n) else body
                ),
            ),
        ),
    ),
]


# -- the scenario -----------------------------------------------------------------------------------
def base_scenario(rate: int = 100_000) -> dict[str, Any]:
    return {
        "huntress": {
            "api_key": "hk_bad_input",
            "api_secret": "hs_bad_input_secret_5150",
            "rate_limit_per_minute": rate,
            "account": {"id": 1, "name": "Bad Input MSP", "subdomain": "badinput"},
            "organizations": [],
            "invoices": [
                {
                    "id": 5001,
                    "created_at": "2026-11-01T06:00:00Z",
                    "status": "paid",
                    "plan": "Huntress Partner",
                    "currency_type": "usd",
                    "period_start": "2026-10-01T00:00:00Z",
                    "period_end": "2026-11-01T00:00:00Z",
                    "lines": [],
                }
            ],
        },
        "connectwise": {
            "company_id": "badinput",
            "public_key": "pub_bad_input",
            "private_key": "priv_bad_input_8080",
            "client_id": "00000000-0000-0000-0000-00000000bad1",
            "companies": [],
            "catalog": [
                {"id": pid, "identifier": f"HUNTRESS-{p.upper()}", "description": p}
                for p, pid in PRODUCTS.items()
            ],
            "agreements": [],
        },
    }


def add_customer(scenario: dict, n: int, case: DataCase) -> None:
    h, c = scenario["huntress"], scenario["connectwise"]
    name = case.name or f"Customer {n:02d} {case.id}"
    key = f"cust{n:02d}"
    h["organizations"].append({"id": org_id(n), "name": name, "key": key})
    usage = {**BASE_USAGE, **case.extra_usage}
    if case.edr is ...:
        usage.pop("edr")
    else:
        usage["edr"] = case.edr
    for _ in range(case.lines):
        h["invoices"][0]["lines"].append({"organization_id": org_id(n), "actual_usage": dict(usage)})
    if not case.has_company:
        return
    c["companies"].append({"id": company_id(n), "identifier": case.identifier or key, "name": name})
    c["agreements"].append(
        {
            "id": agreement_id(n),
            "name": "Managed Security",
            "type": "Managed Services",
            "company_id": company_id(n),
            "agreementStatus": "Active",
            "cancelledFlag": False,
            "startDate": "2025-01-01T00:00:00Z",
            "additions": [
                {
                    "id": addition_id(n),
                    "product_id": PRODUCTS["edr"],
                    "quantity": case.cw_edr,
                    "effectiveDate": "2025-01-01T00:00:00Z",
                    "cancelledDate": None,
                }
            ],
        }
    )


def decoy_company(scenario: dict) -> None:
    """A company the conflicting duplicate organization record would match."""
    scenario["connectwise"]["companies"].append(
        {"id": 999, "identifier": "decoy", "name": "Decoy Industries"}
    )


def data_scenario() -> dict[str, Any]:
    scenario = base_scenario()
    for n, case in enumerate(DATA_CASES, start=1):
        add_customer(scenario, n, case)
    decoy_company(scenario)
    return scenario


def chained_rules(spec: list[tuple[str, str, str, Callable[[Any], Any]]], changed: Counter) -> list[Rule]:
    """One rule per (method, path), applying every case's rewrite of that answer in turn; `changed`
    counts, per case id, the answers its rewrite really altered."""
    grouped: dict[tuple[str, str], list[tuple[str, Callable[[Any], Any]]]] = {}
    for case_id, method, path, fn in spec:
        grouped.setdefault((method, path), []).append((case_id, fn))

    def chain(fns: list[tuple[str, Callable[[Any], Any]]]) -> Callable[[Any], Any]:
        def apply(body: Any) -> Any:
            for case_id, fn in fns:
                seen = json.dumps(body)
                body = fn(body)
                changed[case_id] += json.dumps(body) != seen
            return body

        return apply

    return [Rule(method, path, chain(fns)) for (method, path), fns in grouped.items()]


# -- fixtures ---------------------------------------------------------------------------------------
@dataclass
class Served:
    scenario: dict[str, Any]
    sandbox: Any
    huntress: CorruptingProxy
    connectwise: CorruptingProxy


# Session-scoped, though only this module uses them: pytest-xdist's work stealing can hand a worker
# this module's tests in several stretches, and a module fixture would run the whole data run again
# for each (seen: four data runs in one `make test`). The tests only read the run.
@pytest.fixture(scope="session")
def served_data(tmp_path_factory) -> Any:
    scenario = data_scenario()
    sb = start_sandbox(scenario, tmp_path_factory.mktemp("bad-input"))
    h, c = CorruptingProxy(sb.huntress_url).start(), CorruptingProxy(sb.connectwise_url).start()
    yield Served(scenario, sb, h, c)
    h.stop()
    c.stop()
    sb.stop()


@dataclass
class DataRun:
    before: dict[int, Any]
    after: dict[int, Any]
    run: Any
    outcomes: dict[str, dict[str, Any]]
    quarantine: dict[str, list[dict[str, Any]]]
    rules: list[Rule]
    changed: Counter
    engine: Any


@pytest.fixture(scope="session")
def data_run(served_data, tmp_path_factory) -> DataRun:
    """The one run over every data case (all proxy rewrites and edits at once)."""
    s = served_data
    h_spec, c_spec, changed = [], [], Counter()
    for n, case in enumerate(DATA_CASES, start=1):
        h_spec += [(case.id, m, p, make(n)) for m, p, make in case.huntress]
        c_spec += [(case.id, m, p, make(n)) for m, p, make in case.connectwise]
    rules = s.huntress.set(*chained_rules(h_spec, changed)) + s.connectwise.set(
        *chained_rules(c_spec, changed)
    )
    edits = [case.before_push(n) for n, case in enumerate(DATA_CASES, start=1) if case.before_push]

    def before_push(_ref: dict) -> None:
        for edit in edits:
            edit(s.scenario, s.sandbox.connectwise_url)

    eng = store.make_engine(f"sqlite:///{tmp_path_factory.mktemp('bad-input-db') / 'billing.db'}")
    before = cw_quantities(s.sandbox.connectwise_url)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in connection_env(s.scenario, s.huntress.url, s.connectwise.url, max_retries=2).items():
            mp.setenv(k, v)
        run = run_steps(eng, "bad-input-data", before={"push": before_push})
    assert run.error is None, run.describe()
    outcomes = store.read_frame(eng, "bad-input-data", "outcomes", tenant="default")
    final = steps.final_outcomes(eng, run.ref)
    quarantine: dict[str, list[dict[str, Any]]] = {}
    for row in store.list_quarantine(eng, status="open", limit=None, tenant="default"):
        quarantine.setdefault(row["sync_key"], []).append(row)
    assert len(outcomes) == len(final)
    return DataRun(
        before,
        cw_quantities(s.sandbox.connectwise_url),
        run,
        {r["sync_key"]: r for r in final.to_dict("records")},
        quarantine,
        rules,
        changed,
        eng,
    )


def sync_key(case: DataCase, n: int) -> str:
    if case.key == "company":
        return f"company:{company_id(n)}:edr"
    if case.key == "organization":
        return f"organization:{org_id(n)}:edr"
    # A line without a usable organization id is keyed by its line id; the sandbox numbers lines 1, 2, ...
    first_line = 1 + sum(c.lines for c in DATA_CASES[: n - 1])
    return f"line:{first_line}:edr"


# -- the data table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n,case", list(enumerate(DATA_CASES, start=1)), ids=[c.id for c in DATA_CASES])
def test_bad_value_ends_in_the_right_outcome(data_run: DataRun, n: int, case: DataCase) -> None:
    key = sync_key(case, n)
    row = data_run.outcomes[key]
    if case.expect in ("updated", "unchanged"):
        assert (row["outcome"], row["reason_code"]) == (case.expect, None), row
        assert key not in data_run.quarantine
    else:
        assert (row["outcome"], row["reason_code"]) == ("quarantined", case.expect), row
        rows = data_run.quarantine.get(key, [])
        assert [r["reason_code"] for r in rows] == [case.expect], "one open quarantine row with that reason"
        assert re.search(case.detail, rows[0]["detail"] or ""), rows[0]["detail"]
    if case.has_company:
        assert data_run.after.get(addition_id(n)) == expected_quantity(case, data_run.before[addition_id(n)])


def expected_quantity(case: DataCase, before: Any) -> Any:
    if case.final != "auto":
        return case.final
    return case.edr if case.expect == "updated" else before


def test_every_rewrite_was_served(data_run: DataRun) -> None:
    """A rewrite that never altered an answer would let its case pass without proving anything."""
    assert all(rule.hits > 0 for rule in data_run.rules), [(r.method, r.path, r.hits) for r in data_run.rules]
    rewritten = {c.id for c in DATA_CASES if c.huntress or c.connectwise}
    assert {case_id for case_id in rewritten if data_run.changed[case_id] == 0} == set()


def test_markup_and_injection_names_round_trip(data_run: DataRun) -> None:
    by_name = {r["huntress_organization_name"] for rows in data_run.quarantine.values() for r in rows}
    assert MARKUP_NAME + " Ltd" in by_name and "'; DROP TABLE billing_runs;--" in by_name
    with data_run.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.runs)).scalar_one() == 1


# -- whole-run failures -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunCase:
    id: str
    api: str  # which proxy spoils the answer: huntress | connectwise
    method: str
    path: str
    action: Any
    failed_step: str | None  # None: the run finishes
    message: str  # a regex on the error (or, for finished runs, on nothing)


RUN_CASES = [
    RunCase(
        "invoices_html_200",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        "html",
        "find_invoice",
        r"Huntress GET /v1/reseller/invoices failed after 2 attempts: HTTP 200 with a non-JSON body \(text/html",
    ),
    RunCase(
        "invoices_empty_200",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        "empty",
        "find_invoice",
        r"Huntress GET /v1/reseller/invoices failed after 2 attempts: HTTP 200 with an empty body",
    ),
    RunCase(
        "invoices_not_an_object",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        lambda body: body["invoices"],
        "find_invoice",
        r"Huntress GET /v1/reseller/invoices returned list, not an object",
    ),
    RunCase(
        "invoices_list_is_an_object",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        lambda body: {**body, "invoices": {"5001": body["invoices"][0]}},
        "find_invoice",
        r"Huntress GET /v1/reseller/invoices: response has no 'invoices' list",
    ),
    RunCase(
        "invoices_pagination_not_an_object",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        lambda body: {**body, "pagination": ["next"]},
        "find_invoice",
        r"Huntress GET /v1/reseller/invoices: pagination is list, not an object",
    ),
    RunCase(
        "invoice_without_id",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        lambda body: {
            **body,
            "invoices": [{k: v for k, v in i.items() if k != "id"} for i in body["invoices"]],
        },
        "find_invoice",
        r"Huntress invoice .* has no integer id",
    ),
    RunCase(
        "invoice_id_as_string",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        lambda body: {**body, "invoices": [{**i, "id": str(i["id"])} for i in body["invoices"]]},
        "find_invoice",
        r"Huntress invoice .* has no integer id",
    ),
    # An invoice whose date cannot be read is no invoice of this date: the sensor keeps waiting.
    RunCase(
        "invoice_created_at_garbage",
        "huntress",
        "GET",
        r"/v1/reseller/invoices$",
        lambda body: {**body, "invoices": [{**i, "created_at": "yesterday"} for i in body["invoices"]]},
        "find_invoice",
        r"no invoice for the billing date yet",
    ),
    RunCase(
        "organizations_truncated_json",
        "huntress",
        "GET",
        r"/v1/organizations$",
        "truncate",
        "extract_huntress",
        r"Huntress GET /v1/organizations failed after 2 attempts: HTTP 200 with a non-JSON",
    ),
    RunCase(
        "usage_lines_cut_mid_body",
        "huntress",
        "GET",
        USAGE_LINES,
        "short_read",
        "extract_huntress",
        r"Huntress GET /v1/reseller/invoices/\{id\}/organization_usage_line_items failed after 2 attempts: "
        r"connection error \(ChunkedEncodingError\)",
    ),
    RunCase(
        "usage_lines_not_a_list",
        "huntress",
        "GET",
        USAGE_LINES,
        lambda body: {**body, "organization_usage_line_items": None},
        "extract_huntress",
        r"response has no 'organization_usage_line_items' list",
    ),
    RunCase(
        "usage_lines_items_not_objects",
        "huntress",
        "GET",
        USAGE_LINES,
        lambda body: {**body, "organization_usage_line_items": [1, "two", None]},
        "extract_huntress",
        r"Huntress GET /v1/reseller/invoices/\{id\}/organization_usage_line_items: item 0 is int, not an object",
    ),
    RunCase(
        "companyinfo_without_codebase",
        "connectwise",
        "GET",
        r"/login/companyinfo/",
        lambda body: {k: v for k, v in body.items() if k != "Codebase"},
        "extract_connectwise",
        r"ConnectWise /login/companyinfo gave no Codebase",
    ),
    RunCase(
        "companies_html_200",
        "connectwise",
        "GET",
        r"/company/companies$",
        "html",
        "extract_connectwise",
        r"ConnectWise GET /company/companies failed after 2 attempts: HTTP 200 with a non-JSON body",
    ),
    RunCase(
        "catalog_truncated_json",
        "connectwise",
        "GET",
        r"/procurement/catalog$",
        "truncate",
        "extract_connectwise",
        r"ConnectWise GET /procurement/catalog failed after 2 attempts",
    ),
    RunCase(
        "agreements_not_a_list",
        "connectwise",
        "GET",
        r"/finance/agreements$",
        lambda body: {"items": body},
        "extract_connectwise",
        r"ConnectWise GET /finance/agreements returned dict, not a list",
    ),
    RunCase(
        "additions_items_not_objects",
        "connectwise",
        "GET",
        ADDITIONS,
        lambda body: [*body, "garbage"],
        "extract_connectwise",
        r"ConnectWise GET /finance/agreements/\{id\}/additions: item \d+ is str, not an object",
    ),
    RunCase(
        "agreement_gone_before_additions_read",
        "connectwise",
        "GET",
        r"/finance/agreements/302/additions$",
        "status:404",
        "extract_connectwise",
        r"ConnectWise GET /finance/agreements/\{id\}/additions was refused: HTTP 404",
    ),
    RunCase("patch_answers_html", "connectwise", "PATCH", ADDITION, "html", None, ""),
    RunCase("patch_refused_403", "connectwise", "PATCH", ADDITION, "status:403", None, ""),
    RunCase(
        "invoice_without_lines",
        "huntress",
        "GET",
        USAGE_LINES,
        lambda body: {**body, "organization_usage_line_items": []},
        None,
        "",
    ),
]


RUN_CUSTOMERS = 3  # customer n's EDR: 12 on the invoice, 10 in ConnectWise → one change each


def run_scenario() -> dict[str, Any]:
    scenario = base_scenario()
    for n in range(1, RUN_CUSTOMERS + 1):
        add_customer(scenario, n, DataCase(f"run{n}", "updated"))
    return scenario


@pytest.fixture(scope="module")
def served_runs(tmp_path_factory) -> Any:
    scenario = run_scenario()
    sb = start_sandbox(scenario, tmp_path_factory.mktemp("bad-runs"))
    h, c = CorruptingProxy(sb.huntress_url).start(), CorruptingProxy(sb.connectwise_url).start()
    yield Served(scenario, sb, h, c)
    h.stop()
    c.stop()
    sb.stop()


SECRETS_OF = ("hs_bad_input_secret_5150", "priv_bad_input_8080")


@pytest.mark.parametrize("case", RUN_CASES, ids=[c.id for c in RUN_CASES])
def test_broken_answer_fails_clearly_or_quarantines(
    served_runs: Served, case: RunCase, tmp_path: Path, monkeypatch
) -> None:
    s = served_runs
    for url in (s.sandbox.huntress_url, s.sandbox.connectwise_url):
        admin(url, "reset", {})
    proxy = s.huntress if case.api == "huntress" else s.connectwise
    other = s.connectwise if proxy is s.huntress else s.huntress
    (rule,) = proxy.set(Rule(case.method, case.path, case.action))
    other.set()
    for k, v in connection_env(s.scenario, s.huntress.url, s.connectwise.url, max_retries=2).items():
        monkeypatch.setenv(k, v)
    eng = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    before = cw_quantities(s.sandbox.connectwise_url)

    run = run_steps(eng, f"bad-run-{uuid.uuid4().hex[:6]}")

    assert rule.hits > 0, "the spoiled answer was never requested"
    assert run.failed_step == case.failed_step, run.describe()
    if case.failed_step is not None:
        assert re.search(case.message, run.message), run.describe()
        assert not any(s in run.message for s in SECRETS_OF)
        assert served(s.sandbox.connectwise_url, "PATCH") == 0
        assert cw_quantities(s.sandbox.connectwise_url) == before
        return
    check_finished_run(case, run, eng, before, cw_quantities(s.sandbox.connectwise_url))


def check_finished_run(case: RunCase, run, eng, before: dict[int, Any], after: dict[int, Any]) -> None:
    counts = run.result["counts"]
    held = store.list_quarantine(eng, status="open", limit=None, tenant="default")
    if case.id == "invoice_without_lines":
        assert after == before
        assert {r["reason_code"] for r in held} == {"missing_from_invoice"}
        assert counts["missing_from_invoice"] == RUN_CUSTOMERS
        return
    ledger = {
        r["sync_key"]: r["action"] for r in store.changes_for_run(eng, run.ref["run_id"], tenant="default")
    }
    assert len(ledger) == RUN_CUSTOMERS
    if case.action == "html":
        # The write happened and only its answer was spoiled: the re-read after it says so, and the
        # ledger agrees with ConnectWise.
        assert after == {k: 12 for k in before} and not held
        assert set(ledger.values()) == {"updated"} and counts["updated"] == RUN_CUSTOMERS
        return
    # Refused on the way: nothing written, each change quarantined with the API and endpoint named.
    assert after == before and set(ledger.values()) == {"failed"}
    assert {r["reason_code"] for r in held} == {"push_rejected"} and counts["push_rejected"] == RUN_CUSTOMERS
    pattern = r"ConnectWise PATCH /finance/agreements/\{id\}/additions/\{additionId\} was refused: HTTP 403"
    assert all(re.search(pattern, r["detail"]) for r in held), [r["detail"] for r in held]
