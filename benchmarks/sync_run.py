"""One billing run through the step functions, timed step by step, against a fresh sandbox.

    python benchmarks/sync_run.py --scenario FILE [--concurrency 4] [--invoice-source reseller]
                                  [--until record_run] [--latency-ms 40]

The steps run in the DAG's order (resolve → find_invoice → extract_huntress → extract_connectwise →
validate → reconcile → quarantine → push, batch by batch → record_run), each building its clients
the way its DAG task does: from the Airflow connections (AIRFLOW_CONN_* JSON) through HttpHook, one
client per task. dag.test() would run the same functions and add the scheduler's per-task cost,
which is not what these figures are about, and would hide the time of each step.

Prints one JSON line: step times, the requests each client made, the sandbox's own counts, and
the Huntress rolling-window check from the sandbox's request log.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402 - the sibling module, found through the line above

RUN_ID = "bench__2026-11-01"
STEPS = (
    "resolve",
    "find_invoice",
    "extract_huntress",
    "extract_connectwise",
    "validate",
    "reconcile",
    "quarantine",
    "push",
    "record_run",
)


class StepTimer:
    """Wall time of each step, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


class Clients:
    """Builds clients as the DAG tasks do, and keeps their request counters for the totals."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.stats: dict[str, list[Any]] = {"huntress": [], "connectwise": []}

    def huntress(self) -> Any:
        from billing_sync.huntress import HuntressClient

        client = HuntressClient.from_connection()
        self.stats["huntress"].append(client.api.stats)
        return client

    def connectwise(self, codebase: str | None = None) -> Any:
        from billing_sync.connectwise import ConnectWiseClient

        client = ConnectWiseClient.from_connection(concurrency=self.concurrency, codebase=codebase)
        self.stats["connectwise"].append(client.api.stats)
        return client

    def totals(self) -> dict[str, Any]:
        out = {}
        for api, stats in self.stats.items():
            by_endpoint: Counter[str] = Counter()
            retries: Counter[str] = Counter()
            for s in stats:
                by_endpoint.update(s.by_endpoint)
                retries.update(s.retries)
            out[api] = {
                "total": sum(by_endpoint.values()),
                "by_endpoint": dict(by_endpoint),
                "retries": dict(retries),
            }
        return out


def run_steps(concurrency: int, source: str, until: str) -> dict[str, Any]:
    from billing_sync import steps

    timer, clients = StepTimer(), Clients(concurrency)
    eng = steps.engine()  # schema creation: once per database, not part of any task
    variable = json.dumps({"connectwise_concurrency": concurrency, "invoice_source": source})
    ref = timer(
        "resolve",
        lambda: steps.resolve(
            eng, RUN_ID, date.fromisoformat(benchlib.BILLING_DATE), variable, {}, "default"
        ),
    )
    ref = timer("find_invoice", lambda: steps.find_invoice(eng, ref, clients.huntress()))
    if ref is None:
        raise RuntimeError("find_invoice found no invoice for the billing date")
    out: dict[str, Any] = {"extract": {}}
    out["extract"]["huntress"] = timer(
        "extract_huntress", lambda: steps.extract_huntress(eng, ref, clients.huntress())
    )
    if until != "extract_huntress":
        out.update(_rest(eng, ref, timer, clients))
    out.update(
        {"steps": {k: round(v, 3) for k, v in timer.seconds.items()}, "client_requests": clients.totals()}
    )
    return out


def _rest(eng: Any, ref: dict[str, Any], timer: StepTimer, clients: Clients) -> dict[str, Any]:
    from billing_sync import steps

    extract = timer("extract_connectwise", lambda: steps.extract_connectwise(eng, ref, clients.connectwise()))
    timer("validate", lambda: steps.validate(eng, ref))
    planned = timer("reconcile", lambda: steps.reconcile_run(eng, ref))
    batches = timer("quarantine", lambda: steps.quarantine(eng, ref))
    batch_seconds = []
    for batch in batches:
        before = timer.seconds.get("push", 0.0)
        # As the DAG does: the push task gets the codebase the extract discovered.
        timer(
            "push",
            lambda b=batch: steps.push_batch(eng, ref, b["batch"], clients.connectwise(extract["codebase"])),
        )
        batch_seconds.append(round(timer.seconds["push"] - before, 3))
    recorded = timer("record_run", lambda: steps.record_run(eng, ref))
    return {
        "extract_connectwise": {k: v for k, v in extract.items() if k != "requests"},
        "planned": planned,
        "push_batches": batch_seconds,
        "final_counts": recorded["counts"],
        "mismatches": recorded["checks"].get("mismatches", []),
    }


def served(sb: benchlib.Sandbox, scenario: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's own counts; for Huntress also the rolling-window check of its request log."""
    out = {}
    for api in ("huntress", "connectwise"):
        stats = benchlib.admin(sb.url(api), "requests?log=1" if api == "huntress" else "requests")
        out[api] = {k: stats[k] for k in ("total", "by_route", "by_status")}
        if api == "huntress":
            out[api]["window"] = window_check(stats["log"], scenario["huntress"])
    return out


def window_check(log: list[dict[str, Any]], section: dict[str, Any]) -> dict[str, Any]:
    """The most requests Huntress admitted in any rolling window, and how many it refused (429)."""
    window = section.get("rate_limit_window_s", 60)
    admitted = [e["time"] for e in log if e["status"] != "429"]
    return {
        "limit": section.get("rate_limit_per_minute", 60),
        "window_s": window,
        "max_in_window": benchlib.max_in_window(admitted, window),
        "status_429": sum(1 for e in log if e["status"] == "429"),
        "span_s": round(max(admitted) - min(admitted), 2) if admitted else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=4, help="connectwise_concurrency [4]")
    parser.add_argument("--invoice-source", choices=("reseller", "account"), default="reseller")
    parser.add_argument("--until", choices=("extract_huntress", "record_run"), default="record_run")
    parser.add_argument("--latency-ms", type=float, default=benchlib.LATENCY_MS)
    args = parser.parse_args(argv)
    scenario = json.loads(args.scenario.read_text())
    with benchlib.run_against(args.scenario, args.latency_ms) as sb:
        started = time.perf_counter()
        result = run_steps(args.concurrency, args.invoice_source, args.until)
        result["wall_s"] = round(time.perf_counter() - started, 3)
        result["served"] = served(sb, scenario)
    result.update(
        {
            "concurrency": args.concurrency,
            "invoice_source": args.invoice_source,
            "latency_ms": args.latency_ms,
            "load_average": benchlib.load_average(),
        }
    )
    benchlib.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
