"""Where things live at run time: the billing database, the reports, the Airflow UI.

Each is looked up when asked (environment, Airflow connection, Airflow config), never at import, so
a test or a worker that changes AIRFLOW_HOME or a connection sees the change. Airflow is imported
inside the functions that need it; of ours only `names`, so every layer may import this module.
The engine itself is `store.engine_for(database_url())`: building one needs the schema, which this
layer must not know.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from .names import DAG_ID, DB_CONN_ID
from .tenants import DEFAULT_TENANT, dag_id_of

DB_FILENAME = "billing_sync.db"
DEFAULT_BASE_URL = "http://localhost:8080"
# Where the plugin mounts the review pages in Airflow's API server.
REVIEW_MOUNT_PATH = "/billing-review"


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def default_url(airflow_home: str | Path) -> str:
    return f"sqlite:///{Path(airflow_home).expanduser() / DB_FILENAME}"


def database_url() -> str:
    """The `billing_sync_db` connection's URI, else SQLite `billing_sync.db` in AIRFLOW_HOME."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(DB_CONN_ID)
    except AirflowNotFoundException:
        return default_url(airflow_home())
    explicit: str | None = (conn.extra_dejson or {}).get("sqlalchemy_url")
    if explicit:
        return explicit
    if conn.conn_type == "sqlite":  # Airflow keeps the file path in `schema`; get_uri() would quote it
        return f"sqlite:///{conn.schema or conn.host}"
    uri = conn.get_uri()
    return "postgresql://" + uri.split("://", 1)[1] if uri.startswith("postgres://") else uri


def reports_root() -> Path:
    """Where runs write their reports: BILLING_SYNC_REPORTS_DIR, else AIRFLOW_HOME/billing_reports."""
    return Path(os.environ.get("BILLING_SYNC_REPORTS_DIR") or airflow_home() / "billing_reports")


# -- links into the Airflow UI -------------------------------------------------------------------
def airflow_base_url() -> str:
    """`[api] base_url`, the address people open Airflow's UI at."""
    try:
        from airflow.sdk.configuration import conf

        base = conf.get("api", "base_url", fallback=None)
    except Exception:
        base = None
    return (base or DEFAULT_BASE_URL).rstrip("/")


def run_url(run_id: str, dag_id: str = DAG_ID) -> str:
    return f"{airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_url(run_id: str, task_id: str, map_index: int | None = None, dag_id: str = DAG_ID) -> str:
    mapped = f"/mapped/{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{run_url(run_id, dag_id)}/tasks/{quote(task_id, safe='')}{mapped}"


def review_url(path: str, tenant: str) -> str:
    """A billing-review page (`path` from the mount, e.g. "/mapping"); the pages of a tenant other
    than the default take it as the `tenant` query parameter."""
    query = "" if tenant == DEFAULT_TENANT else f"?tenant={quote(tenant, safe='')}"
    return f"{airflow_base_url()}{REVIEW_MOUNT_PATH}{path}{query}"


def report_page_url(run_id: str, tenant: str) -> str:
    """The billing-review plugin's page of the run's report."""
    return review_url(f"/runs/{quote(run_id, safe='')}/report", tenant)


def run_links(run_id: str, tenant: str) -> dict[str, str]:
    """The run in Airflow's UI (its tenant's DAG) and its report page."""
    return {"airflow_run": run_url(run_id, dag_id_of(tenant)), "report_page": report_page_url(run_id, tenant)}
