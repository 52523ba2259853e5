"""What parsing the DAG file costs beyond a DAG of the same shape that does no work.

    python benchmarks/dag_parse.py [--runs 11]

- the figure: in fresh processes against a migrated private AIRFLOW_HOME, after `import airflow.sdk`,
  the time to execute dags/huntress_connectwise_billing_sync.py minus the time to execute
  benchmarks/dag_noop_twin.py (same DAG arguments, tasks and wiring; no lookups, no helpers). Runs
  alternate between the two files; the figure is the median of the paired differences, the target
  at most 25 ms. The two DAGs' shapes are compared first: a twin that no longer matches is an error;
- why: what `Variable.get` costs in such a process (its first call imports Airflow's task runtime,
  `airflow.sdk.execution_time.supervisor`) and what it costs once that is loaded (as in the DAG
  processor), and `-X importtime` of the DAG file (which modules it adds);
- DagBag: `from airflow.dag_processing.dagbag import DagBag; DagBag(dag_folder=dags)`, fresh process.
One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402 - the sibling module, found through the line above

DAG_FILE = benchlib.ROOT / "dags" / "huntress_connectwise_billing_sync.py"
TWIN_FILE = benchlib.BENCH_DIR / "dag_noop_twin.py"
EXTRA_MS_TARGET = 25.0

# Exec one DAG file after `import airflow.sdk`. `airflow.sdk.dag` is wrapped first (outside the timed
# part, the same for both files) to catch the DAG object, whose shape is printed for the comparison.
PROBE_EXEC = """
import functools, importlib.util, json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
built = []
real_dag = airflow.sdk.dag


def spy(*args, **kwargs):
    decorate = real_dag(*args, **kwargs)

    def wrap(fn):
        factory = decorate(fn)

        @functools.wraps(fn)
        def build(*a, **kw):
            built.append(factory(*a, **kw))
            return built[-1]
        return build
    return wrap


airflow.sdk.dag = spy
spec = importlib.util.spec_from_file_location("bench_parsed_dag", {path!r})
module = importlib.util.module_from_spec(spec)
t2 = time.perf_counter()
spec.loader.exec_module(module)
t3 = time.perf_counter()
[dag] = built
shape = {{
    "dag": [dag.dag_id, dag.catchup, dag.max_active_runs, sorted(dag.tags), sorted(dag.params),
            sorted(dag.default_args)],
    "tasks": sorted([t.task_id, type(t).__name__, sorted(t.upstream_task_ids), str(t.trigger_rule),
                     sorted(k for k in ("map_index_template", "max_active_tis_per_dagrun")
                            if getattr(t, k, None) is not None)] for t in dag.tasks),
}}
print(json.dumps({{"sdk_s": t1 - t0, "exec_s": t3 - t2, "shape": shape, "schedule": str(dag.schedule)}}))
"""

# What Variable.get costs in a fresh process after `import airflow.sdk`: the task runtime's import,
# then the lookup; and the lookup alone once that runtime is loaded (as in the DAG processor, where
# it is one message to the supervisor, which reads the metadata database).
PROBE_VARIABLE = """
import json, time
import airflow.sdk
from airflow.sdk import Variable
t0 = time.perf_counter()
import airflow.sdk.execution_time.supervisor
t1 = time.perf_counter()
Variable.get("huntress_cw_billing_config", default=None)
t2 = time.perf_counter()
Variable.get("huntress_cw_billing_config", default=None)
t3 = time.perf_counter()
print(json.dumps({{"runtime_import_s": t1 - t0, "first_get_s": t2 - t1, "next_get_s": t3 - t2}}))
"""

PROBE_DAGBAG = """
import json, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
bag = DagBag(dag_folder={folder!r})
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "dagbag_s": t2 - t1, "total_s": t2 - t0,
                  "dags": sorted(bag.dags), "errors": {{k: str(v)[:300] for k, v in bag.import_errors.items()}}}}))
"""


def probe(code: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [benchlib.PYTHON, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=benchlib.ROOT,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_breakdown(env: dict[str, str], dag_file: Path = DAG_FILE, top: int = 6) -> list[list[Any]]:
    """`-X importtime` of the DAG file's exec after `import airflow.sdk`: the modules it adds,
    costliest first (cumulative µs, inflated by the tracing itself; for where, not how much)."""
    code = PROBE_EXEC.format(path=str(dag_file)).replace(
        "t2 = time.perf_counter()", "t2 = time.perf_counter(); sys.stderr.write('@@MARK\\n')"
    )
    done = subprocess.run(
        [benchlib.PYTHON, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=benchlib.ROOT,
        timeout=120,
        check=False,
    )
    after = done.stderr.split("@@MARK", 1)[-1].splitlines()
    rows = []
    for line in after:
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.removeprefix("import time:").split("|")
            if cumulative.strip().isdigit():
                rows.append([name.rstrip(), int(cumulative)])
    # Top-level entries only (indentation 1): their cumulative time includes their children.
    top_level = [[n.strip(), us] for n, us in rows if len(n) - len(n.lstrip()) == 1]
    return sorted(top_level, key=lambda r: -r[1])[:top]


def migrate(env: dict[str, str]) -> float:
    started = time.perf_counter()
    airflow = Path(benchlib.PYTHON).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def measure(runs: int, dag_file: Path = DAG_FILE) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="billing-bench-parse-") as tmp:
        env = {**os.environ, **benchlib.airflow_env(Path(tmp))}
        env.pop("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", None)  # as a deployment: the Variable elsewhere
        migrate_s = migrate(env)
        files, twins = [], []
        for i in range(runs):  # alternate, so load drifts hit both alike
            pair = [(dag_file, files), (TWIN_FILE, twins)]
            for path, into in pair if i % 2 == 0 else pair[::-1]:
                into.append(probe(PROBE_EXEC.format(path=str(path)), env))
        if files[0]["shape"] != twins[0]["shape"]:
            raise RuntimeError(
                f"{TWIN_FILE.name} no longer has the DAG file's shape: make it follow "
                f"{dag_file.name}.\nfile: {files[0]['shape']}\ntwin: {twins[0]['shape']}"
            )
        # Secondary figures: fewer runs keep `make bench` short.
        variables = [probe(PROBE_VARIABLE.format(), env) for _ in range(max(3, runs // 2))]
        bags = [
            probe(PROBE_DAGBAG.format(folder=str(DAG_FILE.parent)), env) for _ in range(max(3, runs // 2))
        ]
        breakdown = import_breakdown(env, dag_file)
    med = benchlib.median
    ms = lambda seconds: round(seconds * 1000, 1)  # noqa: E731
    extra = med([f["exec_s"] - t["exec_s"] for f, t in zip(files, twins, strict=True)])
    return {
        "runs": runs,
        "extra_ms": ms(extra),
        "extra_ms_target": EXTRA_MS_TARGET,
        "extra_ok": extra * 1000 <= EXTRA_MS_TARGET,
        "file_ms": ms(med([r["exec_s"] for r in files])),
        "twin_ms": ms(med([r["exec_s"] for r in twins])),
        "file_ms_all": [ms(r["exec_s"]) for r in files],
        "twin_ms_all": [ms(r["exec_s"]) for r in twins],
        "schedule": files[0]["schedule"],
        "tasks": len(files[0]["shape"]["tasks"]),
        "sdk_import_ms": ms(med([r["sdk_s"] for r in files])),
        "variable_runtime_import_ms": ms(med([r["runtime_import_s"] for r in variables])),
        "variable_first_get_ms": ms(med([r["first_get_s"] for r in variables])),
        "variable_next_get_ms": ms(med([r["next_get_s"] for r in variables])),
        "dagbag_total_s": round(med([r["total_s"] for r in bags]), 3),
        "dagbag_call_ms": round(med([r["dagbag_s"] for r in bags]) * 1000, 1),
        "dagbag_import_s": round(med([r["import_s"] for r in bags]), 3),
        "dagbag_dags": bags[0]["dags"],
        "dagbag_errors": bags[0]["errors"],
        "migrate_s": round(migrate_s, 1),
        "importtime_top_us": breakdown,
        "load_average": benchlib.load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument(
        "--dag-file", type=Path, default=DAG_FILE, help="measure another version of the DAG file"
    )
    args = parser.parse_args(argv)
    benchlib.emit(measure(args.runs, args.dag_file.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
