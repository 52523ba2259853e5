"""`make celery`: Airflow on CeleryExecutor, laid out as on several machines, all on this one.

1. PostgreSQL (127.0.0.1:5432 by default): a metadata database and a billing database of their own
   names (`billing_celery_airflow`, `billing_celery_billing`), created when missing;
2. one sandbox per tenant (`north`, `south`, `east` by default, each its own generated scenario and
   credentials), a tenants file (BILLING_SYNC_TENANTS_FILE) and the Huntress pool of each tenant's
   Huntress connection (`huntress__<conn id>`, one slot: the account's 60 requests a minute);
3. `airflow db migrate`, then the API server, scheduler and DAG processor, and two
   `airflow celery worker`s on Redis (127.0.0.1:6379), each with its own name, AIRFLOW_HOME, working
   directory and concurrency, as if on machines of their own. What real machines would share is
   shared: the databases, the broker, the reports folder (BILLING_SYNC_REPORTS_DIR) and the task
   logs folder (remote logging's stand-in);
4. one DAG run per tenant for its scenario's billing date (unless it has runs already or
   --no-trigger), then the URL and the logins (SimpleAuthManager, as `make airflow`).

Ctrl+C or SIGTERM stops everything (scripts/airflow_local.py's Supervisor). A worker that dies is
reported and the rest keep going: its tasks fail their heartbeat and are retried on the other.
`--tenants default` runs the single-tenant form (no tenants file, `huntress_default` etc.).

tests/e2e/test_celery.py runs this script as it is, with --json: one JSON line on stdout once every
component is up and the runs are triggered (the URLs, the workers' process ids, the tenants).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import airflow_commands  # noqa: E402  (sibling script, not a package)
from airflow_local import (  # noqa: E402  (sibling script, not a package)
    PASSWORDS_FILE,
    READY_TIMEOUT_S,
    ROOT,
    USERS,
    Stop,
    Supervisor,
    airflow_bin,
    airflow_home,
    start_sandbox,
)

from billing_sandbox.connections import airflow_connections  # noqa: E402
from billing_sync.tenants import DEFAULT, DEFAULT_TENANT, KEYS, TENANTS_FILE_ENV, Tenant, check_id  # noqa: E402

DEFAULT_TENANTS = ("north", "south", "east")
DEFAULT_WORKERS = ("worker-a:3", "worker-b:2")  # name:concurrency
DEFAULT_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
METADATA_DB, BILLING_DB = "billing_celery_airflow", "billing_celery_billing"
CELERY_QUEUE_HEADROOM = 4  # [core] parallelism = this × the workers' slots (cluster_env)
WORKER_NAME_ENV = "BILLING_CELERY_WORKER"  # read by worker_hostname() in the workers' task processes
CORE = ("api-server", "scheduler", "dag-processor")  # without any of these nothing runs: stop all
STEP_TIMEOUT_S = 240


def worker_hostname() -> str:
    """The workers' `[core] hostname_callable`: their own name, as another machine would have.

    The task supervisor reports it when a task starts and with every heartbeat, so the metadata
    database's `task_instance.hostname` says which worker ran each try.
    """
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


# --- what the cluster is made of -------------------------------------------------------------------


def tenant(tenant_id: str, huntress_of: str | None = None) -> Tenant:
    """A tenants-file entry with the names docs/contract.md §1 shows (`huntress_<id>`, ...);
    `default` is the single-tenant form (no tenants file, `huntress_default`, ...). `huntress_of`:
    the tenant whose Huntress account (connection, pool) this one bills from."""
    if tenant_id == DEFAULT_TENANT:
        return DEFAULT
    return Tenant(
        check_id(tenant_id),
        huntress_conn_id=f"huntress_{check_id(huntress_of or tenant_id)}",
        connectwise_conn_id=f"connectwise_{tenant_id}",
        variable=f"huntress_cw_billing_config_{tenant_id}",
        billing_day=1,
    )


def tenants_document(tenants: Sequence[Tenant]) -> dict[str, Any]:
    return {"tenants": [{key: getattr(t, key) for key in KEYS} for t in tenants]}


def tenant_connections(t: Tenant, scenario: Mapping[str, Any], urls: Mapping[str, str]) -> dict[str, str]:
    """The tenant's AIRFLOW_CONN_* values: its sandbox, under its connection ids."""
    return airflow_connections(
        scenario,
        urls["huntress_url"],
        urls["connectwise_url"],
        huntress_conn_id=t.huntress_conn_id,
        connectwise_conn_id=t.connectwise_conn_id,
    )


def tenant_scenario(tenant_id: str, organizations: int, seed: int) -> dict[str, Any]:
    """A generated scenario with credentials of the tenant's own: a connection that reached another
    tenant's sandbox would be refused (401) rather than read the wrong books."""
    from billing_sandbox.generate import generate

    scenario = generate(organizations, seed)
    h, c = scenario["huntress"], scenario["connectwise"]
    h["api_key"], h["api_secret"] = f"hk_{tenant_id}", f"hs_{tenant_id}_{seed}"
    c["company_id"], c["public_key"] = f"{tenant_id}msp", f"pub_{tenant_id}"
    c["private_key"] = f"priv_{tenant_id}_{seed}"
    return scenario


@dataclass(frozen=True)
class Worker:
    name: str
    concurrency: int

    @classmethod
    def parse(cls, spec: str) -> Worker:
        name, _, concurrency = spec.partition(":")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise argparse.ArgumentTypeError(f"worker name {name!r}: lowercase letters, digits, - and _")
        return cls(name, int(concurrency or 2))

    def home(self, root: Path) -> Path:
        return root / "workers" / self.name

    def command(self, queue: str) -> list[str]:
        # Task logs go to the shared folder and the API server reads them there: a log server per
        # worker would need a port per worker on one machine, and the API server asks one port.
        return [
            airflow_bin(),
            "celery",
            "worker",
            "--celery-hostname",
            self.name,
            "--concurrency",
            str(self.concurrency),
            "--queues",
            queue,
            "--skip-serve-logs",
            "--without-mingle",
            "--without-gossip",
        ]

    def environment(self, env: Mapping[str, str], root: Path) -> dict[str, str]:
        """A machine of its own: AIRFLOW_HOME, name (hostname_callable); the rest as everyone's."""
        scripts = str(Path(__file__).resolve().parent)
        path = os.pathsep.join(p for p in (scripts, env.get("PYTHONPATH", "")) if p)
        return {
            **env,
            "AIRFLOW_HOME": str(self.home(root)),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_celery.worker_hostname",
            WORKER_NAME_ENV: self.name,
            "PYTHONPATH": path,
        }


@dataclass
class Layout:
    """Where things are: the databases, the broker, the folders every machine shares."""

    home: Path
    metadata_url: str
    billing_url: str
    redis_url: str
    redis_prefix: str
    api_port: int
    api_host: str = "127.0.0.1"
    queue: str = "default"
    jwt_secret: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def task_logs(self) -> Path:
        return self.home / "task-logs"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def tenants_file(self) -> Path:
        return self.home / "tenants.json"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host == "0.0.0.0" else self.api_host
        return f"http://{host}:{self.api_port}"


def cluster_env(
    base: Mapping[str, str],
    layout: Layout,
    tenants: Sequence[Tenant],
    connections: Mapping[str, str],
    workers: Sequence[Worker],
) -> dict[str, str]:
    """The environment every component gets (workers add theirs: Worker.environment).

    Settings a caller may tune (timeouts, retry caps, parallelism) are only defaults here: a value in
    `base` wins. The cluster's identity (databases, broker, secret, tenants) always comes from here.
    """
    env = dict(base)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    defaults = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "false",
        # The sandboxes' invoices are fixed: runs start when triggered, never on the calendar,
        # and a triggered run needs no unpausing first.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # The scheduler counts a slot free only once Celery's result backend says its task ended;
        # capped at the workers' slots, ready tasks wait in `scheduled` meanwhile (Celery 1.23-1.38×
        # LocalExecutor's wall, against 1.05-1.07× with this headroom: docs/benchmarks.md §7).
        # The workers' concurrency still bounds what runs at once.
        "AIRFLOW__CORE__PARALLELISM": str(CELERY_QUEUE_HEADROOM * sum(w.concurrency for w in workers)),
        # The provider's default, said so it does not warn: Redis hands an unacknowledged task to
        # another worker only after this long; a lost worker's tasks come back sooner through
        # their heartbeat ([scheduler] task_instance_heartbeat_timeout) or task_queued_timeout.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.home / PASSWORDS_FILE),
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env.update(
        {
            "AIRFLOW_HOME": str(layout.home / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": layout.metadata_url,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": layout.redis_url,
            # Celery's task results next to Airflow's metadata (a database, as the provider advises).
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + layout.metadata_url,
            # Every Redis key of this cluster under its own prefix: clusters sharing one Redis
            # (parallel tests, a `make celery` beside them) never take each other's tasks.
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": layout.redis_prefix,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": layout.queue,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{layout.api_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": layout.jwt_secret,
            "AIRFLOW__API__HOST": layout.api_host,
            "AIRFLOW__API__PORT": str(layout.api_port),
            "AIRFLOW__API__BASE_URL": layout.api_url,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(layout.task_logs),
            "BILLING_SYNC_REPORTS_DIR": str(layout.reports),
            "AIRFLOW_CONN_BILLING_SYNC_DB": layout.billing_url,
            **connections,
        }
    )
    if any(t.single_tenant_form for t in tenants):
        env.pop(TENANTS_FILE_ENV, None)
    else:
        env[TENANTS_FILE_ENV] = str(layout.tenants_file)
    return env


def pools(tenants: Sequence[Tenant]) -> dict[str, dict[str, Any]]:
    """`airflow pools import` JSON: one slot per Huntress connection, whoever shares it."""
    return {
        t.huntress_pool: {
            "slots": 1,
            "description": f"Huntress API calls through {t.huntress_conn_id} (60/min)",
        }
        for t in tenants
        if t.huntress_pool
    }


# --- databases and Redis ---------------------------------------------------------------------------


def ensure_database(admin_url: str, name: str) -> str:
    """The URL of database `name` on the server of `admin_url`, created when missing."""
    import sqlalchemy as sa

    # Checked here because an identifier cannot be a bound parameter.
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"database name {name!r}: lowercase letters, digits and _")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).first():
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def purge_redis(url: str, prefix: str) -> None:
    """Delete every key under `prefix`: what one cluster left in a shared Redis."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
    finally:
        client.close()


def redis_reachable(url: str) -> str | None:
    """None when Redis answers PING at `url`, else why not."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
        return None
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"


def dags_present(metadata_url: str, dag_ids: Sequence[str]) -> bool:
    """True once the DAG processor has recorded every one of `dag_ids`."""
    sql = "select dag_id from dag where dag_id in :ids and not is_stale"
    return _dag_ids(metadata_url, sql, dag_ids) == set(dag_ids)


def dags_with_runs(metadata_url: str, dag_ids: Sequence[str]) -> set[str]:
    return _dag_ids(metadata_url, "select distinct dag_id from dag_run where dag_id in :ids", dag_ids)


def _dag_ids(metadata_url: str, sql: str, dag_ids: Sequence[str]) -> set[str]:
    import sqlalchemy as sa

    eng = sa.create_engine(metadata_url)
    try:
        with eng.connect() as conn:
            query = sa.text(sql).bindparams(sa.bindparam("ids", expanding=True))
            return {row.dag_id for row in conn.execute(query, {"ids": list(dag_ids)})}
    finally:
        eng.dispose()


# --- the processes ---------------------------------------------------------------------------------


class Cluster:
    """The Airflow processes of one layout, each in its process group under one Supervisor:
    components (`procs`: they run until stopped) and one-off commands (`jobs`)."""

    def __init__(self, sup: Supervisor, layout: Layout, env: dict[str, str], say: TextIO) -> None:
        self.sup, self.layout, self.env, self.say = sup, layout, env, say
        self.procs: dict[str, subprocess.Popen] = {}
        self.jobs: dict[str, subprocess.Popen] = {}
        layout.logs.mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.layout.logs / f"{name}.log"

    def _popen(self, name: str, cmd: list[str], env: dict[str, str] | None, cwd: Path | None):
        with self.log(name).open("a") as out:
            return self.sup.start(cmd, env=env or self.env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.procs[name] = self._popen(name, cmd, env, cwd)
        return self.procs[name]

    def begin(self, name: str, args: list[str]) -> None:
        """Start a one-off `airflow ...`; `finish(name)` waits for it."""
        self.jobs[name] = self._popen(name, [airflow_bin(), *args], None, None)

    def finish(self, name: str) -> None:
        """Wait for a one-off command; its log's tail in the error when it fails."""
        proc = self.jobs.pop(name)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            self.check()
            time.sleep(0.2)
        if proc.poll() != 0:
            tail = self.log(name).read_text()[-3000:]
            raise RuntimeError(f"{' '.join(proc.args[1:])} failed (exit {proc.poll()}):\n{tail}")

    def run(self, name: str, args: list[str]) -> None:
        self.begin(name, args)
        self.finish(name)

    def start_components(self, apps: str) -> None:
        host, port = self.layout.api_host, str(self.layout.api_port)
        self.start(
            "api-server", [airflow_bin(), "api-server", "--apps", apps, "--host", host, "--port", port]
        )
        self.start("scheduler", [airflow_bin(), "scheduler"])
        self.start("dag-processor", [airflow_bin(), "dag-processor"])

    def start_worker(self, worker: Worker) -> subprocess.Popen:
        home = worker.home(self.layout.home)
        home.mkdir(parents=True, exist_ok=True)
        env = worker.environment(self.env, self.layout.home)
        return self.start(worker.name, worker.command(self.layout.queue), env=env, cwd=home)

    def wait_api(self) -> None:
        url = f"{self.layout.api_url}/execution/health"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check()
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the API server did not answer {url}; see {self.log('api-server')}")

    def check(self) -> list[str]:
        """Components that exited since the last check; raises when a core one did."""
        self.sup.reap()
        gone = [name for name, p in self.procs.items() if p.poll() is not None]
        for name in gone:
            code = self.procs.pop(name).returncode
            if name in CORE:
                raise RuntimeError(f"{name} exited ({code}); see {self.log(name)}")
            print(
                f"{name} exited ({code}); the others go on. Log: {self.log(name)}", file=self.say, flush=True
            )
        return gone

    def trigger(self, runs: Mapping[str, str], run_id: str | None = None) -> None:
        """One run per DAG (dag id → billing date), once the DAG processor has recorded them all;
        `run_id` the same for every DAG, as scheduled runs of tenants with one billing day have."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not dags_present(self.layout.metadata_url, list(runs)):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAGs {sorted(runs)} not parsed; see {self.log('dag-processor')}")
            time.sleep(0.5)
        have_runs = dags_with_runs(self.layout.metadata_url, list(runs))
        todo = {dag_id: day for dag_id, day in runs.items() if dag_id not in have_runs}
        if not todo:
            return
        extra = ["-r", run_id] if run_id else []
        triggers = [
            ["dags", "trigger", dag_id, "-l", f"{day}T00:00:00+00:00", *extra] for dag_id, day in todo.items()
        ]
        # One interpreter for all of them: an `airflow` process each would import Airflow each time.
        self.jobs["trigger"] = self._popen(
            "trigger", airflow_commands.command(sys.executable, triggers), None, None
        )
        self.finish("trigger")
        for dag_id, day in todo.items():
            print(f"  triggered {dag_id} for {day}", file=self.say, flush=True)


# --- the script ------------------------------------------------------------------------------------


def banner(layout: Layout, tenants: Mapping[str, dict[str, Any]], workers: Sequence[Worker]) -> str:
    try:
        passwords = json.loads((layout.home / PASSWORDS_FILE).read_text())
    except (OSError, ValueError):
        passwords = {}
    logins = (
        "\n".join(f"    {u} / {p}" for u, p in passwords.items())
        or f"    (see {layout.home / PASSWORDS_FILE})"
    )
    lines = [
        f" Airflow (CeleryExecutor): {layout.api_url}   log in with (user / password):\n{logins}",
        f" Billing pages: {layout.api_url}/billing-review/quarantine",
        " Tenants:",
        *(
            f"    {t}: DAG {layout.api_url}/dags/{info['dag_id']}  sandbox: Huntress {info['huntress_url']},"
            f" ConnectWise {info['connectwise_url']}"
            for t, info in tenants.items()
        ),
        " Workers (Redis " + layout.redis_url + ", key prefix " + layout.redis_prefix + "):",
        *(f"    {w.name}: concurrency {w.concurrency}, home {w.home(layout.home)}" for w in workers),
        f" Reports: {layout.reports}   task logs: {layout.task_logs}   process logs: {layout.logs}",
        " Stop: Ctrl+C",
    ]
    line = "=" * 72
    return f"\n{line}\n" + "\n".join(lines) + f"\n{line}\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="state folder (default: $AIRFLOW_HOME/celery)")
    ap.add_argument("--tenants", default=",".join(DEFAULT_TENANTS), help="comma-separated tenant ids")
    ap.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="TENANT=FILE",
        help="a tenant's sandbox scenario (default: a generated one per tenant)",
    )
    ap.add_argument(
        "--share-huntress",
        action="append",
        default=[],
        metavar="TENANT=OWNER",
        help="TENANT bills from OWNER's Huntress account (its connection and pool); its own "
        "ConnectWise sandbox starts from OWNER's scenario (unless --scenario names one)",
    )
    ap.add_argument("--worker", action="append", metavar="NAME:CONCURRENCY", type=Worker.parse)
    ap.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a PostgreSQL server's admin URL")
    ap.add_argument("--metadata-url", help="Airflow's metadata database (default: created on --postgres)")
    ap.add_argument("--billing-url", help="billing_sync_db (default: created on --postgres)")
    ap.add_argument("--redis", default=DEFAULT_REDIS, help="the Celery broker")
    ap.add_argument("--redis-prefix", default="billing-celery:", help="prefix of every Redis key")
    ap.add_argument("--host", default="127.0.0.1", help="API server address (default: this machine only)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--apps", default="all", help="API server apps (`execution`: no UI)")
    ap.add_argument("--no-trigger", action="store_true", help="do not start a run per tenant")
    ap.add_argument("--run-id", help="the triggered runs' id, the same for every tenant (default: Airflow's)")
    ap.add_argument(
        "--json", action="store_true", help="one JSON line on stdout when ready; the rest on stderr"
    )
    args = ap.parse_args(argv)
    args.worker = args.worker or [Worker.parse(w) for w in DEFAULT_WORKERS]
    if len({w.name for w in args.worker}) != len(args.worker):
        ap.error("worker names must differ")
    if bad := [s for s in args.share_huntress if "=" not in s]:
        ap.error(f"--share-huntress takes TENANT=OWNER, not {bad[0]!r}")
    args.share_huntress = dict(s.split("=", 1) for s in args.share_huntress)
    try:
        ids = [t.strip() for t in args.tenants.split(",") if t.strip()]
        args.tenants = [tenant(t, args.share_huntress.get(t)) for t in ids]
    except ValueError as exc:
        ap.error(str(exc))
    if stray := [f"{t}={o}" for t, o in args.share_huntress.items() if t not in ids or o not in ids]:
        ap.error(f"--share-huntress names tenants that are not in --tenants: {stray[0]}")
    if any(t.single_tenant_form for t in args.tenants) and len(args.tenants) > 1:
        ap.error("`default` is the single-tenant form: alone or not at all")
    if bad := [s for s in args.scenario if "=" not in s]:
        ap.error(f"--scenario takes TENANT=FILE, not {bad[0]!r}")
    args.scenario = dict(s.split("=", 1) for s in args.scenario)
    return args


def scenario_files(
    home: Path, tenants: Sequence[Tenant], given: Mapping[str, str], shares: Mapping[str, str]
) -> dict[str, Path]:
    """Each tenant's scenario file; one sharing another's Huntress account gets that one's books
    (its ConnectWise sandbox starts from them), so both tenants' invoices and companies agree."""
    out: dict[str, Path] = {}
    for k, t in enumerate(sorted(tenants, key=lambda t: t.id in shares)):
        if t.id in given:
            out[t.id] = Path(given[t.id])
            continue
        if t.id in shares:
            out[t.id] = out[shares[t.id]]
            continue
        path = home / "scenarios" / f"{t.id}.json"
        if not path.exists():  # kept: the same books on the next start
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(tenant_scenario(t.id, 30 + 10 * k, 101 + k), indent=1))
        out[t.id] = path
    return out


def start_sandboxes(
    sup: Supervisor, tenants: Sequence[Tenant], files: Mapping[str, Path], shares: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """One sandbox per tenant: (what the tenant's runs need to know, its AIRFLOW_CONN_* values)."""
    info, connections = {}, {}
    for t in tenants:
        _, urls = start_sandbox(sup, files[t.id])
        scenario = json.loads(files[t.id].read_text())
        conns = tenant_connections(t, scenario, urls)
        if t.id in shares:  # the owner's sandbox serves the Huntress account they share
            conns.pop(f"AIRFLOW_CONN_{t.huntress_conn_id.upper()}")
        connections.update(conns)
        billing_date = scenario.get("meta", {}).get("billing_date", "2026-11-01")
        info[t.id] = {"dag_id": t.dag_id, "billing_date": billing_date, "scenario": str(files[t.id]), **urls}
    return info, connections


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say = sys.stderr if args.json else sys.stdout
    home = (args.home or airflow_home() / "celery").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if why := redis_reachable(args.redis):
        print(
            f"Redis does not answer at {args.redis} ({why}); start it: redis-server --daemonize yes", file=say
        )
        return 2
    import sqlalchemy as sa

    try:
        metadata_url = args.metadata_url or ensure_database(args.postgres, METADATA_DB)
        billing_url = args.billing_url or ensure_database(args.postgres, BILLING_DB)
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL does not answer at {args.postgres}: {exc.orig}", file=say)
        return 2
    layout = Layout(
        home=home,
        metadata_url=metadata_url,
        # The URI form docs/contract.md §1 gives billing_sync_db.
        billing_url=billing_url.replace("postgresql+psycopg2://", "postgresql://", 1),
        redis_url=args.redis,
        redis_prefix=args.redis_prefix,
        api_port=args.port,
        api_host=args.host,
    )
    tenants: list[Tenant] = args.tenants
    files = scenario_files(home, tenants, args.scenario, args.share_huntress)
    if not tenants[0].single_tenant_form:
        layout.tenants_file.write_text(json.dumps(tenants_document(tenants), indent=1))
    (home / "pools.json").write_text(json.dumps(pools(tenants), indent=1))

    sup = Supervisor()
    sup.install()  # Ctrl+C and `kill` raise Stop; leaving the block stops every child
    try:
        with sup:
            info, connections = start_sandboxes(sup, tenants, files, args.share_huntress)
            print(
                f"Sandboxes up: {', '.join(info)}; migrating {layout.metadata_url} ...", file=say, flush=True
            )
            env = cluster_env(os.environ, layout, tenants, connections, args.worker)
            cluster = Cluster(sup, layout, env, say)
            cluster.run("db-migrate", ["db", "migrate"])
            # Beside the components' start: the scheduler holds a task of a missing pool until it exists.
            if pools(tenants):
                cluster.begin("pools", ["pools", "import", str(home / "pools.json")])
            cluster.start_components(args.apps)
            for w in args.worker:
                cluster.start_worker(w)
            cluster.wait_api()
            if pools(tenants):
                cluster.finish("pools")
            if not args.no_trigger:
                cluster.trigger({i["dag_id"]: i["billing_date"] for i in info.values()}, args.run_id)
            ready = {
                "api_url": layout.api_url,
                "metadata_url": layout.metadata_url,
                "workers": {w.name: cluster.procs[w.name].pid for w in args.worker},
                "tenants": info,
                "reports": str(layout.reports),
                "task_logs": str(layout.task_logs),
                "logs": str(layout.logs),
            }
            print(json.dumps(ready) if args.json else banner(layout, info, args.worker), flush=True)
            while True:
                cluster.check()
                time.sleep(1)
    except Stop as stop:
        print(f"\nStopped ({stop}): Airflow, the workers and the sandboxes are down.", file=say, flush=True)
        return 0
    except RuntimeError as exc:
        print(f"\n{exc}", file=say, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
