"""`make airflow` stops everything it started, on SIGTERM (kill) and on SIGINT (Ctrl+C).

The real script (scripts/airflow_local.py: its `main`, `Supervisor`, the real sandbox) runs in a child
process; only `airflow standalone` is replaced, by a stand-in that builds the kinds of process tree the
real one does and that made it linger: components whose stdout it pipes and never waits for, one that
ignores SIGTERM, a worker that moved to a process group of its own (as Airflow's task runners do),
and a component that exits at once leaving an orphan behind. After the signal, no process of the
tree may be left, not even a zombie.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

READY_TIMEOUT_S = 90
GRACE_S = 2.0  # the script's SIGTERM → SIGKILL grace, shortened: one stand-in ignores SIGTERM

COMPONENTS = {
    # a scheduler with a worker that left its process group; both note the SIGTERM they get
    "scheduler": """
        worker = subprocess.Popen([sys.executable, "-c", PRELUDE + "os.setpgid(0, 0); on_sigterm('worker'); "
                                   "ready('worker'); time.sleep(600)"])
        on_sigterm("scheduler"); ready("scheduler"); time.sleep(600)
    """,
    # an API server that ignores SIGTERM: only SIGKILL stops it
    "api-server": """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ready("api-server"); time.sleep(600)
    """,
    # a triggerer that exits at once and leaves its child orphaned (standalone never waits for it)
    "triggerer": """
        orphan = subprocess.Popen([sys.executable, "-c",
            f"import os, time; open({DIR!r} + '/orphan.' + str(os.getpid()), 'w').close(); time.sleep(600)"])
        ready("triggerer")
    """,
}

STANDALONE = """\
#!{python}
import os, signal, subprocess, sys, textwrap, time
DIR = {dir!r}
PRELUDE = "import os, signal, subprocess, sys, time\\nDIR = " + repr(DIR) + (
    "\\ndef ready(name): open(DIR + '/' + name + '.' + str(os.getpid()), 'w').close()\\n"
    "\\ndef on_sigterm(name):\\n"
    "    def got(*_): open(DIR + '/../sigterm.' + name, 'w').close(); os._exit(0)\\n"
    "    signal.signal(signal.SIGTERM, got)\\n")
assert sys.argv[1:] == ["standalone"], sys.argv
procs = [subprocess.Popen([sys.executable, "-c", PRELUDE + "PRELUDE = " + repr(PRELUDE) + "\\n" + textwrap.dedent(code)],
                          stdout=subprocess.PIPE)
         for code in {components!r}.values()]
open(DIR + "/standalone." + str(os.getpid()), "w").close()
time.sleep(600)  # SIGTERM: the default action, as for the real standalone
"""

HARNESS = """
import sys
sys.path.insert(0, {scripts!r})
import airflow_local
airflow_local.airflow_bin = lambda: {airflow!r}
airflow_local.STOP_GRACE_S = {grace!r}
sys.exit(airflow_local.main(["--no-seed", "--port", "9", "--scenario", {scenario!r}]))
"""

EXPECTED = {"standalone", "scheduler", "worker", "api-server", "triggerer", "orphan"}


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    airflow = tmp_path / "airflow"
    airflow.write_text(STANDALONE.format(python=sys.executable, dir=str(marks), components=COMPONENTS))
    airflow.chmod(0o755)
    code = HARNESS.format(
        scripts=str(ROOT / "scripts"),
        airflow=str(airflow),
        grace=GRACE_S,
        scenario=str(ROOT / "scenarios" / "demo.json"),
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, marks


def _wait_ready(proc: subprocess.Popen, marks: Path) -> dict[str, int]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        found = {p.name.split(".")[0]: int(p.name.split(".")[1]) for p in marks.iterdir()}
        if set(found) >= EXPECTED:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the script exited early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the stand-in tree did not come up in {READY_TIMEOUT_S}s: {sorted(marks.iterdir())}")


def _left(pids: set[int]) -> dict[int, str]:
    """Processes of the tree that still exist, zombies included (a zombie is one nobody reaped)."""
    left = {}
    for pid in pids:
        try:
            left[pid] = f"{psutil.Process(pid).status()}: {' '.join(psutil.Process(pid).cmdline())[:120]}"
        except psutil.NoSuchProcess:
            pass
    return left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_whole_tree(tmp_path: Path, sig: signal.Signals) -> None:
    proc, marks = _start(tmp_path)
    try:
        named = _wait_ready(proc, marks)
        tree = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)} | set(named.values())
        assert len(tree) >= len(EXPECTED) + 1, "the sandbox and every stand-in should be running"
        started = time.monotonic()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "Stopped" in out, out
    deadline = time.monotonic() + 5
    while _left(tree) and time.monotonic() < deadline:  # the last reaps may trail the exit by a hair
        time.sleep(0.1)
    assert not _left(tree), _left(tree)
    # Those that honour SIGTERM got it (a child started with the stop signals blocked would not).
    assert sorted(p.name for p in tmp_path.glob("sigterm.*")) == ["sigterm.scheduler", "sigterm.worker"]
    # SIGTERM, the grace for the one that ignores it, SIGKILL: not the 30 s default, nor a hang.
    assert took < GRACE_S + 20, f"{took:.1f}s"
