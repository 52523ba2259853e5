"""Shared by the proof tests: connections, the steps of a run without a scheduler, sandbox admin.

`run_steps` calls, in the DAG's order, exactly the `billing_sync.steps` functions the DAG's tasks
call, with clients built the way the tasks build them (from AIRFLOW_CONN_* connections through
HttpHook). It is how the tests drive dozens of runs in seconds; the DAG itself is exercised by the
full `dag.test()` runs of test_faults.py, test_security.py and test_executors.py.
"""

from __future__ import annotations

import base64
import json
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from billing_sandbox.connections import airflow_connections

if TYPE_CHECKING:
    from billing_sandbox.memory import MemorySources

BILLING_DATE = "2026-11-01"
SCENARIO_TIMEOUT_S = 30


# -- connections --------------------------------------------------------------------------------
def connection_env(
    scenario: Mapping[str, Any],
    huntress_url: str,
    connectwise_url: str,
    *,
    max_retries: int = 3,
    huntress_secret: str | None = None,
    connectwise_secret: str | None = None,
) -> dict[str, str]:
    """AIRFLOW_CONN_* values for a scenario's credentials (optionally a wrong secret), few retries."""
    retries = {"max_retries": max_retries}
    return airflow_connections(
        scenario,
        huntress_url,
        connectwise_url,
        huntress_secret=huntress_secret,
        connectwise_secret=connectwise_secret,
        huntress_extra=retries,
        connectwise_extra=retries,
    )


def db_connection_env(url: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_BILLING_SYNC_DB": json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url}})
    }


# -- a run, step by step --------------------------------------------------------------------------
@dataclass
class StepsRun:
    ref: dict[str, Any] | None = None
    done: list[str] = field(default_factory=list)
    failed_step: str | None = None
    error: BaseException | None = None
    result: dict[str, Any] | None = None

    @property
    def message(self) -> str:
        return "" if self.error is None else str(self.error)

    def describe(self) -> str:
        if self.error is None:
            return f"finished: {self.done}"
        tb = "".join(traceback.format_exception(self.error))
        return f"failed in {self.failed_step}: {type(self.error).__name__}: {self.error}\n{tb}"


Hook = Callable[[dict[str, Any]], None]


def run_steps(
    eng,
    run_id: str,
    billing_date: str = BILLING_DATE,
    *,
    variable: Any = None,
    params: Mapping[str, Any] | None = None,
    before: Mapping[str, Hook] | None = None,
    stop_before: str | None = None,
    sources: MemorySources | None = None,
) -> StepsRun:
    """One run through every step; stops at the first exception (what a failing task would raise).

    `sources`: the scenario served in memory (billing_sandbox.memory) instead of clients built from
    the connections, for tests about the run's data rather than the wire.

    `before[step](ref)` runs just before that step: the place to edit ConnectWise "between reads".
    `stop_before="push"` leaves the run where the push tasks would take over.
    """
    from billing_sync import steps
    from billing_sync.connectwise import ConnectWiseClient
    from billing_sync.huntress import HuntressClient
    from billing_sync.sources import ConnectWiseSource, HuntressSource

    run = StepsRun()
    hooks = dict(before or {})

    extracted: dict[str, Any] = {}

    def huntress() -> HuntressSource:
        return HuntressClient.from_connection() if sources is None else sources.huntress

    def cw(ref: Mapping[str, Any]) -> ConnectWiseSource:
        if sources is not None:
            return sources.connectwise
        # As the DAG's push tasks: the codebase extract_connectwise discovered, not a new discovery.
        return ConnectWiseClient.from_connection(
            concurrency=ref["settings"]["connectwise_concurrency"], codebase=extracted.get("codebase")
        )

    def step(name: str, fn: Callable[[], Any]) -> Any:
        if name == stop_before:
            raise _Stop
        if name in hooks and run.ref is not None:
            hooks[name](run.ref)
        value = fn()
        run.done.append(name)
        return value

    try:
        run.failed_step = "resolve"
        run.ref = step(
            "resolve",
            lambda: steps.resolve(
                eng, run_id, date.fromisoformat(billing_date), variable, dict(params or {}), "default"
            ),
        )
        run.failed_step = "find_invoice"
        found = step("find_invoice", lambda: steps.find_invoice(eng, run.ref, huntress()))
        if found is None:
            raise LookupError("no invoice for the billing date yet (the sensor would keep waiting)")
        run.ref = found
        for name, fn in (
            (
                "extract_huntress",
                lambda: steps.extract_huntress(eng, run.ref, huntress()),
            ),
            (
                "extract_connectwise",
                lambda: extracted.update(steps.extract_connectwise(eng, run.ref, cw(run.ref))),
            ),
            ("validate", lambda: steps.validate(eng, run.ref)),
            ("reconcile", lambda: steps.reconcile_run(eng, run.ref)),
        ):
            run.failed_step = name
            step(name, fn)
        run.failed_step = "quarantine"
        batches = step("quarantine", lambda: steps.quarantine(eng, run.ref))
        run.failed_step = "push"
        for b in batches:
            step("push", lambda b=b: steps.push_batch(eng, run.ref, b["batch"], cw(run.ref)))
        run.failed_step = "record_run"
        run.result = step("record_run", lambda: steps.record_run(eng, run.ref))
        run.failed_step = None
    except _Stop:
        run.failed_step = None
    except Exception as exc:  # the test inspects it: a task would fail with exactly this
        run.error = exc
    return run


class _Stop(Exception):
    """Raised at `stop_before`: the run ends there on purpose."""


# -- sandbox admin ----------------------------------------------------------------------------------
def admin(url: str, route: str, body: Any = None) -> Any:
    if body is None:
        resp = httpx.get(f"{url}/_sandbox/{route}", timeout=SCENARIO_TIMEOUT_S)
    else:
        resp = httpx.post(f"{url}/_sandbox/{route}", json=body, timeout=SCENARIO_TIMEOUT_S)
    resp.raise_for_status()
    return resp.json()


def set_faults(url: str, **faults: Any) -> None:
    admin(url, "faults", faults)


def cw_quantities(connectwise_url: str) -> dict[int, Any]:
    return {a["id"]: a["quantity"] for a in admin(connectwise_url, "state")["additions"]}


def served(url: str, method: str, route_suffix: str = "") -> int:
    """Requests the server answered with method and a route ending in route_suffix (faults included)."""
    by_route = admin(url, "requests")["by_route"]
    return sum(
        n for route, n in by_route.items() if route.startswith(method + " ") and route.endswith(route_suffix)
    )


def cw_api(sb_scenario: Mapping[str, Any], connectwise_url: str) -> httpx.Client:
    """An authenticated client of the ConnectWise sandbox: edits "by someone else" during a run."""
    c = sb_scenario["connectwise"]
    return httpx.Client(
        base_url=f"{connectwise_url}/v4_6_release/apis/3.0/",
        auth=(f"{c['company_id']}+{c['public_key']}", c["private_key"]),
        headers={"clientId": c["client_id"]},
        timeout=SCENARIO_TIMEOUT_S,
    )


# -- secret scans -----------------------------------------------------------------------------------
def needles(secrets: dict[str, str], basic: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each secret, its URL-quoted form, and each Basic-auth header value built from it."""
    out = dict(secrets)
    out.update({f"{k} (url-quoted)": quote(v, safe="") for k, v in secrets.items()})
    for login, password in basic:
        out[f"Basic {login}"] = base64.b64encode(f"{login}:{password}".encode()).decode()
    return out


def found_in(text: str, wanted: dict[str, str]) -> list[str]:
    return [name for name, value in wanted.items() if value in text]


def scan_files(root: Path, wanted: dict[str, str]) -> dict[str, list[str]]:
    hits = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        names = found_in(path.read_bytes().decode("utf-8", "replace"), wanted)
        if names:
            hits[str(path)] = names
    return hits


def scan_database(engine: sa.Engine, wanted: dict[str, str]) -> dict[str, list[str]]:
    """Every value of every column of every table, as text (JSON, bytes and numbers included)."""
    hits: dict[str, list[str]] = {}
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            rows = conn.execute(
                sa.table(table, *(sa.column(c["name"]) for c in inspector.get_columns(table))).select()
            ).all()
            for row in rows:
                for column, value in row._mapping.items():
                    names = found_in(value if isinstance(value, str) else repr(value), wanted)
                    if names:
                        hits.setdefault(f"{table}.{column}", []).extend(names)
    return hits


@contextmanager
def metadata_database(base: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for Airflow's metadata; dropped afterwards."""
    name = f"airflow_e2e_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # a generated name: identifiers cannot be bound
    try:
        yield sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def metadata_rows(url: str, sql: str, **params: Any) -> list[sa.Row]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql), params).all()
    finally:
        eng.dispose()
