"""`make bench`: every benchmark of the project, one table, written to docs/benchmarks.md.

    python benchmarks/run_all.py [--organizations 2000] [--seed 42] [--concurrency 1,4,8]
                                 [--tenants 4] [--out docs/benchmarks.md] [--no-write] [--from-json FILE]

Measured, not asserted: each figure is printed with its target and pass/fail; the exit code is 1
only when a measurement could not be taken. Each measurement runs in fresh processes (see the
modules it calls); logs and the raw results (results.json) go to test-artifacts/bench/.
Then `apply` (benchmarks/apply_run.py): a full run and one decision's Apply now beside it, about
80 s. About 6-7 minutes on 2 cores, most of it the concurrency-1 run, which is the point: 4,600
requests one at a time with 40 ms each; then `tenants` (benchmarks/tenants_executors.py: N tenants
on CeleryExecutor and on LocalExecutor, PostgreSQL and Redis needed) adds about 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402 - sibling modules, found through the line above
import report  # noqa: E402
from lower_bound import lower_bound  # noqa: E402

LOGS = benchlib.ROOT / "test-artifacts" / "bench"
RESULTS = LOGS / "results.json"
ACCOUNT_SAMPLE = {"organizations": 130, "limit": 60, "window_s": 10}
MIN_ORGANIZATIONS, MIN_AGREEMENTS, CHANGE_SHARE = 2000, 4000, 0.10
# Generous per-step limits: the whole of `make bench` stays bounded even when something hangs.
TIMEOUT_S = {
    "generate": 120,
    "sync": 600,
    "account": 300,
    "parse": 300,
    "reconcile": 600,
    "throughput": 300,
    "tenants": 3600,
}


class Bench:
    """Runs the measurements in order, keeping each result (or its error) and the load before it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.log = work / "bench.log"
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def measure(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        load = benchlib.load_average()
        print(f"[bench] {name} (load average {load[0]:.2f}) ...", flush=True)
        started = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # one broken measurement must not lose the others
            self.errors[name] = f"{type(exc).__name__}: {str(exc)[-500:]}"
            with self.log.open("a") as log:
                log.write(traceback.format_exc())
            print(f"[bench] {name} FAILED: {self.errors[name]}", flush=True)
            return
        result.update({"load_before": load, "seconds": round(time.perf_counter() - started, 1)})
        self.results[name] = result
        print(f"[bench] {name} done in {result['seconds']} s", flush=True)

    def script(self, args: list[str], timeout: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        return benchlib.run_json(args, self.log, TIMEOUT_S[timeout], env)


def generate(out: Path, organizations: int, seed: int, *extra: str) -> dict[str, Any]:
    subprocess.run(
        [
            benchlib.PYTHON,
            "-m",
            "billing_sandbox",
            "generate",
            "--organizations",
            str(organizations),
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--compact",
            *extra,
        ],
        cwd=benchlib.ROOT,
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S["generate"],
    )
    return json.loads(out.read_text())


def large_scenario(work: Path, organizations: int, seed: int) -> tuple[Path, dict[str, Any]]:
    path = work / f"scenario-{organizations}.json"
    scenario = generate(path, organizations, seed, "--change-share", str(CHANGE_SHARE))
    counts = scenario["meta"]["counts"]
    if counts["organizations"] < MIN_ORGANIZATIONS or counts["agreements"] < MIN_AGREEMENTS:
        raise SystemExit(f"the scenario is too small for the benchmark: {counts}")
    return path, scenario


def account_scenario(work: Path, seed: int) -> Path:
    """A short account-mode sample: Huntress's window shortened from 60 s to 10 s, the limit kept,
    in the server and (through the connection) in the client alike."""
    path = work / "scenario-account.json"
    scenario = generate(
        path, ACCOUNT_SAMPLE["organizations"], seed, "--rate-limit", str(ACCOUNT_SAMPLE["limit"])
    )
    scenario["huntress"]["rate_limit_window_s"] = ACCOUNT_SAMPLE["window_s"]
    path.write_text(json.dumps(scenario))
    return path


def sync_run(bench: Bench, scenario: Path, concurrency: int) -> dict[str, Any]:
    return bench.script(
        ["benchmarks/sync_run.py", "--scenario", str(scenario), "--concurrency", str(concurrency)], "sync"
    )


def account_run(bench: Bench, scenario: Path) -> dict[str, Any]:
    return bench.script(
        [
            "benchmarks/sync_run.py",
            "--scenario",
            str(scenario),
            "--invoice-source",
            "account",
            "--until",
            "extract_huntress",
        ],
        "account",
    )


def tenants_run(bench: Bench, tenants: int, organizations: int) -> dict[str, Any]:
    args = ["--tenants", str(tenants), "--organizations", str(organizations)]
    return bench.script(["benchmarks/tenants_executors.py", *args], "tenants")


def throughput(bench: Bench) -> dict[str, Any]:
    # Another module's script; it prints indented JSON, so the whole output is the result.
    done = subprocess.run(
        [benchlib.PYTHON, "benchmarks/sandbox_throughput.py"],
        cwd=benchlib.ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S["throughput"],
        check=False,
    )
    with bench.log.open("a") as log:
        log.write(done.stderr[-5000:])
    if done.returncode != 0:
        raise RuntimeError(f"sandbox_throughput.py exit {done.returncode}: {done.stderr[-1000:]}")
    return json.loads(done.stdout)


def run(args: argparse.Namespace) -> tuple[Bench, dict[str, Any], dict[str, Any]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    bench = Bench(LOGS)
    bench.log.write_text("")
    machine = benchlib.machine()
    path, scenario = large_scenario(LOGS, args.organizations, args.seed)
    bound = lower_bound(scenario, date.fromisoformat(benchlib.BILLING_DATE))
    bench.measure("dag_parse", lambda: bench.script(["benchmarks/dag_parse.py"], "parse"))
    bench.measure("reconcile", lambda: bench.script(["benchmarks/reconcile_scale.py"], "reconcile"))
    bench.measure("throughput", lambda: throughput(bench))
    account = account_scenario(LOGS, args.seed)
    bench.measure("account_sample", lambda: account_run(bench, account))
    for c in args.concurrency:
        bench.measure(f"sync_c{c}", lambda c=c: sync_run(bench, path, c))
    # Issue 20 §1: one decision's Apply now, after a full run of its own (benchmarks/apply_run.py).
    bench.measure("apply", lambda: bench.script(["benchmarks/apply_run.py", "--scenario", str(path)], "sync"))
    if args.tenants:
        bench.measure("tenants", lambda: tenants_run(bench, args.tenants, args.organizations))
    machine["load_average_end"] = benchlib.load_average()
    setup = {
        "scenario": scenario["meta"]["counts"],
        "generator": scenario["meta"]["generator"],
        "lower_bound": bound,
        "concurrency": args.concurrency,
        "account_sample": ACCOUNT_SAMPLE,
        "latency_ms": benchlib.LATENCY_MS,
        "tenants": args.tenants,
    }
    return bench, machine, setup


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organizations", type=int, default=MIN_ORGANIZATIONS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--concurrency",
        default="1,4,8",
        help="connectwise_concurrency values to run; 1 is the baseline [1,4,8]",
    )
    parser.add_argument(
        "--tenants", type=int, default=4, help="tenants on Celery vs LocalExecutor; 0 skips it [4]"
    )
    parser.add_argument("--out", type=Path, default=benchlib.ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave the docs alone")
    parser.add_argument("--from-json", type=Path, help="render saved raw results again instead of measuring")
    args = parser.parse_args(argv)
    args.concurrency = sorted({int(c) for c in args.concurrency.split(",")})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
    else:
        started = time.perf_counter()
        bench, machine, setup = run(args)
        machine["bench_minutes"] = round((time.perf_counter() - started) / 60, 1)
        saved = {"results": bench.results, "errors": bench.errors, "machine": machine, "setup": setup}
        RESULTS.write_text(json.dumps(saved, indent=1))
    rows = report.rows(saved["results"], saved["setup"])
    print("\n" + report.table(rows))
    print(report.machine_line(saved["machine"]))
    if not args.no_write:
        args.out.write_text(
            report.markdown(rows, saved["results"], saved["errors"], saved["machine"], saved["setup"])
        )
        print(f"written: {args.out}; raw results: {RESULTS.relative_to(benchlib.ROOT)}")
    for name, error in saved["errors"].items():
        print(f"measurement {name} failed: {error}", file=sys.stderr)
    return 1 if saved["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
