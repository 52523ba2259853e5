"""Requests per second the sandbox serves: simple GETs on each API, several client threads.

    .venv/bin/python benchmarks/sandbox_throughput.py [--requests 3000] [--concurrency 8] [--scenario FILE]

Starts `python -m billing_sandbox` on scenarios/demo.json (when that is absent, the same scenario
from the generator) with the Huntress rate limit raised so 429s do not interfere, and no injected faults.
The clients use http.client with keep-alive, which costs far less CPU than httpx: on a small
machine the load generator shares the cores with the server, and a heavy client would measure itself.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from billing_sandbox.generate import generate

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scenarios" / "demo.json"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def huntress_targets(scenario: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    section = scenario["huntress"]
    org, invoice = section["organizations"][0]["id"], section["invoices"][0]["id"]
    paths = [
        "/v1/account",
        "/v1/organizations?limit=10",
        f"/v1/organizations/{org}",
        "/v1/reseller/invoices",
        f"/v1/reseller/invoices/{invoice}/organization_usage_line_items?limit=10",
    ]
    return paths, {"Authorization": basic(section["api_key"], section["api_secret"])}


def connectwise_targets(scenario: dict[str, Any], base_url: str) -> tuple[list[str], dict[str, str]]:
    section = scenario["connectwise"]
    info = get_json(base_url, f"/login/companyinfo/{section['company_id']}", {})
    api = "/" + info["Codebase"] + "apis/3.0"
    agreement = section["agreements"][0]["id"]
    paths = [
        f"{api}/system/info",
        f"{api}/company/companies?pageSize=25",
        f"{api}/procurement/catalog",
        f"{api}/finance/agreements/{agreement}",
        f"{api}/finance/agreements/{agreement}/additions",
    ]
    user = f"{section['company_id']}+{section['public_key']}"
    return paths, {"Authorization": basic(user, section["private_key"]), "clientId": section["client_id"]}


def get_json(base_url: str, path: str, headers: dict[str, str]) -> Any:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} -> {response.status}: {body[:200]!r}")
    return json.loads(body)


def fire(
    base_url: str, paths: list[str], headers: dict[str, str], total: int, concurrency: int
) -> dict[str, Any]:
    """`total` GETs over `concurrency` keep-alive connections; returns the rate and latency figures."""
    parts = urlsplit(base_url)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        seen: Counter[int] = Counter()
        start_gate.wait()
        for n in range(index, total, concurrency):
            began = time.perf_counter()
            conn.request("GET", paths[n % len(paths)], headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            seen[response.status] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(total / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
        "statuses": dict(statuses),
    }


def start(scenario_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "billing_sandbox", "--scenario", str(scenario_path)],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        env=env,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise SystemExit(f"sandbox did not start (exit {proc.wait()})")
    return proc, json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="GETs per API [3000]")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads per API [8]")
    parser.add_argument("--scenario", type=Path, default=DEMO if DEMO.exists() else None)
    args = parser.parse_args(argv)
    scenario = json.loads(args.scenario.read_text()) if args.scenario else generate(40, 42)
    scenario["huntress"]["rate_limit_per_minute"] = 1_000_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-scenario.json"
        path.write_text(json.dumps(scenario))
        proc, urls = start(path)
        try:
            results = {}
            targets = {
                "huntress": huntress_targets(scenario),
                "connectwise": connectwise_targets(scenario, urls["connectwise_url"]),
            }
            for name, (paths, headers) in targets.items():
                base = urls[f"{name}_url"]
                fire(base, paths, headers, min(200, args.requests), args.concurrency)  # warm-up
                results[name] = fire(base, paths, headers, args.requests, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(
        json.dumps(
            {
                "scenario": str(args.scenario or "built-in"),
                "cpu_count": os.cpu_count(),
                "concurrency": args.concurrency,
                **results,
            },
            indent=2,
        )
    )
    bad = {name: r["statuses"] for name, r in results.items() if set(r["statuses"]) != {200}}
    if bad:
        print(f"non-200 answers: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
