"""One Apply now (issue 20 §1) beside the full run it follows, against a fresh sandbox.

    python benchmarks/apply_run.py --scenario FILE [--concurrency 4] [--latency-ms 40]

A full run of the billing date through the step functions (benchmarks/sync_run.py), then a person's
approval of one change the guard held (its numbers, as the desk records them), then the apply of
that company (billing_sync.apply.run) in a fresh Python process, as the apply DAG's one task runs
it: imports, clients from the Airflow connections, the invoice check, the scoped ConnectWise reads,
reconcile, push, record. Counted from the sandboxes' own request logs (both servers), timed from
the process start to its end. Not counted: the scheduler's own start of the task (the LocalExecutor
forks a task process in a second or two; docs/benchmarks.md).

Prints one JSON line: the full run's requests and wall, the apply's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402 - sibling modules, found through the line above
import sync_run  # noqa: E402

APPLY_RUN_ID = "manual__bench_apply"
# The apply DAG's task, as a fresh process: what it imports and builds, it pays for.
APPLY = """
import json, sys, time
started = time.perf_counter()
from billing_sync import apply, steps
from billing_sync.connectwise import ConnectWiseClient
from billing_sync.huntress import HuntressClient
result = apply.run(
    steps.engine(), sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], tenant="default",
    huntress=HuntressClient.from_connection(),
    connectwise=lambda: ConnectWiseClient.from_connection(),
)
print(json.dumps({"counts": result["counts"], "keys": result["keys"], "in_process_s": time.perf_counter() - started}))
"""


def held_change(eng: Any) -> dict[str, Any]:
    """A key the guard held (change_exceeds_limit) with its addition and numbers: what a person approves."""
    from billing_sync import store

    outcomes = store.read_frame(eng, sync_run.RUN_ID, "outcomes", tenant="default")
    held = outcomes[(outcomes["reason_code"] == "change_exceeds_limit") & outcomes["addition_id"].notna()]
    if held.empty:
        raise RuntimeError("the scenario has no held change to approve")
    return dict(held.iloc[0])


def requests_since(sb: benchlib.Sandbox, since: float) -> dict[str, Any]:
    out: dict[str, Any] = {"by_route": {}}
    for api in ("huntress", "connectwise"):
        log = benchlib.admin(sb.url(api), f"requests?log=1&since={since}")["log"]
        out[api] = len(log)
        for e in log:
            route = f"{api} {e['route']}"
            out["by_route"][route] = out["by_route"].get(route, 0) + 1
    out["total"] = out["huntress"] + out["connectwise"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=benchlib.LATENCY_MS)
    args = parser.parse_args(argv)
    with benchlib.run_against(args.scenario, args.latency_ms) as sb:
        from billing_sync import steps, store

        started = time.perf_counter()
        full = sync_run.run_steps(args.concurrency, "reseller", "record_run")
        full_wall = time.perf_counter() - started
        full_requests = sum(
            benchlib.admin(sb.url(api), "requests")["total"] for api in ("huntress", "connectwise")
        )
        eng = steps.engine()
        key = held_change(eng)
        store.add_approval(
            eng,
            billing_date=benchlib.BILLING_DATE,
            sync_key=str(key["sync_key"]),
            cw_company_id=int(key["company_id"]),
            product=str(key["product"]),
            kind="change",
            addition_id=int(key["addition_id"]),
            agreement_id=int(key["agreement_id"]),
            from_quantity=key["previous_quantity"],
            to_quantity=int(key["target"]),
            user="Bench",
            user_id="bench",
            tenant="default",
        )
        conf = {
            "billing_date": benchlib.BILLING_DATE,
            "companies": [int(key["company_id"])],
            "organizations": [],
        }
        variable = json.dumps({"connectwise_concurrency": args.concurrency, "invoice_source": "reseller"})
        since = time.time()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", APPLY, APPLY_RUN_ID, json.dumps(conf), variable],
            capture_output=True,
            text=True,
            check=False,
        )
        apply_wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the apply failed: {done.stderr[-2000:]}")
        applied = json.loads(done.stdout.strip().splitlines()[-1])
        made = requests_since(sb, since)
    benchlib.emit(
        {
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "full": {"wall_s": round(full_wall, 2), "requests": full_requests, "steps": full["steps"]},
            "apply": {
                "wall_s": round(apply_wall, 2),
                "in_process_s": round(applied["in_process_s"], 2),
                "requests": made,
                "keys": applied["keys"],
                "updated": applied["counts"].get("updated", 0),
            },
            "load_average": benchlib.load_average(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
