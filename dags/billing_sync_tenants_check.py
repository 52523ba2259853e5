"""The tenants file's broken entries, as this file's Airflow DAG import error.

`huntress_connectwise_billing_sync.py` builds one DAG per good entry of `BILLING_SYNC_TENANTS_FILE`
and must not fail for a broken one (that would hide every tenant). This file defines no DAG: it
raises, naming the line and the problem of each broken entry, so the DAG processor lists them under
"DAG Import Errors" while the other tenants keep running. A file broken as a whole (not JSON, no
`tenants` list) is the sync DAG file's own import error instead, reported once.
"""

from billing_sync.tenants import TenantsFileError, entry_problems

if problems := entry_problems():
    raise TenantsFileError("broken tenant entries (the other tenants run):\n" + "\n".join(problems))
