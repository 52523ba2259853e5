"""The billing review FastAPI app: server-rendered pages over the billing database.

`create_app()` is what the plugin mounts. Tests build it with their own engine and auth
(`create_app(engine=..., auth=ReviewAuth(...), csrf_secret=...)`); in the API server every argument
defaults to the real thing: the `billing_sync_db` connection, Airflow's auth dependencies and
``[api] secret_key``.

The pieces, as in the FastAPI full-stack template: `routes/` (one APIRouter per resource), `deps`
(the shared dependencies as ``Annotated`` aliases), `pages` (context and rendering), `inputs` (what
a request may carry), `security` (Airflow auth, CSRF), `tenancy` (which tenant a request is about:
every page and action is one tenant's), `queries/` (what the pages show, one module per page).

Route handlers are plain ``def``: the store is synchronous SQLAlchemy, and FastAPI runs such
handlers in its thread pool instead of blocking the API server's event loop.
"""

# No `from __future__ import annotations` in this package's route, deps and security modules:
# FastAPI reads `Annotated[..., Depends(...)]` from the real annotation objects.

from collections.abc import Callable
from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing_sync import runtime, store
from billing_sync.review import deps, routes
from billing_sync.review.bodylimit import BodyLimit
from billing_sync.review.inputs import BODY_MAX
from billing_sync.review.pages import ReviewContext, environment
from billing_sync.review.security import Csrf, ReviewAuth, airflow_auth, airflow_secret

PAGE_SIZE = 100
RUNS_PAGE_SIZE = 50


def create_app(
    *,
    engine: Engine | Callable[[], Engine] | None = None,
    auth: ReviewAuth | None = None,
    csrf_secret: bytes | None = None,
    reports_root: Path | None = None,
) -> FastAPI:
    """The app. `engine` may be an Engine or a callable returning one (resolved per request)."""
    auth = auth or airflow_auth()
    context = ReviewContext(
        engine=_engine_source(engine),
        csrf=Csrf(csrf_secret if csrf_secret is not None else airflow_secret()),
        reports_root=reports_root,
        env=environment(),
        login_url=auth.login_url,
        # Looked up per request, so a test can shrink them.
        page_size=lambda: PAGE_SIZE,
        runs_page_size=lambda: RUNS_PAGE_SIZE,
    )
    app = FastAPI(title="Billing review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = context
    deps.wire(app.dependency_overrides, auth)
    app.add_exception_handler(StarletteHTTPException, context.http_error)
    app.add_exception_handler(RequestValidationError, context.validation_error)
    app.add_middleware(BodyLimit, max_bytes=BODY_MAX)
    app.include_router(routes.router)  # every route: routes/__init__.py registers them all
    return app


def _engine_source(engine: Engine | Callable[[], Engine] | None) -> Callable[[], Engine]:
    if engine is None:
        return _airflow_engine
    if isinstance(engine, Engine):
        return lambda: engine
    return engine


def _airflow_engine() -> Engine:
    """The billing DB of the `billing_sync_db` connection, looked up per request (cheap, and a
    changed connection takes effect without a restart); one engine per URL for the process."""
    return _engine_for(runtime.database_url())


@cache
def _engine_for(url: str) -> Engine:
    engine = store.make_engine(url)
    store.ensure_schema(engine)
    return engine
