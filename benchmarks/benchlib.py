"""What the benchmark scripts share: the machine, the sandbox process, connections, subprocess runs.

Every measurement runs in a fresh subprocess of its own (import costs, peak memory and Airflow's
environment must not leak from one figure into the next); each prints one JSON line last.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from billing_sandbox.connections import airflow_connections

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
PYTHON = sys.executable
LATENCY_MS = 40  # injected on both APIs: the figures are about waiting, not about loopback speed
BILLING_DATE = "2026-11-01"
SANDBOX_START_TIMEOUT_S = 60


# --- the machine ----------------------------------------------------------------------------------
def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load_average": load_average(),
    }


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


# --- the sandbox ----------------------------------------------------------------------------------
@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    huntress_url: str
    connectwise_url: str

    def url(self, api: str) -> str:
        return self.huntress_url if api == "huntress" else self.connectwise_url


@contextmanager
def sandbox(scenario_path: Path, log_path: Path) -> Iterator[Sandbox]:
    """`python -m billing_sandbox` on free loopback ports; stopped (SIGTERM, then SIGKILL) on exit."""
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [PYTHON, "-m", "billing_sandbox", "--scenario", str(scenario_path), "--host", "127.0.0.1"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
        )
    try:
        line = _first_line(proc)
        urls = json.loads(line)
        yield Sandbox(proc, urls["huntress_url"], urls["connectwise_url"])
    finally:
        _stop(proc)


def _first_line(proc: subprocess.Popen[str]) -> str:
    # A hung start must not hang the benchmark: killing the process ends the blocked readline.
    timer = threading.Timer(SANDBOX_START_TIMEOUT_S, proc.kill)
    timer.daemon = True
    timer.start()
    try:
        line = proc.stdout.readline() if proc.stdout else ""
    finally:
        timer.cancel()
    if not line:
        raise RuntimeError(f"the sandbox did not start (exit {proc.poll()}); see its log")
    return line


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def admin(base_url: str, path: str, body: Any = None, timeout: float = 30) -> Any:
    """GET (or POST `body`) a `/_sandbox/` admin route; loopback only."""
    data = None if body is None else json.dumps(body).encode()
    req = Request(
        f"{base_url}/_sandbox/{path}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def set_latency(sb: Sandbox, latency_ms: float) -> None:
    for api in ("huntress", "connectwise"):
        admin(sb.url(api), "faults", {"latency_ms": latency_ms})


def connection_env(sb: Sandbox, scenario: dict[str, Any]) -> dict[str, str]:
    """AIRFLOW_CONN_* for the two APIs, the way operators set them (the client limiter follows the
    scenario's Huntress limit, as the production connection follows Huntress's)."""
    return airflow_connections(scenario, sb.huntress_url, sb.connectwise_url)


def airflow_env(home: Path) -> dict[str, str]:
    """A private AIRFLOW_HOME and billing database, set before anything imports Airflow."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "false",
        "BILLING_SYNC_REPORTS_DIR": str(home / "reports"),
        "AIRFLOW_CONN_BILLING_SYNC_DB": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{home / 'billing.db'}"}}
        ),
    }


@contextmanager
def run_against(scenario_path: Path, latency_ms: float) -> Iterator[Sandbox]:
    """A run's setting: a private AIRFLOW_HOME and billing database, a fresh sandbox on the scenario
    with the latency injected, the two connections pointed at it (this process's environment)."""
    scenario = json.loads(scenario_path.read_text())
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        home = Path(tmp)
        os.environ.update(airflow_env(home))
        with sandbox(scenario_path, home / "sandbox.log") as sb:
            set_latency(sb, latency_ms)
            os.environ.update(connection_env(sb, scenario))
            yield sb


# --- subprocesses ---------------------------------------------------------------------------------
def run_json(
    args: Sequence[str], log_path: Path, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a Python script; its last stdout line is the JSON result. Output goes to `log_path`."""
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(args)}  ({time.perf_counter() - started:.1f} s, exit {done.returncode})\n")
        log.write(done.stderr[-20_000:] + "\n")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{args[0]} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


# --- figures --------------------------------------------------------------------------------------
def max_in_window(times: Sequence[float], window: float) -> int:
    """The most timestamps inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def emit(result: dict[str, Any]) -> None:
    """The one JSON line a benchmark script ends with."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
