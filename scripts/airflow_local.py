"""`make airflow`: Airflow standalone + the sandbox on the demo scenario, to click through the DAG
and the billing review pages.

1. starts `python -m billing_sandbox` with scenarios/demo.json and points `huntress_default` and
   `connectwise_default` at it (AIRFLOW_CONN_* variables of the Airflow processes only);
2. unless the billing database already has a run (or --no-seed), runs the DAG once for the
   scenario's billing date with `airflow dags test`, so the pages have something to show;
3. runs `airflow standalone` (scheduler, DAG processor, triggerer, API server) on
   http://127.0.0.1:8080 with SimpleAuthManager and two users: `admin` (role admin) and `viewer`
   (read only); prints their passwords once the API server answers. Ctrl+C stops everything.

AIRFLOW_HOME and the dags/plugins folders come from the Makefile. See docs/ui.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import DAG_ID, start_sandbox  # noqa: E402  (sibling script, not a package)

from billing_sandbox.connections import airflow_connections  # noqa: E402

USERS = "admin:admin,viewer:viewer"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
READY_TIMEOUT_S = 300


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or ROOT / "airflow_home")


def airflow_env(urls: dict, scenario: dict, host: str, port: int) -> dict[str, str]:
    """The environment of every Airflow process: sandbox connections, local-only API, dev users."""
    env = {**os.environ, **airflow_connections(scenario, urls["huntress_url"], urls["connectwise_url"])}
    # standalone starts its components as `airflow ...` from PATH: make that this venv's airflow.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(airflow_home() / PASSWORDS_FILE))
    # LocalExecutor starts one worker process per parallelism slot (32 by default): a few will do here.
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
    env["AIRFLOW__API__HOST"] = host
    env["AIRFLOW__API__PORT"] = str(port)
    return env


def has_runs() -> bool:
    from billing_sync import steps, store

    return bool(store.list_runs(steps.engine(), limit=1))


def seed(env: dict[str, str], billing_date: str) -> None:
    """One DAG run in-line (as `make demo` does), so the pages are not empty on first visit."""
    print(f"Running the DAG once for {billing_date} against the sandbox (airflow dags test) ...", flush=True)
    log = airflow_home() / "airflow-local-seed.log"
    with log.open("w") as out:
        done = subprocess.run([airflow_bin(), "dags", "test", DAG_ID, billing_date], env=env, stdout=out,
                              stderr=subprocess.STDOUT)
    print(f"  {'done' if done.returncode == 0 else f'FAILED (exit {done.returncode})'}; log: {log}", flush=True)


def wait_and_greet(proc: subprocess.Popen, base: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2):
                break
        except OSError:
            time.sleep(1)
    else:
        return
    print(banner(base, Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])), flush=True)


def banner(base: str, password_file: Path) -> str:
    try:
        passwords = json.loads(password_file.read_text())
    except (OSError, ValueError):
        passwords = {}
    logins = "\n".join(f"    {user} / {pw}" for user, pw in passwords.items()) or f"    (see {password_file})"
    line = "=" * 72
    return (f"\n{line}\n Airflow: {base}   log in with (user / password, from {password_file}):\n{logins}\n"
            f" Billing pages: {base}/billing-review/quarantine  (also Plugins → Billing in the UI)\n"
            f" DAG: {base}/dags/{DAG_ID}\n Stop: Ctrl+C\n{line}\n")


def run_standalone(env: dict[str, str], base: str) -> int:
    # Its own process group, so stopping reaches every component it started, however we are stopped.
    proc = subprocess.Popen([airflow_bin(), "standalone"], env=env, start_new_session=True)
    try:
        wait_and_greet(proc, base, env)
        return proc.wait()
    except KeyboardInterrupt:
        stop_group(proc)
        return 0  # stopped on request


def stop_group(proc: subprocess.Popen) -> int:
    """SIGINT (what Ctrl+C sends; standalone shuts its components down), then SIGTERM, then SIGKILL."""
    for sig, grace in ((signal.SIGINT, 45), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "demo.json")
    ap.add_argument("--host", default="127.0.0.1", help="API server address (default: this machine only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--no-seed", action="store_true", help="do not run the DAG before starting Airflow")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` stops everything as Ctrl+C does
    scenario = json.loads(args.scenario.read_text())
    billing_date = scenario.get("meta", {}).get("billing_date", "2026-11-01")

    sandbox, urls = start_sandbox(args.scenario)
    print(f"Sandbox: Huntress {urls['huntress_url']}, ConnectWise {urls['connectwise_url']}", flush=True)
    try:
        env = airflow_env(urls, scenario, args.host, args.port)
        if not args.no_seed and not has_runs():
            seed(env, billing_date)
        return run_standalone(env, f"http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}")
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
