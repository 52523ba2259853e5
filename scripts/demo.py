"""`make demo`: run the DAG for the demo billing date against the sandbox, then show what happened.

Starts `python -m billing_sandbox` with the shipped demo scenario, points the Airflow connections at
it (as AIRFLOW_CONN_* variables of the child process only), runs `airflow dags test`, prints the
run's outcomes, reason codes and changes from the billing database, and stops the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from billing_sandbox.connections import airflow_connections

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "huntress_connectwise_billing_sync"


def start_sandbox(scenario: Path) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "billing_sandbox", "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        sys.exit(f"the sandbox did not start (exit {proc.wait()})")
    return proc, json.loads(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "demo.json")
    ap.add_argument("--date", default=None, help="billing date (default: the scenario's meta.billing_date)")
    ap.add_argument("--conf", default=None, help="JSON run conf, e.g. '{\"dry_run\": true}'")
    args = ap.parse_args(argv)
    scenario = json.loads(args.scenario.read_text())
    billing_date = args.date or scenario.get("meta", {}).get("billing_date", "2026-11-01")

    proc, urls = start_sandbox(args.scenario)
    try:
        env = {**os.environ, **airflow_connections(scenario, urls["huntress_url"], urls["connectwise_url"])}
        cmd = [str(Path(sys.executable).with_name("airflow")), "dags", "test", DAG_ID, billing_date]
        if args.conf:
            cmd += ["--conf", args.conf]
        print(
            f"$ airflow dags test {DAG_ID} {billing_date}  (sandbox: {urls['huntress_url']}, "
            f"{urls['connectwise_url']})",
            flush=True,
        )
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        log_path = Path(os.environ.get("AIRFLOW_HOME", ".")) / "demo-last-run.log"
        log_path.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            print(done.stdout[-4000:] + done.stderr[-4000:])
            print(f"\nthe DAG run failed (exit {done.returncode}); full log: {log_path}")
            return done.returncode
        print(f"DAG run finished; full log: {log_path}\n")
        from billing_sync import report, steps

        print(report.run_summary_text(steps.engine(), billing_date, tenant="default"))
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
