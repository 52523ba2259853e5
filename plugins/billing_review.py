"""Airflow UI plugin: the billing review pages (quarantine, runs, organization mapping, approvals,
overrides, settings).

Registers the FastAPI app at ``/billing-review`` in the API server and six nav entries (Plugins
menu → Billing) that show its pages inside the Airflow UI. The pages themselves live in
``billing_sync.review`` (the same package as the DAG); see docs/ui.md. The entries open the default
tenant's pages (or the first tenant's, under a tenants file); each page's header switches tenants.

Cheap to import: the plugin manager imports this file in every Airflow process that loads plugins
(scheduler, DAG processor, workers, CLI), but only the API server serves the app. So nothing here
imports FastAPI, Jinja2, pandas, SQLAlchemy or the API server's security module: the mounted object
is a tiny ASGI shim that builds the real app on its first request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

MOUNT_PATH = "/billing-review"  # = billing_sync.review.MOUNT_PATH (not imported: keep this file cheap)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class LazyReviewApp:
    """ASGI app that creates `billing_sync.review.app.create_app()` on first use.

    Building it on first request rather than at import also means a broken billing setup shows up
    as an error on these pages instead of breaking plugin loading for all of Airflow. The build is
    synchronous with no await in between, so concurrent first requests cannot build it twice.
    """

    def __init__(self) -> None:
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self._app is None:
            from billing_sync.review.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


def _view(name: str, page: str) -> dict[str, Any]:
    # href without a leading slash: the UI resolves it against its <base href>, so it also works
    # when Airflow is served under a path ([api] base_url).
    return {
        "name": name,
        "href": f"{MOUNT_PATH.lstrip('/')}/{page}",
        "url_route": f"billing-{page}",
        "destination": "nav",
        "category": "Billing",
    }


class BillingReviewPlugin(AirflowPlugin):
    name = "billing_review"
    fastapi_apps = [{"app": LazyReviewApp(), "url_prefix": MOUNT_PATH, "name": "Billing review"}]
    external_views = [
        _view("Billing quarantine", "quarantine"),
        _view("Billing runs", "runs"),
        _view("Organization mapping", "mapping"),
        _view("Billing approvals", "approvals"),
        _view("Billing overrides", "overrides"),
        _view("Billing settings", "settings"),
    ]
