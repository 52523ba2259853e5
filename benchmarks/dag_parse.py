"""What parsing the DAG file costs, in fresh processes (imports are cached within one).

    python benchmarks/dag_parse.py [--runs 7]

- parse cost: importing the DAG file after `import pendulum` and the `airflow.sdk` names it uses
  (those are paid by every DAG file, so they are the baseline, not this file's cost);
  the first `Variable.get` (billing_day) is timed apart, in the same position the file does it;
- DagBag: `from airflow.dag_processing.dagbag import DagBag; DagBag(dag_folder=dags)`, in a fresh
  process, against a migrated private AIRFLOW_HOME (as a deployment has a metadata database).
Medians over the runs; one JSON line.
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

PROBE_IMPORT = """
import importlib.util, json, time
t0 = time.perf_counter()
import pendulum
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_parsed_dag", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t2 = time.perf_counter()
print(json.dumps({{"sdk_s": t1 - t0, "dag_s": t2 - t1}}))
"""

PROBE_VARIABLE = """
import json, time
import pendulum
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task
t0 = time.perf_counter()
from airflow.sdk import Variable
try:
    Variable.get("huntress_cw_billing_config", default="{{}}")
except Exception:
    pass
print(json.dumps({{"variable_s": time.perf_counter() - t0}}))
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
    done = subprocess.run([benchlib.PYTHON, "-c", code], capture_output=True, text=True, env=env,
                          cwd=benchlib.ROOT, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_breakdown(env: dict[str, str], top: int = 6) -> list[list[Any]]:
    """`-X importtime` of the DAG file after the sdk imports: the modules it adds, costliest first
    (cumulative µs, inflated by the tracing itself; for where, not how much)."""
    code = PROBE_IMPORT.format(path=str(DAG_FILE)).replace(
        "t1 = time.perf_counter()", "t1 = time.perf_counter(); import sys; sys.stderr.write('@@MARK\\n')")
    done = subprocess.run([benchlib.PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          env=env, cwd=benchlib.ROOT, timeout=120, check=False)
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
    done = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="billing-bench-parse-") as tmp:
        env = {**os.environ, **benchlib.airflow_env(Path(tmp))}
        migrate_s = migrate(env)
        imports = [probe(PROBE_IMPORT.format(path=str(DAG_FILE)), env) for _ in range(runs)]
        # Secondary figures: fewer runs keep `make bench` short.
        variables = [probe(PROBE_VARIABLE.format(), env) for _ in range(max(3, runs - 2))]
        bags = [probe(PROBE_DAGBAG.format(folder=str(DAG_FILE.parent)), env) for _ in range(max(3, runs - 2))]
        breakdown = import_breakdown(env)
    med = benchlib.median
    return {
        "runs": runs,
        "parse_ms": round(med([r["dag_s"] for r in imports]) * 1000, 1),
        "parse_ms_all": [round(r["dag_s"] * 1000, 1) for r in imports],
        "sdk_import_ms": round(med([r["sdk_s"] for r in imports]) * 1000, 1),
        "variable_lookup_ms": round(med([r["variable_s"] for r in variables]) * 1000, 1),
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
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    benchlib.emit(measure(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
