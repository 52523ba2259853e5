"""What a DAG run is doing, as Airflow's REST API tells the signed-in user (issue 20 §2, §1).

The review pages read runs the way they trigger them (`airflow_runs`): through the REST API of the
API server they live in, with the user's own token, so Airflow decides what this user may see. Read
here, in plain words for the desk:

- `run_state`: one run's state and, by state, what it waits behind (the DAG is paused, another run
  holds the only slot — `max_active_runs=1` —, that run's sensor waits for its invoice), the step it
  is at, or the step that failed and where its log is;
- `blockers`: what keeps a just-triggered full re-run from starting;
- `unpause`: ``PATCH /api/v2/dags/{dag_id}`` ``is_paused=false``, the way on from a paused DAG.

Task logs are linked in the Airflow UI (``/dags/<dag>/runs/<run>/tasks/<task>``), never copied here.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict, cast
from urllib.parse import quote

import httpx
from fastapi import HTTPException, status

from billing_sync.review.airflow_runs import Answer, DAGRun, TaskInstance, _json, api_client

ACTIVE = ("queued", "running")
WAITING = ("up_for_reschedule", "deferred")  # a sensor between pokes / a deferred trigger
FAILED_TASK = ("failed", "upstream_failed")
LIST_LIMIT = 100  # runs of one DAG read for the Runs page and for blockers
Params = tuple[tuple[str, str | int], ...]  # a request's query, names may repeat (state=…&state=…)
_ACTIVE_QUERY: Params = (*(("state", s) for s in ACTIVE), ("limit", LIST_LIMIT))
PAGE_TIMEOUT_S = 3.0  # a read that only adds badges to a page: the page is drawn without them after it
# The plain reason of a failed step, by its task state.
REASONS = {
    "failed": "the step failed{tries}: its log says why",
    "upstream_failed": "a step before it failed",
}


class Holding(TypedDict):
    """An other active run of the DAG: its id, state and the task it waits at ("" for none)."""

    run_id: str
    state: str
    waiting: str


class Behind(Holding):
    url: str  # the run in the Airflow UI


class RunView(TypedDict):
    """A run as the desk shows it (`run_state`)."""

    state: str  # queued|running|success|failed|... as Airflow says
    text: str  # one plain sentence
    run_url: str
    step: str  # the running or failing task
    log_url: str
    paused: NotRequired[bool]  # queued: the DAG is paused
    behind: NotRequired[Behind]  # queued: the run holding the DAG's only slot


@dataclass(frozen=True)
class Blockers:
    """What keeps a queued run of a DAG from starting (empty: nothing known)."""

    paused: bool = False
    holding: list[Holding] = field(default_factory=list)  # other active runs

    def __bool__(self) -> bool:
        return self.paused or bool(self.holding)


@contextmanager
def _client(token: str, timeout: float | None = None) -> Iterator[httpx.Client]:
    try:
        with api_client(token) if timeout is None else api_client(token, timeout) as c:
            yield c
    except httpx.HTTPError:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, "Airflow's API could not be reached") from None


def _get(client: httpx.Client, url: str, params: Params | None = None) -> Answer:
    answer = client.get(url, params=params)
    if answer.status_code == status.HTTP_401_UNAUTHORIZED:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Airflow did not accept your login: sign in again")
    if answer.status_code == status.HTTP_403_FORBIDDEN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Airflow does not let you read these runs")
    if answer.status_code == status.HTTP_404_NOT_FOUND:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Airflow has no such DAG run")
    if answer.status_code != status.HTTP_200_OK:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"Airflow answered {answer.status_code}")
    return _json(answer)


def _dag(base: str, dag_id: str) -> str:
    return f"{base}/api/v2/dags/{quote(dag_id, safe='')}"


def list_runs(base: str, token: str, dag_id: str, limit: int = LIST_LIMIT) -> list[DAGRun]:
    """The DAG's runs, newest first, as Airflow has them (every state)."""
    with _client(token) as client:
        return _runs(client, base, dag_id, (("order_by", "-run_after"), ("limit", limit)))


def active_runs(base: str, token: str, dag_id: str, timeout: float = PAGE_TIMEOUT_S) -> list[DAGRun]:
    """The DAG's queued and running runs, in one request and a short wait: what a page marks as
    "applying…" must not hold the page up when Airflow is slow."""
    with _client(token, timeout) as client:
        return _runs(client, base, dag_id, _ACTIVE_QUERY)


def _runs(client: httpx.Client, base: str, dag_id: str, params: Params) -> list[DAGRun]:
    runs = _get(client, f"{_dag(base, dag_id)}/dagRuns", params).get("dag_runs")
    # Every field of a DAGRun is optional and of any type: any JSON object is one.
    return [cast(DAGRun, r) for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def _tasks(client: httpx.Client, base: str, dag_id: str, run_id: str) -> list[TaskInstance]:
    url = f"{_dag(base, dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    tasks = _get(client, url).get("task_instances")
    return [cast(TaskInstance, t) for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []


def _blockers(client: httpx.Client, base: str, dag_id: str, run_id: str) -> Blockers:
    paused = _get(client, _dag(base, dag_id)).get("is_paused") is True
    others = [
        r
        for r in _runs(client, base, dag_id, _ACTIVE_QUERY)
        if r.get("dag_run_id") != run_id and r.get("state") == "running"
    ]
    holding: list[Holding] = []
    for other in others:
        other_id = str(other.get("dag_run_id"))
        waiting = [t for t in _tasks(client, base, dag_id, other_id) if t.get("state") in WAITING]
        holding.append(
            {
                "run_id": other_id,
                "state": str(other.get("state")),
                "waiting": str(waiting[0].get("task_id")) if waiting else "",
            }
        )
    return Blockers(paused, holding)


def blockers(base: str, token: str, dag_id: str, run_id: str) -> Blockers | None:
    """What keeps `run_id` (just triggered) from starting; None when Airflow could not tell."""
    try:
        with _client(token) as client:
            return _blockers(client, base, dag_id, run_id)
    except HTTPException:
        return None


def unpause(base: str, token: str, dag_id: str) -> None:
    """Unpause the DAG as the user: Airflow decides whether they may (PATCH on the DAG)."""
    with _client(token) as client:
        answer = client.patch(
            _dag(base, dag_id), params={"update_mask": "is_paused"}, json={"is_paused": False}
        )
    if answer.status_code == status.HTTP_200_OK:
        return
    if answer.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
        raise HTTPException(answer.status_code, f"You may not unpause {dag_id}: Airflow refused")
    raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"Airflow answered {answer.status_code} to the unpause")


def run_state(base: str, token: str, dag_id: str, run_id: str, ui: str) -> RunView:
    """The run as the desk shows it (`RunView`). `ui` is the Airflow UI's root path, for links."""
    run_path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    with _client(token) as client:
        run = _get(client, f"{_dag(base, dag_id)}/dagRuns/{quote(run_id, safe='')}")
        state = str(run.get("state") or "queued")
        view: RunView = {
            "state": state,
            "text": "",
            "run_url": ui.rstrip("/") + run_path,
            "step": "",
            "log_url": "",
        }
        if state == "queued":
            return _queued(view, _blockers(client, base, dag_id, run_id), dag_id, ui)
        tasks = _tasks(client, base, dag_id, run_id)
    if state == "running":
        current = _current(tasks)
        step = str(current.get("task_id")) if current else ""
        waiting = current is not None and current.get("state") in WAITING
        text = (
            f"Running: {step}" + (" (waiting, it checks again shortly)" if waiting else "")
            if step
            else "Running"
        )
        return {**view, "step": step, "text": text + "."}
    if state == "failed":
        broken = next((t for t in tasks if t.get("state") == "failed"), None) or next(
            (t for t in tasks if t.get("state") in FAILED_TASK), None
        )
        if broken is None:
            return {**view, "text": "Failed (Airflow marked the run failed; no step failed)."}
        step = str(broken.get("task_id"))
        tries = broken.get("try_number")
        said = f" after {tries} tries" if isinstance(tries, int) and tries > 1 else ""
        reason = REASONS.get(str(broken.get("state")), "the step did not finish").format(tries=said)
        log_url = f"{view['run_url']}/tasks/{quote(step, safe='')}"
        return {**view, "step": step, "log_url": log_url, "text": f"Failed at {step}: {reason}."}
    if state == "success":
        return {**view, "text": "Done."}
    return {**view, "text": f"Airflow says the run is {state}."}


def _queued(view: RunView, found: Blockers, dag_id: str, ui: str) -> RunView:
    if found.paused:
        return {
            **view,
            "text": f"Queued: the DAG {dag_id} is paused; the run starts once it is unpaused.",
            "paused": True,
        }
    if found.holding:
        first = found.holding[0]
        why = f", waiting at {first['waiting']}" if first["waiting"] else ""
        url = f"{ui.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(first['run_id'], safe='')}"
        return {
            **view,
            "text": f"Queued behind run {first['run_id']} ({first['state']}{why}), which holds the DAG's only slot.",
            "behind": {**first, "url": url},
        }
    return {**view, "text": "Queued: waiting for the scheduler to start it."}


def _current(tasks: list[TaskInstance]) -> TaskInstance | None:
    for wanted in (("running",), WAITING, ("queued", "scheduled")):
        found = [t for t in tasks if t.get("state") in wanted]
        if found:
            return found[0]
    return None
