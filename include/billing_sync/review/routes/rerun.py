"""The re-run button for a billing date.

Re-run a billing date: the button that applies a fix (a mapping, a raised limit) without leaving
the review pages. The run is triggered through Airflow's REST API as the signed-in user
(`airflow_runs`): Airflow decides who may (POST on the runs of the page's tenant's DAG) and records
who did.

The button takes the ``apply`` power on the page's tenant (`deps.ApplyDep`: refused here, 403, without
it) and a valid form token; Airflow then decides the trigger itself, as for any run.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse

from billing_sync.review import airflow_live, airflow_runs
from billing_sync.review.deps import ApplyDep, ContextDep, TenantDep
from billing_sync.review.inputs import BACK_MAX, QuarantineFilter, parse_billing_date
from billing_sync.review.routes.quarantine import parse_place

router = APIRouter()


@router.post("/rerun")
def rerun(
    request: Request,
    _: ApplyDep,
    context: ContextDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    billing_date: Annotated[str, Form()],
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    day = parse_billing_date(billing_date)
    place = _back(back)  # parsed before anything is triggered: a bad filter refuses the request
    token = airflow_runs.user_token(request)
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, airflow_runs.NO_TOKEN)
    try:
        triggered: airflow_runs.Triggered | None = airflow_runs.trigger_billing_run(
            api, token, day, dag_id=tenant.dag_id
        )
    except airflow_runs.RunExists:
        triggered = None
    outcome = airflow_runs.outcome_query(triggered, day, _holding(api, token, tenant.dag_id, triggered))
    if place is None:
        return context.redirect(request, "/mapping", outcome)
    filters, page = place  # the same filters and page of the queue
    return context.redirect(
        request, "/quarantine", {**filters.query(), "page": page if page > 1 else None, **outcome}
    )


def _holding(api: str, token: str, dag_id: str, triggered: airflow_runs.Triggered | None) -> str:
    """The run that holds the DAG's only slot ahead of the one just triggered ("" if none is known)."""
    if triggered is None or triggered.paused:
        return ""
    found = airflow_live.blockers(api, token, dag_id, triggered.run_id)
    return found.holding[0]["run_id"] if found and found.holding else ""


def _back(back: str) -> tuple[QuarantineFilter, int] | None:
    """Where the button was: "mapping", or the quarantine list's filters and page."""
    return None if back == "mapping" else parse_place(back)
