"""The plugin file: what it registers, and that importing it stays cheap (every Airflow process
that loads plugins imports it, but only the API server serves the app)."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("fastapi", "jinja2", "pandas", "sqlalchemy", "billing_sync")


def test_registration() -> None:
    plugin = runpy.run_path(str(ROOT / "plugins" / "billing_review.py"))["BillingReviewPlugin"]
    [app] = plugin.fastapi_apps
    assert app["url_prefix"] == "/billing-review"
    assert [v["href"] for v in plugin.external_views] == [
        "billing-review/quarantine",
        "billing-review/runs",
        "billing-review/mapping",
        "billing-review/approvals",
        "billing-review/overrides",
        "billing-review/settings",
    ]
    assert len({v["url_route"] for v in plugin.external_views}) == 6


def test_import_is_cheap() -> None:
    code = (
        "import json, sys, runpy; import airflow.plugins_manager; before = set(sys.modules); "
        f"runpy.run_path({str(ROOT / 'plugins' / 'billing_review.py')!r}); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    new = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [m for m in new if m.split(".")[0] in HEAVY], new
