"""Re-run a billing date: a DAG run triggered through Airflow's own REST API, as the signed-in user.

The review pages never create DAG runs themselves. They call ``POST /api/v2/dags/{dag_id}/dagRuns``
(the DAG of the page's tenant) of the API server they live in, with the user's own token (the ``Authorization: Bearer`` header the
request came with, else the UI's ``_token`` cookie: the one `get_user` took), so Airflow decides
whether this user may trigger the DAG (POST on its runs) and records who did (its audit log, the
run's ``triggering_user_name`` and note).

Where the REST API is reached (`api_base`, a dependency tests override):

1. ``BILLING_REVIEW_AIRFLOW_API_URL`` when set: Airflow's address as this process can reach it
   (e.g. ``http://127.0.0.1:8080``, with base_url's path when Airflow has one);
2. the API server's own TLS address, ``[api] base_url``, when it serves TLS itself (``[api]
   ssl_cert``): the certificate is made out to that name;
3. else the socket this very request came in on (the ASGI ``server`` address, base_url's path
   added): the API server itself, whatever proxy stands in front of it. Never the ``Host`` header,
   which the client chooses: the token must go nowhere but to Airflow.

The run: logical date = the billing date at the current UTC time of day (the DAG takes the UTC date
of its logical date as the billing date, so this is the same billing date, and it does not collide
with the scheduled run's logical date at 00:00, which Airflow keeps unique per DAG); run id
``desk__<billing date>__<UTC timestamp>``; conf ``{}``, so the Variable's settings apply.
"""

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypedDict, cast
from urllib.parse import quote

import httpx
from fastapi import HTTPException, Request, status

from billing_sync import runref, runtime
from billing_sync.names import DAG_ID

API_URL_ENV = "BILLING_REVIEW_AIRFLOW_API_URL"
TOKEN_COOKIE = "_token"  # Airflow's COOKIE_NAME_JWT_TOKEN (not imported: Airflow's API modules load late)
TIMEOUT_S = 30.0
RUN_PREFIX = "desk"
APPLY_PREFIX = "apply"  # Apply now: a run of the tenant's apply DAG (docs/contract.md §1)
RUN_ID = re.compile(rf"(?:{RUN_PREFIX}|{APPLY_PREFIX})__\d{{4}}-\d{{2}}-\d{{2}}__\d{{8}}T\d{{6}}Z")
NO_TOKEN = "No Airflow login to trigger the run with: sign in to Airflow again"


def not_allowed(dag_id: str) -> str:
    return f"You may not trigger runs of {dag_id}: Airflow refused"


NOT_ALLOWED = not_allowed(DAG_ID)  # the single-tenant form's DAG


class DAGRun(TypedDict, total=False):
    """One DAG run as Airflow 3's REST API answers it (`DAGRunResponse`), the fields read here.
    Airflow's answer is not trusted: each field is checked where it is read."""

    dag_run_id: object
    state: object
    conf: object
    run_after: object
    logical_date: object
    start_date: object
    end_date: object


class TaskInstance(TypedDict, total=False):
    """One task instance of a run as the REST API answers it (`TaskInstanceResponse`), the fields read."""

    task_id: object
    state: object
    try_number: object


class Answer(TypedDict, total=False):
    """The fields read of the REST API's JSON answers: `DAGResponse`'s ``is_paused``,
    `DAGRunCollectionResponse`'s ``dag_runs``, `TaskInstanceCollectionResponse`'s
    ``task_instances``, a created run's ``dag_run_id``, an error's ``detail``; any of them may be
    missing or of another type, so each is checked where it is read."""

    is_paused: object
    dag_runs: object
    task_instances: object
    dag_run_id: object
    detail: object


class EmptyConf(TypedDict):
    """A re-run's conf: nothing, so the Variable's settings apply."""


class TriggerBody(TypedDict):
    """The body of a trigger (Airflow 3's `TriggerDAGRunPostBody`)."""

    dag_run_id: str
    logical_date: str
    conf: runref.Scope | EmptyConf  # the apply DAG's conf, or a re-run's
    note: str


class RunExists(Exception):
    """Airflow answered 409: a run of this DAG with the same logical date or run id exists."""


@dataclass(frozen=True)
class Triggered:
    run_id: str
    logical_date: str
    paused: bool | None  # the DAG is paused: the run waits until someone unpauses it (None: unknown)


def api_base(request: Request) -> str:
    """Where this process reaches Airflow's REST API (see the module's docstring); no trailing /."""
    explicit = os.environ.get(API_URL_ENV, "").strip()
    if explicit:
        return explicit.rstrip("/")
    if _serves_tls():
        return runtime.airflow_base_url()
    root: str = request.scope.get("root_path", "")
    path = root.removesuffix(runtime.REVIEW_MOUNT_PATH)  # base_url's path, as the pages' links use it
    server = request.scope.get("server")
    if not server or server[1] is None:  # a Unix socket: no address to call
        return runtime.airflow_base_url()
    host, port = server
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}".rstrip("/")


def _serves_tls() -> bool:
    try:
        from airflow.configuration import conf

        return bool(conf.get("api", "ssl_cert", fallback=""))
    except Exception:  # no Airflow config (tests): plain HTTP
        return False


def user_token(request: Request) -> str | None:
    """The token the request authenticated with, in `get_user`'s order: Bearer header, then cookie."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(TOKEN_COOKIE) or None


def run_request(billing_date: date, now: datetime) -> TriggerBody:
    """The body of the trigger (Airflow 3's `TriggerDAGRunPostBody`)."""
    now = now.astimezone(UTC).replace(microsecond=0)
    logical = datetime.combine(billing_date, now.time(), UTC)
    return {
        "dag_run_id": f"{RUN_PREFIX}__{billing_date.isoformat()}__{now:%Y%m%dT%H%M%SZ}",
        "logical_date": logical.isoformat().replace("+00:00", "Z"),
        "conf": {},
        "note": f"Billing review: re-run of billing date {billing_date.isoformat()}",
    }


@dataclass(frozen=True)
class Scope:
    """What one decision touches: the companies and organizations Apply now syncs, nothing else."""

    billing_date: date
    companies: tuple[int, ...] = ()
    organizations: tuple[int, ...] = ()

    def conf(self) -> runref.Scope:
        """The apply DAG's conf (docs/contract.md §1 "Apply DAG")."""
        return {
            "billing_date": self.billing_date.isoformat(),
            "companies": sorted(set(self.companies)),
            "organizations": sorted(set(self.organizations)),
        }


def apply_request(scope: Scope, now: datetime, what: str) -> TriggerBody:
    """The trigger of Apply now: a run of the apply DAG with the decision's scope as its conf."""
    body = run_request(scope.billing_date, now)
    day = scope.billing_date.isoformat()
    return {
        **body,
        "dag_run_id": body["dag_run_id"].replace(f"{RUN_PREFIX}__", f"{APPLY_PREFIX}__", 1),
        "conf": scope.conf(),
        "note": f"Billing review: apply now ({what}), billing date {day}",
    }


def trigger_apply_run(
    base: str, token: str, scope: Scope, what: str, now: datetime | None = None, *, dag_id: str
) -> Triggered:
    """Trigger the tenant's apply DAG (`dag_id`) for exactly `scope`, as `trigger_billing_run` does."""
    return _trigger(base, token, apply_request(scope, now or datetime.now(UTC), what), dag_id)


def trigger_billing_run(
    base: str, token: str, billing_date: date, now: datetime | None = None, *, dag_id: str
) -> Triggered:
    """Trigger a run of `dag_id` (the tenant's DAG); `RunExists` on 409, an HTTPException with one
    plain sentence otherwise."""
    return _trigger(base, token, run_request(billing_date, now or datetime.now(UTC)), dag_id)


def api_client(token: str, timeout: float = TIMEOUT_S) -> httpx.Client:
    """A client of Airflow's REST API as the user (their token), never redirected, no proxy."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, headers=headers)


def _trigger(base: str, token: str, body: TriggerBody, dag_id: str) -> Triggered:
    dag = quote(dag_id, safe="")
    try:
        with api_client(token) as client:
            answer = client.post(f"{base}/api/v2/dags/{dag}/dagRuns", json=body)
            if answer.status_code in (200, 201):
                return Triggered(
                    run_id=str(_json(answer).get("dag_run_id") or body["dag_run_id"]),
                    logical_date=body["logical_date"],
                    paused=_paused(client, f"{base}/api/v2/dags/{dag}"),
                )
    except httpx.HTTPError:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, "Airflow's API could not be reached to trigger the run"
        ) from None
    raise _refusal(answer, dag_id)


def _refusal(answer: httpx.Response, dag_id: str) -> Exception:
    code = answer.status_code
    if code == status.HTTP_409_CONFLICT:
        return RunExists()
    if code == status.HTTP_401_UNAUTHORIZED:
        return HTTPException(status.HTTP_401_UNAUTHORIZED, "Airflow did not accept your login: sign in again")
    if code == status.HTTP_403_FORBIDDEN:
        return HTTPException(status.HTTP_403_FORBIDDEN, f"{not_allowed(dag_id)} ({_detail(answer)})")
    if code == status.HTTP_404_NOT_FOUND:
        return HTTPException(status.HTTP_502_BAD_GATEWAY, f"Airflow does not know the DAG {dag_id}")
    if code == status.HTTP_400_BAD_REQUEST:
        return HTTPException(status.HTTP_502_BAD_GATEWAY, f"Airflow refused the run: {_detail(answer)}")
    return HTTPException(status.HTTP_502_BAD_GATEWAY, f"Airflow answered {code} to the trigger")


def _paused(client: httpx.Client, url: str) -> bool | None:
    """Whether the DAG is paused (its run then only queues), or None when that cannot be read."""
    try:
        answer = client.get(url)
    except httpx.HTTPError:
        return None
    value = _json(answer).get("is_paused") if answer.status_code == 200 else None
    return value if isinstance(value, bool) else None


def _json(answer: httpx.Response) -> Answer:
    try:
        value = answer.json()
    except ValueError:
        return {}
    # Every field of an Answer is optional and of any type: any JSON object is one.
    return cast(Answer, value) if isinstance(value, dict) else {}


def _detail(answer: httpx.Response) -> str:
    """Airflow's own `detail`, short and on one line (it is shown as text, escaped)."""
    detail = _json(answer).get("detail")
    text = " ".join(str(detail if detail is not None else answer.reason_phrase).split())
    return text[:200]


# --- what the page says after a re-run -------------------------------------------------------------

NOTICES = {
    "queued": "DAG run {run} triggered for billing date {date}.",
    "queued_paused": (
        "DAG run {run} triggered for billing date {date}, but it cannot start: the DAG is paused. It "
        "starts once the DAG is unpaused."
    ),
    "queued_behind": (
        "DAG run {run} triggered for billing date {date}, but it cannot start yet: run {behind} holds "
        "the DAG's only slot (a scheduled run may wait days for its invoice). It starts when that run ends."
    ),
    "applying": "Apply now: run {run} of the apply DAG triggered for billing date {date}.",
    "applying_paused": (
        "Apply now: run {run} triggered for billing date {date}, but it cannot start: the apply DAG is "
        "paused. It starts once the DAG is unpaused."
    ),
    "exists": (
        "Airflow already has a run of billing date {date} at this moment (a second click?): see the "
        "DAG's runs."
    ),
    "apply_refused": (
        "Recorded, but Airflow refused to apply it now (your login may not trigger runs of the apply "
        "DAG, or has expired): the next run of billing date {date} applies it."
    ),
    "apply_failed": (
        "Recorded, but Apply now could not be triggered through Airflow: the next run of billing date "
        "{date} applies it."
    ),
    "apply_not_allowed": (
        "Recorded, but applying it now was not allowed: you do not hold the Apply power on this tenant "
        "(ask an administrator). The next run of billing date {date} applies it."
    ),
}
NO_RUN = ("exists", "apply_refused", "apply_failed", "apply_not_allowed")  # nothing was triggered
WARNINGS = ("queued_paused", "queued_behind", "applying_paused")  # triggered, but blocked
# An Airflow run id shown as the blocking run: the characters Airflow's own run ids use.
OTHER_RUN_ID = re.compile(r"[A-Za-z0-9_.:+\-]{1,250}")


def notice(request: Request) -> dict[str, str] | None:
    """The re-run's outcome from the redirect's query: chosen by code, its values re-checked, never
    echoed (a crafted link cannot make the page say something else). ``run`` is the DAG run's id
    (empty when none was made), for the link into the Airflow UI and the live progress; ``apply``
    is "1" for a run of the apply DAG; ``behind`` the run holding the slot; ``paused`` "1" when the
    DAG is paused (the page then offers to unpause it)."""
    code = request.query_params.get("rerun", "")
    raw_date = request.query_params.get("date", "")
    run = request.query_params.get("run", "")
    behind = request.query_params.get("behind", "")
    if code not in NOTICES or not _is_date(raw_date):
        return None
    if code not in NO_RUN and not RUN_ID.fullmatch(run):
        return None
    if code == "queued_behind" and not OTHER_RUN_ID.fullmatch(behind):
        return None
    applying = code.startswith("applying")
    if code not in NO_RUN and applying != run.startswith(f"{APPLY_PREFIX}__"):
        return None
    return {
        "text": NOTICES[code].format(run=run, date=raw_date, behind=behind),
        "kind": "error" if code in NO_RUN else "warn" if code in WARNINGS else "ok",
        "run": run if code not in NO_RUN else "",
        "apply": "1" if applying else "",
        "behind": behind if code == "queued_behind" else "",
        "paused": "1" if code.endswith("_paused") else "",
        "date": raw_date,
    }


def outcome_query(
    triggered: Triggered | None, billing_date: date, behind: str = "", *, applying: bool = False
) -> dict[str, str]:
    """The redirect's query after a re-run or Apply now (None: Airflow already had such a run);
    `behind`: an other run that holds the DAG's only slot."""
    day = billing_date.isoformat()
    if triggered is None:
        return {"rerun": "exists", "date": day}
    stem = "applying" if applying else "queued"
    if triggered.paused:
        return {"rerun": f"{stem}_paused", "date": day, "run": triggered.run_id}
    if behind and not applying:
        return {"rerun": "queued_behind", "date": day, "run": triggered.run_id, "behind": behind}
    return {"rerun": stem, "date": day, "run": triggered.run_id}


def _is_date(value: str) -> bool:
    try:
        return len(value) == 10 and date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False
