"""The Airflow connections that point the sync at a running sandbox, as AIRFLOW_CONN_* values.

One definition for the demo, `make airflow`, the tests and the benchmarks: the scenario's
credentials, the servers' URLs, and the Huntress rate limit the scenario enforces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def airflow_connections(
    scenario: Mapping[str, Any],
    huntress_url: str,
    connectwise_url: str,
    *,
    huntress_secret: str | None = None,
    connectwise_secret: str | None = None,
    huntress_extra: Mapping[str, Any] | None = None,
    connectwise_extra: Mapping[str, Any] | None = None,
    huntress_conn_id: str = "huntress_default",
    connectwise_conn_id: str = "connectwise_default",
) -> dict[str, str]:
    """`AIRFLOW_CONN_HUNTRESS_DEFAULT` and `AIRFLOW_CONN_CONNECTWISE_DEFAULT` (JSON form), or the
    connections of a tenant (`*_conn_id`, as its tenants-file entry names them).

    A `*_secret` replaces the scenario's (to provoke a 401); `*_extra` is merged into the extras.
    """
    h, c = scenario["huntress"], scenario["connectwise"]
    limits = {
        "rate_limit_per_minute": h.get("rate_limit_per_minute", 60),
        "rate_limit_window_s": h.get("rate_limit_window_s", 60),
    }
    return {
        f"AIRFLOW_CONN_{huntress_conn_id.upper()}": json.dumps(
            {
                "conn_type": "http",
                "host": huntress_url,
                "login": h["api_key"],
                "password": huntress_secret or h["api_secret"],
                "extra": {**limits, **(huntress_extra or {})},
            }
        ),
        f"AIRFLOW_CONN_{connectwise_conn_id.upper()}": json.dumps(
            {
                "conn_type": "http",
                "host": connectwise_url,
                "login": f"{c['company_id']}+{c['public_key']}",
                "password": connectwise_secret or c["private_key"],
                "extra": {"clientId": c["client_id"], **(connectwise_extra or {})},
            }
        ),
    }
