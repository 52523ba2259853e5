"""Tenants on Celery vs LocalExecutor: N tenants' runs at once, the same parallelism, the same books.

    python benchmarks/tenants_executors.py [--tenants 4] [--organizations 2000] [--latency-ms 40]
        [--executors celery,local] [--passes 1] [--workers 2] [--worker-slots 2] [--runs-timeout 1200]

For each executor, in this order, a cluster of its own built from `make celery`'s pieces
(scripts/airflow_celery.py: the tenants file, one Huntress pool per tenant's account, the
environment, the Cluster of processes), and fresh everything the runs touch:

- a PostgreSQL metadata database and a PostgreSQL billing database (created, dropped afterwards);
- one sandbox per tenant on its own generated scenario (`--organizations`, `--change-share`, seed
  42 + k; the same files for both executors), `--latency-ms` injected on both of its APIs;
- the API server (execution app), scheduler, DAG processor and, for CeleryExecutor, `--workers`
  Celery workers of `--worker-slots` each on Redis (own key prefix; the scheduler's `[core]
  parallelism` as `make celery` sets it, 4 × the slots: the slots bound what runs); for
  LocalExecutor no worker and `[core] parallelism` = workers × slots, the Celery cluster's number
  of slots: the same number of tasks at once.

Once the components are up and their start-up CPU has settled, one run per tenant is triggered
(one run id for all, as scheduled runs of tenants with one billing day have), and timed until every
run has finished. Measured per executor:

- wall time: from the trigger to the last run's end, and from the first run queued to the last
  run's end (the metadata database's `dag_run.queued_at` / `end_date`: without the CLI's start);
- per run: HTTP requests served by each sandbox (its own counters; 429s; the most Huntress
  admitted in any rolling 60 s window), the API time (the sandbox's own request durations, summed),
  and the task slot-seconds (`task_instance.duration`, summed; the network-bound tasks apart);
- CPU seconds (psutil, user + system of every process of each component's tree, reaped children
  included), from the trigger to the end: the processes that ran the tasks (the Celery workers'
  trees; LocalExecutor's worker processes under the scheduler), the scheduler's own loop, the API
  server, the DAG processor, the sandboxes; and the machine's busy CPU over the same span (others'
  load included: the machine is shared). Per-run task CPU is the tasks' CPU / N: the runs are of
  one size and overlap, so one run's CPU is not told apart from another's.

With --passes P, both executors run P times, every other pass in the reverse order (the load of a
shared machine drifts); the ratio is then the sum of Celery's walls over the sum of LocalExecutor's,
the details (per run, CPU) the first pass's.

Prints progress on stderr and one JSON line last (benchmarks/run_all.py's `tenants` measurement).
Needs PostgreSQL (--postgres) and Redis (--redis), as `make celery` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import airflow_celery as ac  # noqa: E402 - make celery's script, found through the line above
import benchlib  # noqa: E402
from airflow_local import Supervisor, start_sandbox  # noqa: E402

TENANT_NAMES = ("north", "south", "east", "west")
RUN_ID = "manual__2026-11-01T00:00:00+00:00"
HUNTRESS_WINDOW_S = 60
WAN_TASKS = ("wait_for_invoice", "extract_huntress", "extract_connectwise", "push")  # waiting on APIs
HUNTRESS_TASKS = ("wait_for_invoice", "extract_huntress")  # in the account's pool (one slot)
PASS_FIGURES = (
    "wall_s",
    "wall_queued_to_end_s",
    "slot_s_per_run",
    "idle_s_per_run",
    "task_cpu_s_per_run",
    "machine_busy_cpu_s",
)
WORKER_READY_TIMEOUT_S = 180
SETTLE_MAX_S = 60
SETTLE_CORES = 0.4  # the cluster idles below this many cores of CPU before the trigger
STOP_GRACE_S = 15
# The runs' own settings are the DAG's; these only keep a failed try from stalling the measurement
# (the figures count tries: anything above one per task is reported).
SETTINGS = {
    "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "10",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
}


def say(*parts: Any) -> None:
    print("[tenants]", *parts, file=sys.stderr, flush=True)


# --- scenarios -------------------------------------------------------------------------------------
def tenant_ids(n: int) -> list[str]:
    return [TENANT_NAMES[k] if k < len(TENANT_NAMES) else f"tenant{k + 1}" for k in range(n)]


def scenario_files(
    work: Path, ids: Sequence[str], organizations: int, change_share: float
) -> dict[str, Path]:
    """One generated scenario per tenant (seed 42 + k), credentials of its own (as `make celery`'s
    tenant_scenario), kept in `work` for the next executor and the next run."""
    from billing_sandbox.generate import generate

    out = {}
    for k, t in enumerate(ids):
        seed = 42 + k
        path = work / f"scenario-{t}-{organizations}-{seed}-{change_share:g}.json"
        if not path.exists():
            scenario = generate(organizations, seed, change_share=change_share)
            h, c = scenario["huntress"], scenario["connectwise"]
            h["api_key"], h["api_secret"] = f"hk_{t}", f"hs_{t}_{seed}"
            c["company_id"], c["public_key"] = f"{t}msp", f"pub_{t}"
            c["private_key"] = f"priv_{t}_{seed}"
            path.write_text(json.dumps(scenario))
        out[t] = path
    return out


# --- databases -------------------------------------------------------------------------------------
@contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # a generated name
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(Exception), admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        eng.dispose()


# --- CPU -------------------------------------------------------------------------------------------
def tree_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process itself, of its whole tree): user + system of every live process,
    plus what each has collected from the children it reaped."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    own, total = 0.0, 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        mine = t.user + t.system
        total += mine + t.children_user + t.children_system
        if p.pid == pid:
            own = mine
    return own, total


def machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


class CpuMeter:
    """CPU seconds of each component from a start to an end, from its process tree."""

    def __init__(self, components: Mapping[str, int]) -> None:
        self.components = dict(components)
        self.start: dict[str, tuple[float, float]] = {}
        self.machine0 = 0.0

    def snapshot(self) -> dict[str, tuple[float, float]]:
        return {name: tree_cpu(pid) for name, pid in self.components.items()}

    def begin(self) -> None:
        self.start, self.machine0 = self.snapshot(), machine_busy()

    def end(self) -> dict[str, Any]:
        now, busy = self.snapshot(), machine_busy() - self.machine0
        out: dict[str, Any] = {}
        for name, (own, total) in now.items():
            own0, total0 = self.start.get(name, (0.0, 0.0))
            out[name] = {"own": round(own - own0, 2), "tree": round(total - total0, 2)}
        out["machine_busy"] = round(busy, 2)
        return out


def cluster_cores(pids: Sequence[int], seconds: float) -> float:
    """Cores of CPU the trees of `pids` use over `seconds`."""
    before = sum(tree_cpu(p)[1] for p in pids)
    time.sleep(seconds)
    return (sum(tree_cpu(p)[1] for p in pids) - before) / seconds


# --- one executor ----------------------------------------------------------------------------------
def base_env(home: Path) -> dict[str, str]:
    """This process's environment without its Airflow settings; no plugins (tasks only, no UI)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "BILLING_SYNC_"))
    }
    plugins = home / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(benchlib.ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "false",
            **SETTINGS,
        }
    )
    return env


def run_executor(executor: str, args: argparse.Namespace, files: Mapping[str, Path]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    home = args.work / f"{executor}-{tag}"
    home.mkdir(parents=True)
    ids = list(files)
    tenants = [ac.tenant(t) for t in ids]
    workers = [ac.Worker(f"worker-{chr(ord('a') + k)}", args.worker_slots) for k in range(args.workers)]
    slots = args.workers * args.worker_slots
    prefix = f"billing-bench-{tag}:"
    sup = Supervisor(grace_s=STOP_GRACE_S)
    sup.install()  # SIGTERM/SIGINT raise Stop: the finally blocks below stop and drop everything
    say(f"{executor}: {len(ids)} tenants, {slots} slots; home {home}")
    try:
        with (
            fresh_database(args.postgres, f"bench_tenants_{executor}_{tag}_airflow") as metadata_url,
            fresh_database(args.postgres, f"bench_tenants_{executor}_{tag}_billing") as billing_url,
            sup,
        ):
            sandboxes, connections, dates = {}, {}, {}
            for t in tenants:
                proc, urls = start_sandbox(sup, files[t.id])
                sb = benchlib.Sandbox(proc, urls["huntress_url"], urls["connectwise_url"])
                benchlib.set_latency(sb, args.latency_ms)
                scenario = json.loads(files[t.id].read_text())
                connections.update(ac.tenant_connections(t, scenario, urls))
                dates[t.dag_id] = scenario.get("meta", {}).get("billing_date", benchlib.BILLING_DATE)
                sandboxes[t.id] = (sb, scenario)
            layout = ac.Layout(
                home=home,
                metadata_url=metadata_url,
                billing_url=billing_url.replace("postgresql+psycopg2://", "postgresql://", 1),
                redis_url=args.redis,
                redis_prefix=prefix,
                api_port=free_port(),
            )
            layout.tenants_file.write_text(json.dumps(ac.tenants_document(tenants), indent=1))
            (home / "pools.json").write_text(json.dumps(ac.pools(tenants), indent=1))
            env = ac.cluster_env(
                {
                    **base_env(home),
                    # LocalExecutor: the worker processes; Celery: make celery's headroom over the
                    # workers' slots, which bound what runs (`--celery-parallelism` to try others).
                    "AIRFLOW__CORE__PARALLELISM": str(
                        (args.celery_parallelism or ac.CELERY_QUEUE_HEADROOM * slots)
                        if executor == "celery"
                        else slots
                    ),
                    # LocalExecutor's scheduler serves task logs; a port of its own beside other tests.
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                },
                layout,
                tenants,
                connections,
                workers,
            )
            if executor == "local":
                env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
            cluster = ac.Cluster(sup, layout, env, sys.stderr)
            say(f"{executor}: migrating the metadata database ...")
            cluster.run("db-migrate", ["db", "migrate"])
            cluster.begin("pools", ["pools", "import", str(home / "pools.json")])
            cluster.start_components("execution")
            if executor == "celery":
                for w in workers:
                    cluster.start_worker(w)
            cluster.wait_api()
            cluster.finish("pools")
            wait_ready(cluster, executor, workers, [t.dag_id for t in tenants])
            components = {name: p.pid for name, p in cluster.procs.items()}
            components.update({f"sandbox-{t}": sb.process.pid for t, (sb, _) in sandboxes.items()})
            settle(list(components.values()))
            load = benchlib.load_average()
            meter = CpuMeter(components)
            meter.begin()
            say(f"{executor}: triggering {len(tenants)} runs (load average {load}) ...")
            triggered = time.time()
            cluster.trigger(dates, RUN_ID)
            states = wait_runs(cluster, metadata_url, list(dates), args.runs_timeout)
            finished = time.time()
            cpu = meter.end()
            say(f"{executor}: runs {states} in {finished - triggered:.1f} s")
            served = {t: served_counts(sb, scenario) for t, (sb, scenario) in sandboxes.items()}
            result = measure(metadata_url, tenants, served, cpu, executor, workers, triggered, finished)
            result.update(
                {
                    "states": states,
                    "slots": slots,
                    "parallelism": int(env["AIRFLOW__CORE__PARALLELISM"]),
                    "load_before": load,
                    "load_after": benchlib.load_average(),
                    "home": str(home),
                }
            )
            return result
    finally:
        with contextlib.suppress(Exception):
            ac.purge_redis(args.redis, prefix)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(cluster: ac.Cluster, executor: str, workers: Sequence[ac.Worker], dag_ids: list[str]) -> None:
    """The DAGs parsed, a scheduler heartbeating and (Celery) every worker saying it is ready."""
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    pending = {w.name for w in workers} if executor == "celery" else set()
    while time.monotonic() < deadline:
        cluster.check()
        for name in list(pending):
            log = cluster.log(name)
            if log.exists() and re.search(rf"{re.escape(name)} ready", log.read_text(errors="replace")):
                pending.discard(name)
        scheduler = rows(
            cluster.layout.metadata_url,
            "select count(*) from job where job_type = 'SchedulerJob' and state = 'running'",
        )[0][0]
        if not pending and scheduler and ac.dags_present(cluster.layout.metadata_url, dag_ids):
            return
        time.sleep(1)
    raise RuntimeError(f"not ready after {WORKER_READY_TIMEOUT_S} s (workers pending: {sorted(pending)})")


def settle(pids: list[int]) -> None:
    """Wait (up to SETTLE_MAX_S) until the components' start-up CPU has died down."""
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        cores = cluster_cores(pids, 3)
        if cores < SETTLE_CORES:
            return
    say(f"the cluster still used {cores:.2f} cores after {SETTLE_MAX_S} s; measuring anyway")


def wait_runs(cluster: ac.Cluster, metadata_url: str, dag_ids: list[str], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        cluster.check()
        found = rows(
            metadata_url, "select dag_id, state from dag_run where dag_id in :ids", ids=tuple(dag_ids)
        )
        states = {r.dag_id: r.state for r in found}
        if set(states) == set(dag_ids) and all(s in ("success", "failed") for s in states.values()):
            return states
        time.sleep(1)
    raise RuntimeError(f"the runs did not finish within {timeout_s:g} s: {states}")


def served_counts(sb: benchlib.Sandbox, scenario: dict[str, Any]) -> dict[str, Any]:
    """Each API's own counts, API time (its request durations summed) and, for Huntress, the window."""
    out: dict[str, Any] = {}
    for api in ("huntress", "connectwise"):
        stats = benchlib.admin(sb.url(api), "requests?log=1")
        log = stats.pop("log")
        out[api] = {
            "total": stats["total"],
            "by_status": stats["by_status"],
            "status_429": stats["by_status"].get("429", 0),
            "api_s": round(sum(e["duration_ms"] or 0 for e in log) / 1000, 2),
            "logged": len(log),
        }
        if api == "huntress":
            section = scenario["huntress"]
            admitted = [e["time"] for e in log if e["status"] != "429"]
            out[api]["window"] = {
                "limit": section.get("rate_limit_per_minute", 60),
                "window_s": section.get("rate_limit_window_s", HUNTRESS_WINDOW_S),
                "max_in_window": benchlib.max_in_window(
                    admitted, section.get("rate_limit_window_s", HUNTRESS_WINDOW_S)
                ),
            }
    return out


# --- the figures -----------------------------------------------------------------------------------
def measure(
    metadata_url: str,
    tenants: Sequence[Any],
    served: Mapping[str, dict[str, Any]],
    cpu: dict[str, Any],
    executor: str,
    workers: Sequence[ac.Worker],
    triggered: float,
    finished: float,
) -> dict[str, Any]:
    dag_ids = tuple(t.dag_id for t in tenants)
    runs = rows(
        metadata_url,
        "select dag_id, state, extract(epoch from queued_at) as queued, extract(epoch from start_date) as started,"
        " extract(epoch from end_date) as ended from dag_run where dag_id in :ids",
        ids=dag_ids,
    )
    tis = rows(
        metadata_url,
        "select dag_id, task_id, map_index, try_number, state, duration, hostname, pool,"
        " extract(epoch from scheduled_dttm) as scheduled, extract(epoch from queued_dttm) as queued,"
        " extract(epoch from start_date) as started, extract(epoch from end_date) as ended"
        " from task_instance where dag_id in :ids",
        ids=dag_ids,
    )
    history = rows(
        metadata_url,
        "select dag_id, coalesce(sum(duration), 0) as duration, count(*) as tries"
        " from task_instance_history where dag_id in :ids group by dag_id",
        ids=dag_ids,
    )
    earlier = {r.dag_id: (float(r.duration), int(r.tries)) for r in history}
    per_run = {}
    for t in tenants:
        mine = [r for r in tis if r.dag_id == t.dag_id]
        slot_s = sum(r.duration or 0.0 for r in mine) + earlier.get(t.dag_id, (0.0, 0))[0]
        by_task: dict[str, float] = defaultdict(float)
        for r in mine:
            by_task[r.task_id] += r.duration or 0.0
        run = next(r for r in runs if r.dag_id == t.dag_id)
        s = served[t.id]
        per_run[t.id] = {
            "state": run.state,
            "wall_s": round(float(run.ended) - float(run.queued), 1),
            "tasks": len(mine),
            "earlier_tries": earlier.get(t.dag_id, (0.0, 0))[1],
            "not_success": sorted({r.task_id for r in mine if r.state != "success"}),
            "slot_s": round(slot_s, 1),
            "wan_slot_s": round(sum(v for k, v in by_task.items() if k in WAN_TASKS), 1),
            "huntress_slot_s": round(sum(v for k, v in by_task.items() if k in HUNTRESS_TASKS), 1),
            "by_task_s": {k: round(v, 1) for k, v in sorted(by_task.items())},
            "scheduled_to_queued_s": round(
                sum(max(0.0, float(r.queued) - float(r.scheduled)) for r in mine if r.queued and r.scheduled),
                1,
            ),
            "queue_wait_s": round(
                sum(max(0.0, float(r.started) - float(r.queued)) for r in mine if r.started and r.queued), 1
            ),
            "idle_s": round(idle(run, mine), 1),
            "hosts": sorted({r.hostname for r in mine if r.hostname}),
            "requests": {api: s[api]["total"] for api in ("huntress", "connectwise")},
            "status_429": s["huntress"]["status_429"] + s["connectwise"]["status_429"],
            "huntress_max_in_window": s["huntress"]["window"]["max_in_window"],
            "huntress_limit": s["huntress"]["window"]["limit"],
            "api_s": {api: s[api]["api_s"] for api in ("huntress", "connectwise")},
        }
    if executor == "celery":
        task_cpu = sum(cpu[w.name]["tree"] for w in workers)
    else:  # LocalExecutor's workers are the scheduler's children
        task_cpu = cpu["scheduler"]["tree"] - cpu["scheduler"]["own"]
    n = len(tenants)
    first_queued = min(float(r.queued) for r in runs)
    last_end = max(float(r.ended) for r in runs if r.ended)
    summary = {
        "wall_s": round(finished - triggered, 1),
        "wall_queued_to_end_s": round(last_end - first_queued, 1),
        "runs_all_success": all(r.state == "success" for r in runs),
        "slot_s_per_run": round(sum(r["slot_s"] for r in per_run.values()) / n, 1),
        "idle_s_per_run": round(sum(r["idle_s"] for r in per_run.values()) / n, 1),
        "wan_slot_s_per_run": round(sum(r["wan_slot_s"] for r in per_run.values()) / n, 1),
        "task_cpu_s": round(task_cpu, 1),
        "task_cpu_s_per_run": round(task_cpu / n, 1),
        "scheduler_own_cpu_s": cpu["scheduler"]["own"],
        "api_server_cpu_s": cpu["api-server"]["tree"],
        "dag_processor_cpu_s": cpu["dag-processor"]["tree"],
        "sandboxes_cpu_s": round(sum(v["tree"] for k, v in cpu.items() if k.startswith("sandbox-")), 1),
        "airflow_cpu_s": round(
            sum(v["tree"] for k, v in cpu.items() if k != "machine_busy" and not k.startswith("sandbox-")), 1
        ),
        "machine_busy_cpu_s": cpu["machine_busy"],
        "requests_per_run": round(sum(sum(r["requests"].values()) for r in per_run.values()) / n),
        "status_429": sum(r["status_429"] for r in per_run.values()),
        "within_limits": all(
            r["status_429"] == 0 and r["huntress_max_in_window"] <= r["huntress_limit"]
            for r in per_run.values()
        ),
    }
    return {"executor": executor, "summary": summary, "runs": per_run, "cpu": cpu}


def idle(run: Any, tis: Sequence[Any]) -> float:
    """Seconds of the run (queued → ended) with none of its tasks running: the scheduler's and the
    executor's hand-offs between one task and the next, and waits for a free slot."""
    spans = sorted((float(r.started), float(r.ended)) for r in tis if r.started and r.ended)
    busy, reach = 0.0, float("-inf")
    for start, end in spans:
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return float(run.ended) - float(run.queued) - busy


def derive(result: dict[str, Any], slots_per_worker: int, latency_ms: float) -> dict[str, Any]:
    """From Celery's measured slot-seconds per run: tenants per hour per slot, workers for T tenants."""
    s = result["summary"]
    slot_s = s["slot_s_per_run"]
    per_hour = 3600 / slot_s
    workers = {
        f"{t} tenants in {w} h": math.ceil(t * slot_s / (w * 3600 * slots_per_worker))
        for t in (10, 50, 100, 500)
        for w in (1, 4)
    }
    return {
        "slot_s_per_run": slot_s,
        "tenants_per_hour_per_slot": round(per_hour, 1),
        "slots_per_worker": slots_per_worker,
        "workers_needed": workers,
        "cpu_share_of_slot": round(s["task_cpu_s_per_run"] / slot_s, 2),
        "latency_ms": latency_ms,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tenants", type=int, default=4, help="N tenants, one run each [4]")
    ap.add_argument("--organizations", type=int, default=2000, help="organizations per tenant [2000]")
    ap.add_argument("--latency-ms", type=float, default=benchlib.LATENCY_MS, help="on both APIs [40]")
    ap.add_argument("--change-share", type=float, default=0.1, help="as make bench's scenario [0.1]")
    ap.add_argument("--executors", default="celery,local", help="in this order [celery,local]")
    ap.add_argument(
        "--passes", type=int, default=1, help="both executors this many times, every other in reverse [1]"
    )
    ap.add_argument("--workers", type=int, default=2, help="Celery workers [2]")
    ap.add_argument("--worker-slots", type=int, default=2, help="concurrency of each worker [2]")
    ap.add_argument(
        "--celery-parallelism",
        type=int,
        help="the Celery scheduler's [core] parallelism [make celery's: 4 × the workers' slots]; "
        "a finished task's slot is known free only once the result backend says so",
    )
    ap.add_argument("--runs-timeout", type=float, default=1200, help="seconds for the runs, per executor")
    ap.add_argument("--postgres", default=ac.DEFAULT_POSTGRES, help="a PostgreSQL server's admin URL")
    ap.add_argument("--redis", default=ac.DEFAULT_REDIS)
    ap.add_argument("--work", type=Path, default=benchlib.ROOT / "test-artifacts" / "bench" / "tenants")
    args = ap.parse_args(argv)
    args.executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    if not set(args.executors) <= {"celery", "local"} or not args.executors:
        ap.error("--executors: celery and/or local")
    if not 1 <= args.tenants <= 26:
        ap.error("--tenants: 1 to 26")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    if "celery" in args.executors and (why := ac.redis_reachable(args.redis)):
        raise SystemExit(f"Redis does not answer at {args.redis}: {why}")
    ids = tenant_ids(args.tenants)
    files = scenario_files(args.work, ids, args.organizations, args.change_share)
    out: dict[str, Any] = {
        "tenants": args.tenants,
        "organizations": args.organizations,
        "latency_ms": args.latency_ms,
        "change_share": args.change_share,
        "workers": args.workers,
        "worker_slots": args.worker_slots,
        "parallelism": args.workers * args.worker_slots,
        "machine": benchlib.machine(),
    }
    passes = []
    for p in range(args.passes):
        # Every other pass in the reverse order: a shared machine's load drifts, and the second
        # executor of a pass would otherwise always meet the later load.
        order = args.executors if p % 2 == 0 else args.executors[::-1]
        got = {}
        for executor in order:
            got[executor] = run_executor(executor, args, files)
            say(f"pass {p + 1}", executor, json.dumps(got[executor]["summary"]))
        passes.append((order, got))
    out.update(passes[0][1])  # the details: the first pass's
    out["passes"] = [
        {
            "order": order,
            **{
                e: {k: r["summary"][k] for k in PASS_FIGURES} | {"load_before": r["load_before"]}
                for e, r in got.items()
            },
        }
        for order, got in passes
    ]
    if "celery" in out and "local" in out:
        # Over all passes: the sum of Celery's walls over the sum of LocalExecutor's.
        walls = {e: sum(p[e]["wall_s"] for p in out["passes"]) for e in ("celery", "local")}
        queued = {e: sum(p[e]["wall_queued_to_end_s"] for p in out["passes"]) for e in ("celery", "local")}
        out["ratio"] = round(walls["celery"] / walls["local"], 3)
        out["ratio_queued_to_end"] = round(queued["celery"] / queued["local"], 3)
        for p in out["passes"]:
            p["ratio"] = round(p["celery"]["wall_s"] / p["local"]["wall_s"], 3)
        out["target_ratio"] = 1.2
    if "celery" in out:
        out["derived"] = derive(out["celery"], args.worker_slots, args.latency_ms)
    out["load_average_end"] = benchlib.load_average()
    print_summary(out)
    benchlib.emit(out)
    return 0


def print_summary(out: dict[str, Any]) -> None:
    for executor in ("celery", "local"):
        if executor not in out:
            continue
        s = out[executor]["summary"]
        say(
            f"{executor:6s} wall {s['wall_s']} s (queued→end {s['wall_queued_to_end_s']} s), "
            f"slot-s/run {s['slot_s_per_run']} (network-bound {s['wan_slot_s_per_run']}), "
            f"task CPU/run {s['task_cpu_s_per_run']} s, requests/run {s['requests_per_run']}, "
            f"429s {s['status_429']}, within limits {s['within_limits']}, all success {s['runs_all_success']}"
        )
    for k, p in enumerate(out["passes"]):
        walls = ", ".join(f"{e} {p[e]['wall_s']} s" for e in p["order"])
        say(f"pass {k + 1}: {walls}" + (f" = {p['ratio']}" if "ratio" in p else ""))
    if "ratio" in out:
        verdict = "pass" if out["ratio"] <= out["target_ratio"] else "FAIL"
        say(f"Celery / LocalExecutor wall: {out['ratio']} (target ≤ {out['target_ratio']}): {verdict}")
    if "derived" in out:
        say("derived:", json.dumps(out["derived"]))


if __name__ == "__main__":
    sys.exit(main())
