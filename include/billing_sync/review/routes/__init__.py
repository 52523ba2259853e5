"""The routes, one APIRouter per resource (the FastAPI full-stack template's ``api/routes``):

    quarantine   /quarantine, /quarantine/{row_id}              read; act (QuarantineDep)
                 /quarantine/export.csv                         read
    runs         /runs, /runs/{run_id}, .../report, .../files/  read
    preflight    /runs/preflight[?run=1]                        read: read-only checks of the APIs
    mapping      /mapping, /mapping/{organization_id}/delete    read; change who pays (MappingsDep)
                 /mapping/bulk, /mapping/companies              change who pays; read (the picker)
    rerun        /rerun                                         the apply power (ApplyDep); then Airflow
    live         /runs/live, /runs/live.js, /unpause            read (a run's state); unpause: ApplyDep
    history      /history, /history/export.csv                  read: the decision history
    settings     /settings; /settings/preview, /settings (POST)  read; preview and save (SettingsDep)
    approvals    /approvals, /approvals/new, .../{id}/revoke    read; approve held changes, additions (ApprovalsDep)
    overrides    /overrides, /overrides/{id}/retire              read; add and retire standing overrides (OverridesDep)

`router` gathers them all, plus ``/`` (to the quarantine): `create_app` includes it and nothing else.
"""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from billing_sync.review.deps import ContextDep, ReaderDep
from billing_sync.review.routes import (
    approvals,
    history,
    live,
    mapping,
    overrides,
    preflight,
    quarantine,
    rerun,
    runs,
    settings,
)

router = APIRouter()
router.include_router(quarantine.router)
router.include_router(live.router)  # before runs: /runs/live is no run id
router.include_router(preflight.router)  # before runs: /runs/preflight is no run id
router.include_router(runs.router)
router.include_router(mapping.router)
router.include_router(rerun.router)
router.include_router(history.router)
router.include_router(settings.router)
router.include_router(approvals.router)
router.include_router(overrides.router)


@router.get("/", include_in_schema=False)
def home(_: ReaderDep, context: ContextDep, request: Request) -> RedirectResponse:
    return context.redirect(request, "/quarantine")
