"""Billing review: the server-rendered pages behind the Airflow UI plugin (plugins/billing_review.py).

Three pages, mounted by the plugin at ``/billing-review`` in Airflow's API server:

- ``/quarantine``: held sync keys; dismiss (with a note) or resolve them, reopen by mistake;
- ``/runs``: billing runs with their counts, mode, report files and a link to the DAG run;
- ``/mapping``: Huntress organization → ConnectWise company, with the rule that decided; add,
  change or remove a ``billing_org_map`` row.

Every page and action is one tenant's (docs/contract.md §1 Tenants): the ``tenant`` query parameter
names it, a switcher in the header changes it, and the rights asked are those on that tenant's DAG
(`tenancy`, `security`).

Everything goes through ``billing_sync.store`` (the same code the DAG uses). Importing this package
is cheap; ``billing_sync.review.app.create_app`` pulls in FastAPI, Jinja2, pandas and Airflow's
API-server security only when the app is built. See docs/ui.md.
"""

from billing_sync.runtime import REVIEW_MOUNT_PATH

MOUNT_PATH = REVIEW_MOUNT_PATH  # where the plugin mounts these pages (runtime names it)
