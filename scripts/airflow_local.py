"""`make airflow`: Airflow standalone + the sandbox on the demo scenario, to click through the DAG
and the billing review pages.

1. starts `python -m billing_sandbox` with scenarios/demo.json and points `huntress_default` and
   `connectwise_default` at it (AIRFLOW_CONN_* variables of the Airflow processes only);
2. unless the billing database already has a run (or --no-seed), runs the DAG once for the
   scenario's billing date with `airflow dags test`, so the pages have something to show;
3. runs `airflow standalone` (scheduler, DAG processor, triggerer, API server) on
   http://127.0.0.1:8080 with SimpleAuthManager and two users: `admin` (role admin) and `viewer`
   (read only); prints their passwords once the API server answers. With --host/--port every
   process, task runners included, reaches the API server there (`[api] base_url`, `[core]
   execution_api_server_url`), and the links runs write name it.

Ctrl+C, `kill` (SIGTERM) and any exit stop everything: each child runs in its own process group,
and `Supervisor` stops every group (SIGTERM, a grace period, SIGKILL), then whatever else of the
tree is left, and reaps it all, so no Airflow component or zombie outlives the script.

AIRFLOW_HOME and the dags/plugins folders come from the Makefile. See docs/ui.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import psutil  # an Airflow dependency

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import DAG_ID  # noqa: E402  (sibling script, not a package)

from billing_sandbox.connections import airflow_connections  # noqa: E402

USERS = "admin:admin,viewer:viewer"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
READY_TIMEOUT_S = 300
STOP_GRACE_S = 30.0  # after SIGTERM, before SIGKILL: the scheduler finishes its loop, workers their task
KILL_WAIT_S = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


# --- process supervision ---------------------------------------------------------------------------


class Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: stop everything (a KeyboardInterrupt, so Ctrl+C and kill are one path)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Supervisor:
    """The children of this script, each the leader of its own session and process group.

    A signal to a child's group reaches everything it starts in that group (`airflow standalone`'s
    scheduler, DAG processor, triggerer, API server and their workers); the terminal's Ctrl+C reaches
    only this script, which then stops the groups itself, newest first: SIGTERM to the group, up to
    `grace_s` for its processes to go, SIGKILL to what is left. Processes that left their group (Airflow
    puts task runners in groups of their own) are stopped after the groups, the same way.

    On Linux it is the "child subreaper" of its tree: a process whose parent dies first (standalone
    exits before its components) is reparented here rather than to PID 1, which in a container often
    never reaps, and `reap()` collects it. Use as a context manager, after `install()`: SIGINT and
    SIGTERM raise `Stop`, and leaving the block (or the interpreter) stops everything.
    """

    def __init__(self, grace_s: float | None = None) -> None:
        self.grace_s = STOP_GRACE_S if grace_s is None else grace_s
        self.children: list[subprocess.Popen] = []
        self.stopping = False
        self.subreaper = become_subreaper()
        self._starting = False
        self._pending: int | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        atexit.register(self.stop_all)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:  # a second Ctrl+C while stopping: the stop is bounded, let it finish
            return
        if self._starting:  # raised once the child being started is registered, so it is stopped too
            self._pending = signum
            return
        raise Stop(signum)

    def start(self, cmd: Sequence[str], **popen: Any) -> subprocess.Popen:
        """Popen in a new session, registered before a stop signal can interrupt.

        (Not by blocking the signals around Popen: a child inherits the blocked mask, and a child
        that cannot receive SIGTERM only ever stops by SIGKILL.)
        """
        self._starting = True
        try:
            proc = subprocess.Popen(list(cmd), start_new_session=True, **popen)
            self.children.append(proc)
        finally:
            self._starting = False
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise Stop(signum)
        return proc

    def wait(self, proc: subprocess.Popen, poll_s: float = 1.0) -> int:
        """Wait for a child, reaping orphans meanwhile."""
        while proc.poll() is None:
            self.reap()
            time.sleep(poll_s)
        return proc.returncode

    def reap(self) -> None:
        """Collect every child that has exited, without taking a tracked Popen's exit status from it."""
        tracked = {p.pid: p for p in self.children if p.returncode is None}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            if info.si_pid in tracked:
                tracked.pop(info.si_pid).poll()
            else:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(info.si_pid, 0)

    def stop_all(self) -> None:
        if self.stopping and not self.children:
            return
        self.stopping = True
        for proc in reversed(self.children):
            stop_group(proc, self.grace_s, self.reap)
        stop_strays(self.grace_s, self.reap)
        self.reap()
        self.children.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def become_subreaper() -> bool:
    """Make orphaned descendants children of this process (Linux prctl); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def group_members(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies are only waiting to be reaped)."""
    members = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
    return members


def stop_group(proc: subprocess.Popen, grace_s: float, reap: Callable[[], None] = lambda: None) -> int:
    """SIGTERM to the child's process group, up to `grace_s` for it to empty, then SIGKILL; reaped."""
    pgid = proc.pid  # start_new_session: the child leads its group
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        proc.poll()
        reap()
        if not group_members(pgid):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()
            reap()
            if not group_members(pgid):
                break
            time.sleep(0.05)
    try:
        return proc.wait(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): say so rather than hang
        print(f"process {proc.pid} did not stop", file=sys.stderr, flush=True)
        return -signal.SIGKILL


def stop_strays(grace_s: float, reap: Callable[[], None] = lambda: None) -> None:
    """Descendants still running after their groups stopped (they had left them): SIGTERM, then SIGKILL."""
    strays = [p for p in psutil.Process().children(recursive=True) if _running(p)]
    if not strays:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in strays:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else KILL_WAIT_S)
        while strays and time.monotonic() < deadline:
            reap()
            strays = [p for p in strays if _running(p)]
            time.sleep(0.05)
        if not strays:
            return


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start_sandbox(sup: Supervisor, scenario: Path) -> tuple[subprocess.Popen, dict]:
    proc = sup.start(
        [sys.executable, "-m", "billing_sandbox", "--scenario", str(scenario)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        sys.exit(f"the sandbox did not start (exit {proc.wait()})")
    return proc, json.loads(line)


# --- the script ------------------------------------------------------------------------------------


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
    # The connection form's Test button (off by default since Airflow 2.7): the typed connections'
    # tests make read-only calls (billing_sync.conn_check), here against the sandbox.
    env.setdefault("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    env["AIRFLOW__API__HOST"] = host
    env["AIRFLOW__API__PORT"] = str(port)
    # Without these two, Airflow assumes http://localhost:8080 (airflow/executors/base_executor.py
    # get_execution_api_server_url; [api] base_url in config.yml): on any other port every task process
    # called nothing, was retried and failed with an empty log, and the links runs write (reports,
    # alerts) pointed at :8080.
    env["AIRFLOW__API__BASE_URL"] = api_url(host, port)
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{api_url(host, port)}/execution/"
    return env


def api_url(host: str, port: int) -> str:
    """Where this machine's processes and browser reach the API server (listening on `host`)."""
    if host in ("0.0.0.0", "::", ""):  # every address: this machine's own is one of them
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def has_runs() -> bool:
    from billing_sync import steps, store

    return bool(store.list_runs(steps.engine(), limit=1, tenant="default"))


def seed(sup: Supervisor, env: dict[str, str], billing_date: str) -> None:
    """One DAG run in-line (as `make demo` does), so the pages are not empty on first visit."""
    print(f"Running the DAG once for {billing_date} against the sandbox (airflow dags test) ...", flush=True)
    log = airflow_home() / "airflow-local-seed.log"
    with log.open("w") as out:
        proc = sup.start(
            [airflow_bin(), "dags", "test", DAG_ID, billing_date],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        code = sup.wait(proc, poll_s=0.5)
    print(f"  {'done' if code == 0 else f'FAILED (exit {code})'}; log: {log}", flush=True)


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
    return (
        f"\n{line}\n Airflow: {base}   log in with (user / password, from {password_file}):\n{logins}\n"
        f" Billing pages: {base}/billing-review/quarantine  (also Plugins → Billing in the UI)\n"
        f" DAG: {base}/dags/{DAG_ID}\n Stop: Ctrl+C\n{line}\n"
    )


def run_standalone(sup: Supervisor, env: dict[str, str], base: str) -> int:
    proc = sup.start([airflow_bin(), "standalone"], env=env)
    wait_and_greet(proc, base, env)
    return sup.wait(proc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "demo.json")
    ap.add_argument("--host", default="127.0.0.1", help="API server address (default: this machine only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--no-seed", action="store_true", help="do not run the DAG before starting Airflow")
    args = ap.parse_args(argv)
    scenario = json.loads(args.scenario.read_text())
    billing_date = scenario.get("meta", {}).get("billing_date", "2026-11-01")

    sup = Supervisor()
    sup.install()  # Ctrl+C and `kill` raise Stop; leaving the block stops every child
    try:
        with sup:
            _, urls = start_sandbox(sup, args.scenario)
            print(
                f"Sandbox: Huntress {urls['huntress_url']}, ConnectWise {urls['connectwise_url']}", flush=True
            )
            env = airflow_env(urls, scenario, args.host, args.port)
            if not args.no_seed and not has_runs():
                seed(sup, env, billing_date)
            return run_standalone(sup, env, api_url(args.host, args.port))
    except Stop as stop:
        print(f"\nStopped ({stop}): Airflow and the sandbox are down.", flush=True)
        return 0  # stopped on request


if __name__ == "__main__":
    sys.exit(main())
