"""What parsing the DAG file reads: `billing_day` from the Variable, cheaply (benchmarks/dag_parse.py).

In a process without Airflow's task runtime loaded and no secrets backend configured, `Variable.get`
could only ask the environment; the DAG file reads `AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG` itself
there, and must not import that runtime (about 40 ms of every parse). Run in a fresh process, since
other tests load the runtime into this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import importlib.util, json, os, sys
import airflow.sdk

schedules = []
real_dag = airflow.sdk.dag


def spy(*args, **kwargs):  # the DAG file's `from airflow.sdk import dag` picks this up
    schedules.append(kwargs.get("schedule"))
    return real_dag(*args, **kwargs)


airflow.sdk.dag = spy
seen = {}
for name, value in json.loads(sys.argv[1]).items():
    if value is None:
        os.environ.pop("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", None)
    else:
        os.environ["AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG"] = value
    spec = importlib.util.spec_from_file_location(f"parsed_{name}", sys.argv[2])
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    seen[name] = schedules[-1]
print(json.dumps({"schedules": seen, "runtime": "airflow.sdk.execution_time.supervisor" in sys.modules}))
"""

CASES = {
    "unset": (None, "0 0 1 * *"),
    "day_15": ('{"billing_day": 15, "dry_run": true}', "0 0 15 * *"),
    "day_28": ('{"billing_day": 28}', "0 0 28 * *"),
    "out_of_range": ('{"billing_day": 31}', "0 0 1 * *"),
    "boolean": ('{"billing_day": true}', "0 0 1 * *"),
    "text": ('{"billing_day": "15"}', "0 0 1 * *"),
    "not_json": ("{billing_day: 15", "0 0 1 * *"),
    "not_an_object": ("[15]", "0 0 1 * *"),
}


def test_billing_day_comes_from_the_environment_without_loading_the_task_runtime() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__SECRETS__BACKEND"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            json.dumps({k: v for k, (v, _) in CASES.items()}),
            str(ROOT / "dags" / "huntress_connectwise_billing_sync.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["schedules"] == {k: want for k, (_, want) in CASES.items()}
    assert result["runtime"] is False, "parsing the DAG file imported Airflow's task runtime"
