"""A run's live state as JSON for the page's script.

The work happening (issue 20 §2): a run's state as JSON for the page's script, and the way on
from a paused DAG.

    GET  /runs/live?dag_id=…&run_id=…   read: the run as Airflow tells the user, and once it is done
                                        what billing_runs recorded of it (static/live.js polls it)
    GET  /runs/live.js                  the polling script
    POST /unpause                       a reader's form; Airflow decides (PATCH on the DAG)

Only the page's tenant's two DAGs (monthly and apply) are asked about: any other ``dag_id`` is no
run of this page (404), so a reader of one tenant never learns of another's runs through here.
"""

from pathlib import Path
from typing import Annotated, NotRequired, TypedDict, cast

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from billing_sync import money, store, tenants
from billing_sync.review import airflow_live, airflow_runs
from billing_sync.review.deps import ApplyDep, ContextDep, EngineDep, ReaderDep, TenantDep
from billing_sync.review.inputs import BACK_MAX, check_run_id, parse_billing_date
from billing_sync.review.queries.runs import recorded_money
from billing_sync.review.routes.rerun import _back
from billing_sync.review.tenancy import PageTenant


class RunResult(TypedDict):
    """What a finished run recorded in billing_runs, as the live view shows it."""

    status: str
    written: int
    held: int
    counts: dict[str, int]
    recovered: str


class Unpause(TypedDict):
    url: str
    dag: str  # "apply" for the apply DAG, "" for the monthly one


class LiveView(airflow_live.RunView):
    """The JSON static/live.js polls: the run as Airflow tells it, and once it is done its result."""

    done: bool
    result: NotRequired[RunResult | None]
    unpause: NotRequired[Unpause]


router = APIRouter()
SCRIPT = Path(__file__).parent.parent / "static" / "live.js"
TERMINAL = ("success", "failed")


def tenant_dag(tenant: PageTenant, dag_id: str) -> str:
    """`dag_id` when it is one of the tenant's DAGs, else 404."""
    if dag_id not in (tenant.dag_id, tenants.apply_dag_id_of(tenant.id)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No run of this tenant's DAGs")
    return dag_id


@router.get("/runs/live")
def live(
    request: Request,
    _: ReaderDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    dag_id: str = "",
    run_id: str = "",
) -> JSONResponse:
    dag = tenant_dag(tenant, dag_id)
    run = check_run_id(run_id)
    token = airflow_runs.user_token(request)
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, airflow_runs.NO_TOKEN)
    state = airflow_live.run_state(api, token, dag, run, context.airflow_url(request, "/"))
    # A RunView holds none of the keys LiveView adds (mypy cannot know that of a ** item).
    view = cast(LiveView, {**state, "done": state["state"] in TERMINAL})
    if view["state"] == "success":
        view["result"] = _result(eng, run, tenant.id)
    if view.get("paused"):
        view["unpause"] = {
            "url": context.url(request, "/unpause"),
            "dag": "apply" if dag != tenant.dag_id else "",
        }
    return JSONResponse(view, headers={"Cache-Control": "no-store"})


def _result(eng: Engine, run_id: str, tenant: str) -> RunResult | None:
    """What the run wrote, what is still held and the money recovered, from its billing_runs row."""
    row = store.get_run(eng, run_id, tenant=tenant)
    if row is None:
        return None
    counts = {k: v for k, v in (row.get("counts") or {}).items() if k != "total" and v}
    recorded = recorded_money(row)
    held = store.count_quarantine(eng, run_id=run_id, status="open", tenant=tenant)
    written = sum(int(counts.get(k) or 0) for k in ("updated", "created"))
    return {
        "status": row["status"],
        "written": written,
        "held": held,
        "counts": counts,
        "recovered": money.signed(recorded["recovered"]) if recorded else "",
    }


@router.get("/runs/live.js")
def live_script(_: ReaderDep) -> Response:
    return Response(
        SCRIPT.read_text(encoding="utf-8"),
        media_type="text/javascript; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


@router.post("/unpause")
def unpause(
    request: Request,
    _: ApplyDep,
    context: ContextDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    billing_date: Annotated[str, Form()],
    dag: Annotated[str, Form()] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    """Unpause the tenant's monthly DAG (or, ``dag=apply``, its apply DAG) as the user."""
    day = parse_billing_date(billing_date)
    place = _back(back)
    token = airflow_runs.user_token(request)
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, airflow_runs.NO_TOKEN)
    dag_id = tenants.apply_dag_id_of(tenant.id) if dag == "apply" else tenant.dag_id
    airflow_live.unpause(api, token, dag_id)
    outcome = {"done": "unpaused", "date": day.isoformat()}
    if place is None:
        return context.redirect(request, "/mapping", outcome)
    filters, page = place  # the same filters and page of the queue
    return context.redirect(
        request, "/quarantine", {**filters.query(), "page": page if page > 1 else None, **outcome}
    )
