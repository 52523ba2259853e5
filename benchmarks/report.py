"""The benchmark results → rows with targets and pass/fail, a console table, docs/benchmarks.md."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CONFIGURED = 4  # the contract's default connectwise_concurrency
SPEEDUP_TARGET, LATENCY_RATIO_TARGET, REQUEST_RATIO_TARGET = 6.0, 1.25, 1.05
PARSE_MS_TARGET, DAGBAG_S_TARGET = 25.0, 2.0  # the DAG file beyond a same-shape no-work DAG
RECONCILE_S_TARGET, MEMORY_MB_TARGET, THROUGHPUT_TARGET = 2.0, 600.0, 500.0
APPLY_REQUESTS_TARGET, APPLY_S_TARGET = 10, 30.0  # issue 20 §1: one decision's Apply now
TENANTS_RATIO_TARGET = 1.2  # Celery's wall time over LocalExecutor's, at the same parallelism
MIB_TO_MB = 2**20 / 1e6


@dataclass
class Row:
    key: str
    measure: str
    figure: str
    target: str
    ok: bool | None  # None: informational

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "info"}[self.ok]


# --- figures --------------------------------------------------------------------------------------
def cw_wall(run: dict[str, Any]) -> float:
    """The ConnectWise-bound steps: extract_connectwise and every push batch (clients included)."""
    return run["steps"]["extract_connectwise"] + run["steps"].get("push", 0.0)


def huntress_wall(run: dict[str, Any]) -> float:
    return run["steps"]["find_invoice"] + run["steps"]["extract_huntress"]


def latency_bound(setup: dict[str, Any], concurrency: int, with_huntress: bool = True) -> float:
    """Seconds of pure waiting: ConnectWise phases at `concurrency` in flight, Huntress one at a time."""
    phases, latency = setup["lower_bound"]["phases"], setup["latency_ms"] / 1000
    cw = (phases["connectwise_extract"] + phases["connectwise_push"]) * latency / concurrency
    return cw + (phases["huntress"] * latency if with_huntress else 0.0)


def served_total(run: dict[str, Any]) -> int:
    return run["served"]["huntress"]["total"] + run["served"]["connectwise"]["total"]


def _runs(results: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(k.removeprefix("sync_c")): v for k, v in results.items() if k.startswith("sync_c")}


def _missing(key: str, measure: str, target: str) -> Row:
    return Row(key, measure, "not measured (see the errors below)", target, False)


# --- rows -----------------------------------------------------------------------------------------
def rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    parts = (
        request_rows,
        apply_rows,
        wall_rows,
        huntress_rows,
        parse_rows,
        reconcile_rows,
        throughput_rows,
        tenant_rows,
    )
    for part in parts:
        out.extend(part(results, setup))
    return out


def request_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    runs, bound = _runs(results), setup["lower_bound"]["total"]
    target = f"≤ {REQUEST_RATIO_TARGET}× the lower bound"
    run = runs.get(CONFIGURED) or next(iter(runs.values()), None)
    if run is None:
        return [_missing("1", "HTTP requests, full run", target)]
    measured = served_total(run)
    ratio = measured / bound
    return [
        Row(
            "1",
            f"HTTP requests, full run (concurrency {run['concurrency']})",
            f"{measured:,} vs lower bound {bound:,} = {ratio:.3f}×",
            target,
            ratio <= REQUEST_RATIO_TARGET,
        )
    ]


def apply_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    """One decision's Apply now beside the full re-run of the billing date (benchmarks/apply_run.py)."""
    a = results.get("apply")
    if a is None:
        return [_missing("1a", "HTTP requests, one Apply now vs full re-run", f"≤ {APPLY_REQUESTS_TARGET}")]
    apply, full = a["apply"], a["full"]
    return [
        Row(
            "1a",
            "HTTP requests, one Apply now vs full re-run",
            f"{apply['requests']['total']} (Huntress {apply['requests']['huntress']}, ConnectWise "
            f"{apply['requests']['connectwise']}) vs {full['requests']:,}",
            f"≤ {APPLY_REQUESTS_TARGET}",
            apply["requests"]["total"] <= APPLY_REQUESTS_TARGET,
        ),
        Row(
            "1b",
            "Wall, one Apply now (task process: imports → addition written → run recorded) vs full re-run",
            f"{apply['wall_s']:.1f} s vs {full['wall_s']:.1f} s",
            f"≤ {APPLY_S_TARGET:g} s",
            apply["wall_s"] <= APPLY_S_TARGET,
        ),
    ]


def wall_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    runs = _runs(results)
    out = []
    if 1 in runs:
        base = cw_wall(runs[1])
        for c in sorted(k for k in runs if k != 1):
            speedup = base / cw_wall(runs[c])
            label = " (contract default)" if c == CONFIGURED else ""
            out.append(
                Row(
                    "2",
                    f"ConnectWise-bound wall, concurrency {c}{label} vs 1",
                    f"{cw_wall(runs[c]):.1f} s vs {base:.1f} s = {speedup:.2f}× faster",
                    f"≥ {SPEEDUP_TARGET:g}× (ideal {c}×)",
                    speedup >= SPEEDUP_TARGET,
                )
            )
        out.extend(_needed_concurrency(runs, base))
    else:
        out.append(
            Row(
                "2",
                "ConnectWise-bound wall vs concurrency 1",
                "not measured (no concurrency-1 run)",
                f"≥ {SPEEDUP_TARGET:g}×",
                False,
            )
        )
    for c in sorted(runs):
        wall = cw_wall(runs[c]) + huntress_wall(runs[c])
        bound = latency_bound(setup, c)
        out.append(
            Row(
                "2",
                f"Network-bound wall vs latency bound, concurrency {c}",
                f"{wall:.1f} s vs {bound:.1f} s = {wall / bound:.2f}×",
                f"≤ {LATENCY_RATIO_TARGET}×",
                wall / bound <= LATENCY_RATIO_TARGET,
            )
        )
    return out


def _needed_concurrency(runs: dict[int, dict[str, Any]], base: float) -> list[Row]:
    """The smallest concurrency expected to reach the target, from the efficiency of the largest run."""
    top = max(runs)
    if top == 1:
        return []
    efficiency = base / cw_wall(runs[top]) / top
    needed = math.ceil(SPEEDUP_TARGET / efficiency)
    return [
        Row(
            "2",
            f"Concurrency needed for {SPEEDUP_TARGET:g}× (estimate)",
            f"{needed} ({efficiency:.0%} of ideal per request at {top})",
            "—",
            None,
        )
    ]


def huntress_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    out = []
    run = _runs(results).get(CONFIGURED) or next(iter(_runs(results).values()), None)
    target = "≤ limit in any rolling window, no 429"
    if run is None:
        out.append(_missing("3", "Huntress window, reseller run", target))
    else:
        out.append(_window_row("Huntress, reseller full run", run))
    account = results.get("account_sample")
    if account is None:
        out.append(_missing("3", "Huntress window, account sample", target))
    else:
        sample = setup["account_sample"]
        out.append(
            _window_row(f"Huntress, account mode sample ({sample['organizations']} organizations)", account)
        )
    return out


def _window_row(measure: str, run: dict[str, Any]) -> Row:
    w = run["served"]["huntress"]["window"]
    retried = run["client_requests"]["huntress"]["retries"].get("HTTP 429", 0)
    figure = (
        f"max {w['max_in_window']} of {run['served']['huntress']['total']} requests in any {w['window_s']:g} s "
        f"(over {w['span_s']:.1f} s); 429s: {w['status_429']}"
    )
    ok = w["max_in_window"] <= w["limit"] and w["status_429"] == 0 and retried == 0
    return Row("3", measure, figure, f"≤ {w['limit']} per {w['window_s']:g} s, no 429", ok)


def parse_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    p = results.get("dag_parse")
    if p is None or "extra_ms" not in p:
        return [_missing("4", "DAG file parse cost", f"≤ {PARSE_MS_TARGET:g} ms")]
    return [
        Row(
            "4",
            "DAG file parse cost beyond a same-shape DAG that does no work (median of "
            f"{p['runs']} paired fresh processes)",
            f"{p['extra_ms']:.1f} ms ({p['file_ms']:.1f} vs {p['twin_ms']:.1f} ms)",
            f"≤ {PARSE_MS_TARGET:g} ms",
            p["extra_ms"] <= PARSE_MS_TARGET,
        ),
        Row(
            "4",
            "DagBag(dag_folder=dags), fresh process, imports included",
            f"{p['dagbag_total_s']:.2f} s (DagBag() itself {p['dagbag_call_ms']:.0f} ms)",
            f"< {DAGBAG_S_TARGET:g} s",
            p["dagbag_total_s"] < DAGBAG_S_TARGET and not p["dagbag_errors"],
        ),
    ]


def reconcile_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    r = results.get("reconcile")
    if r is None:
        return [_missing("5", "Reconciliation 100k × 100k", f"≤ {RECONCILE_S_TARGET:g} s")]
    size = f"{r['usage_rows']:,} usage rows × {r['additions']:,} additions"
    rss, traced = r["peak_rss_mib"] * MIB_TO_MB, r["tracemalloc_peak_mib"] * MIB_TO_MB
    return [
        Row(
            "5",
            f"Reconciliation time, {size}",
            f"{r['median_s']:.2f} s median (cold {r['cold_s']:.2f} s)",
            f"≤ {RECONCILE_S_TARGET:g} s",
            r["median_s"] <= RECONCILE_S_TARGET,
        ),
        Row(
            "5",
            "Reconciliation peak memory (fresh process)",
            f"{rss:.0f} MB peak RSS; {traced:.0f} MB traced by tracemalloc",
            f"≤ {MEMORY_MB_TARGET:g} MB",
            max(rss, traced) <= MEMORY_MB_TARGET,
        ),
    ]


def throughput_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    t = results.get("throughput")
    if t is None:
        return [_missing("6", "Sandbox throughput", f"≥ {THROUGHPUT_TARGET:g} GETs/s")]
    h, c = t["huntress"]["requests_per_s"], t["connectwise"]["requests_per_s"]
    return [
        Row(
            "6",
            f"Sandbox throughput, simple GETs ({t['concurrency']} client threads)",
            f"Huntress {h:,.0f}/s, ConnectWise {c:,.0f}/s",
            f"≥ {THROUGHPUT_TARGET:g}/s each",
            min(h, c) >= THROUGHPUT_TARGET,
        )
    ]


def tenant_rows(results: dict[str, Any], setup: dict[str, Any]) -> list[Row]:
    t = results.get("tenants")
    target = f"≤ {TENANTS_RATIO_TARGET:g}× LocalExecutor's"
    if t is None:  # not asked for (--tenants 0, or results saved before it existed): no row
        return (
            [_missing("7", "Tenants, Celery vs LocalExecutor wall", target)] if setup.get("tenants") else []
        )
    c, lo = t["celery"]["summary"], t["local"]["summary"]
    size = f"{t['tenants']} tenants × {t['organizations']:,} organizations, {t['latency_ms']:g} ms"
    runs = [r for e in ("celery", "local") for r in t[e]["runs"].values()]
    window = max(r["huntress_max_in_window"] for r in runs)
    cost = tenant_cost(t)
    return [
        Row(
            "7",
            f"Tenants on Celery ({size}): wall, Celery ({t['workers']} workers × {t['worker_slots']} slots) "
            f"vs LocalExecutor (parallelism {t['parallelism']})",
            _tenant_walls(t),
            target,
            t["ratio"] <= TENANTS_RATIO_TARGET and c["runs_all_success"] and lo["runs_all_success"],
        ),
        Row(
            "7",
            "Tenants within their API limits (every run, both executors)",
            f"429s: {c['status_429'] + lo['status_429']}; Huntress max {window} in any 60 s per account",
            "no 429, ≤ 60 per 60 s",
            c["within_limits"] and lo["within_limits"],
        ),
        Row(
            "7",
            "Worker slot-seconds per run (Celery) → tenants per hour per worker slot",
            f"{cost['slot_s']:.0f} s → {cost['per_hour']:.0f}",
            "—",
            None,
        ),
    ]


def _tenant_walls(t: dict[str, Any]) -> str:
    passes = t.get("passes") or [{e: t[e]["summary"] for e in ("celery", "local")}]
    walls = {e: sum(p[e]["wall_s"] for p in passes) for e in ("celery", "local")}
    over = f" over {len(passes)} passes" if len(passes) > 1 else ""
    return f"{walls['celery']:.1f} s vs {walls['local']:.1f} s{over} = {t['ratio']:.2f}×"


def tenants_section(results: dict[str, Any]) -> list[str]:
    """docs/benchmarks.md's "Tenants on Celery": the measured figures and what follows from them."""
    t = results.get("tenants")
    if not t:
        return []
    ex = [e for e in ("celery", "local") if e in t]
    s = {e: t[e]["summary"] for e in ex}
    m = t["machine"]
    label = {
        "celery": f"Celery, {t['workers']} workers × {t['worker_slots']} slots",
        "local": f"LocalExecutor, parallelism {t['parallelism']}",
    }
    figures = [
        ("load average (1 / 5 / 15 min) at the trigger", lambda e: _load(t[e]["load_before"])),
        ("**wall: trigger → last run ended**", lambda e: f"**{s[e]['wall_s']:.1f} s**"),
        ("wall: first run queued → last run ended", lambda e: f"{s[e]['wall_queued_to_end_s']:.1f} s"),
        (
            "runs succeeded",
            lambda e: f"{sum(v == 'success' for v in t[e]['states'].values())} of {t['tenants']}",
        ),
        ("slot-seconds per run (task durations summed)", lambda e: f"{s[e]['slot_s_per_run']:.1f} s"),
        (
            "… of it network-bound (wait_for_invoice, extracts, push)",
            lambda e: f"{s[e]['wan_slot_s_per_run']:.1f} s",
        ),
        (
            "per run: no task of it running (hand-offs, waits for a slot)",
            lambda e: f"{s[e]['idle_s_per_run']:.1f} s" if "idle_s_per_run" in s[e] else "—",
        ),
        (
            "per run, tasks' waits summed: scheduled → queued, queued → started",
            lambda e: f"{_per_run(t, e, 'scheduled_to_queued_s')}, {_per_run(t, e, 'queue_wait_s')}",
        ),
        ("task CPU per run (task processes' trees / N)", lambda e: f"{s[e]['task_cpu_s_per_run']:.1f} s"),
        ("scheduler's own CPU, whole span", lambda e: f"{s[e]['scheduler_own_cpu_s']:.1f} s"),
        ("API server (Execution API) CPU, whole span", lambda e: f"{s[e]['api_server_cpu_s']:.1f} s"),
        ("all Airflow processes' CPU, whole span", lambda e: f"{s[e]['airflow_cpu_s']:.1f} s"),
        (
            "machine busy CPU, whole span (others' load included)",
            lambda e: f"{s[e]['machine_busy_cpu_s']:.0f} s of {s[e]['wall_s'] * m['nproc']:.0f}",
        ),
        ("HTTP requests per run", lambda e: f"{s[e]['requests_per_run']:,}"),
        ("429s (all runs)", lambda e: s[e]["status_429"]),
        ("load average after", lambda e: _load(t[e]["load_after"])),
    ]
    lines = [
        "## 7. Tenants on Celery",
        "",
        f"`benchmarks/tenants_executors.py` (measured {m['date']} on {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB, load average {_load(m['load_average'])} at its start, "
        f"{_load(t['load_average_end'])} at its end; the machine is shared): {t['tenants']} tenants, each "
        f"its own generated scenario of {t['organizations']:,} organizations (change share "
        f"{t['change_share']:g}) in a sandbox of its own with {t['latency_ms']:g} ms on both APIs, its own "
        "Huntress account (pool `huntress__<conn id>`, one slot) and DAG from the tenants file, one run "
        "each, triggered together with one run id. Built from `make celery`'s pieces "
        "(`scripts/airflow_celery.py`), first on CeleryExecutor "
        f"({t['workers']} workers × {t['worker_slots']} slots, Redis), then on LocalExecutor with "
        f"`[core] parallelism` {t['parallelism']}; each on fresh PostgreSQL metadata and billing "
        "databases, fresh sandboxes on the same scenario files, the same API server, scheduler and DAG "
        "processor, started and left to settle before the trigger.",
        "",
        *_md_table(["figure", *[label[e] for e in ex]], [[name, *[f(e) for e in ex]] for name, f in figures]),
    ]
    if "ratio" in t:
        verdict = "pass" if t["ratio"] <= TENANTS_RATIO_TARGET else "FAIL"
        passes = t.get("passes", [])
        lines += [
            f"Celery / LocalExecutor wall: **{_tenant_walls(t)}** (queued → ended: "
            f"{t['ratio_queued_to_end']:.2f}×); target ≤ {TENANTS_RATIO_TARGET:g}×: **{verdict}**."
            + (
                " The table is the first pass; every pass, every other in the reverse order (a shared "
                "machine's load drifts): "
                + "; ".join(
                    f"{k + 1}. {' → '.join(p['order'])}: Celery {p['celery']['wall_s']:.1f} s (load "
                    f"{p['celery']['load_before'][0]:.2f}), LocalExecutor {p['local']['wall_s']:.1f} s (load "
                    f"{p['local']['load_before'][0]:.2f}) = {p['ratio']:.2f}×"
                    for k, p in enumerate(passes)
                )
                + "."
                if len(passes) > 1
                else ""
            ),
            "",
            f"For the same runs Airflow's processes used {s['celery']['airflow_cpu_s']:.0f} CPU-seconds on "
            f"Celery and {s['local']['airflow_cpu_s']:.0f} on LocalExecutor "
            f"({s['celery']['airflow_cpu_s'] / s['local']['airflow_cpu_s'] - 1:+.0%}; the processes that "
            f"ran the tasks {s['celery']['task_cpu_s']:.0f} vs {s['local']['task_cpu_s']:.0f}, the "
            f"scheduler's own {s['celery']['scheduler_own_cpu_s']:.0f} vs "
            f"{s['local']['scheduler_own_cpu_s']:.0f}); "
            f"the machine was busy {_busy(t, 'celery'):.0%} and {_busy(t, 'local'):.0%} of its CPU over the "
            "two spans (others' load included)"
            + (
                ": beyond the APIs' latency the runs wait for CPU."
                if min(_busy(t, "celery"), _busy(t, "local")) >= 0.9
                else "."
            ),
            "",
        ]
    if all("idle_s_per_run" in s[e] for e in ex) and len(ex) == 2:
        c, lo = t["celery"]["runs"].values(), t["local"]["runs"].values()
        lines += [
            f"Where the walls part (first pass): a run's slot-seconds {s['celery']['slot_s_per_run']:.1f} s "
            f"on Celery, {s['local']['slot_s_per_run']:.1f} s on LocalExecutor; time with none of the "
            f"run's tasks running {s['celery']['idle_s_per_run']:.1f} s against "
            f"{s['local']['idle_s_per_run']:.1f} s. Celery's ready tasks waited in `scheduled` "
            f"({_mean(c, 'scheduled_to_queued_s'):.1f} s per run, summed over its tasks) and "
            f"{_mean(c, 'queue_wait_s'):.1f} s in `queued`; LocalExecutor's "
            f"{_mean(lo, 'scheduled_to_queued_s'):.1f} s and {_mean(lo, 'queue_wait_s'):.1f} s.",
            "",
        ]
    body = [
        [
            e,
            tenant,
            r["state"],
            f"{r['wall_s']:.1f}",
            f"{r['slot_s']:.1f}",
            f"{r['requests']['huntress']} / {r['requests']['connectwise']:,}",
            f"{r['api_s']['huntress']:.1f} / {r['api_s']['connectwise']:.1f}",
            f"{r['huntress_max_in_window']} (≤ {r['huntress_limit']})",
            r["status_429"],
            ", ".join(r["hosts"]),
        ]
        for e in ex
        for tenant, r in t[e]["runs"].items()
    ]
    lines += [
        "Per run, first pass (API time: the sandbox's own request durations, latency included, summed; requests in "
        "flight overlap, so it exceeds the time the run waited):",
        "",
        *_md_table(
            [
                "executor",
                "tenant",
                "state",
                "wall s",
                "slot-s",
                "requests H / CW",
                "API time s H / CW",
                "Huntress max in 60 s",
                "429s",
                "ran on",
            ],
            body,
        ),
    ]
    return lines + (_tenants_derivation(t) if "celery" in t else [])


def _mean(runs: Any, key: str) -> float:
    values = [r[key] for r in runs]
    return sum(values) / len(values)


def _per_run(t: dict[str, Any], executor: str, key: str) -> str:
    runs = t[executor]["runs"].values()
    if not all(key in r for r in runs):
        return "—"
    return f"{sum(r[key] for r in runs) / len(runs):.1f} s"


def _busy(t: dict[str, Any], executor: str) -> float:
    s = t[executor]["summary"]
    return s["machine_busy_cpu_s"] / (s["wall_s"] * t["machine"]["nproc"])


TENANT_COUNTS, WINDOWS_H = (10, 50, 100, 500, 1000), (1, 4, 8)


def tenant_cost(t: dict[str, Any]) -> dict[str, float]:
    """Celery's slot-seconds and task CPU per run (means over the passes), and what they imply."""
    passes = t.get("passes") or [{"celery": t["celery"]["summary"]}]
    c = [p["celery"] for p in passes]
    slot_s = sum(p["slot_s_per_run"] for p in c) / len(c)
    cpu_s = sum(p["task_cpu_s_per_run"] for p in c) / len(c)
    busy = sum(p["machine_busy_cpu_s"] / (p["wall_s"] * t["machine"]["nproc"]) for p in c) / len(c)
    return {
        "passes": len(c),
        "slot_s": slot_s,
        "cpu_s": cpu_s,
        "cpu_share": cpu_s / slot_s,
        "per_hour": 3600 / slot_s,
        "busy": busy,
    }


def workers_needed(tenants: int, slot_s: float, window_h: float, slots_per_worker: int) -> int:
    return math.ceil(tenants * slot_s / (window_h * 3600 * slots_per_worker))


def _tenants_derivation(t: dict[str, Any]) -> list[str]:
    s = t["celery"]["summary"]
    cost = tenant_cost(t)
    slot_s, cpu_share, k = cost["slot_s"], cost["cpu_share"], t["worker_slots"]
    runs = list(t["celery"]["runs"].values())
    huntress_s = sum(r["huntress_slot_s"] for r in runs) / len(runs)
    huntress_requests = sum(r["requests"]["huntress"] for r in runs) / len(runs)
    per_account = min(3600 / max(huntress_s, 0.1), 3600 / max(huntress_requests, 1))
    over = f"the mean of Celery's {cost['passes']} passes" if cost["passes"] > 1 else "Celery's figure"
    table = _md_table(
        ["tenants T", *[f"W = {w} h" for w in WINDOWS_H]],
        [[n, *[workers_needed(n, slot_s, w, k) for w in WINDOWS_H]] for n in TENANT_COUNTS],
    )
    return [
        "### What one run costs, and what follows",
        "",
        "S = a run's slot-seconds: the sum of its task instances' durations (process start, Execution "
        "API calls, waiting on the APIs and for CPU included), here " + over + ".",
        "",
        f"- **S = {slot_s:.1f} s** per run of {t['organizations']:,} organizations (first pass: "
        f"{s['slot_s_per_run']:.1f} s, {s['wan_slot_s_per_run']:.1f} s of it in the network-bound tasks). "
        f"The task processes used {cost['cpu_s']:.1f} CPU-seconds per run, so a busy slot keeps "
        f"{cpu_share:.2f} of a core busy on average: a worker of k slots wants about k × {cpu_share:.2f} "
        "cores.",
        f"- **Tenants per hour per worker slot** = 3600 / S = **{cost['per_hour']:.0f}**. S was measured "
        f"with this machine's CPU {cost['busy']:.0%} busy ({t['parallelism']} slots on "
        f"{t['machine']['nproc']} cores, others' load besides); on workers with their own cores it is "
        "smaller, down towards the network-bound part, so the counts below err on the safe side.",
        f"- **Workers for T tenants on one billing day** within a window of W hours = "
        f"ceil(T × S / (W × 3600 × slots per worker)), at {k} slots per worker in the table below. A "
        "run's tasks mostly follow one another, so each tenant's run still takes about its own wall (the "
        "per-run table) however many workers there are: the window must be longer than that; the slots "
        "bound how many tenants' runs finish in it.",
        f"- **Huntress bound**: one account's Huntress phase (wait_for_invoice and extract_huntress: "
        f"{huntress_s:.1f} slot-seconds and {huntress_requests:.0f} requests per run here, reseller "
        "invoices) runs in that account's pool of one slot, so tenants sharing one Huntress account go "
        "through it one at a time: in reseller mode at most min(3600 / "
        f"{huntress_s:.1f}, 3600 / {huntress_requests:.0f}) ≈ {per_account:.0f} runs an hour per account "
        "(the pool, then 60 requests a minute), however many workers there are. In account mode (one "
        "request per organization) the rate limit is the bound: "
        f"{t['organizations']:,} organizations need ≥ {t['organizations'] / 60:.0f} minutes per run, so at "
        f"most {3600 / t['organizations']:.1f} such tenants an hour per shared account. Here each tenant "
        "has its own account, so no tenant waited for another's Huntress phase.",
        "",
        f"Workers of {k} slots for T tenants within W hours (S = {slot_s:.1f} s):",
        "",
        *table,
    ]


# --- console --------------------------------------------------------------------------------------
def table(rows_: list[Row]) -> str:
    header = ("#", "measure", "figure", "target", "result")
    cells = [header, *[(r.key, r.measure, r.figure, r.target, r.verdict) for r in rows_]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['date']}; {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average {_load(m['load_average'])} at start, {_load(m['load_average_end'])} at end; "
        f"{m.get('bench_minutes', '?')} min"
    )


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


# --- docs/benchmarks.md ---------------------------------------------------------------------------
def markdown(
    rows_: list[Row],
    results: dict[str, Any],
    errors: dict[str, str],
    machine: dict[str, Any],
    setup: dict[str, Any],
) -> str:
    parts: list[Callable[[], list[str]]] = [
        lambda: _head(machine, setup),
        lambda: _results(rows_, results),
        lambda: _requests(results, setup),
        lambda: _steps(results, setup),
        lambda: _huntress(results, setup),
        lambda: _parse(results),
        lambda: _reconcile(results),
        lambda: _throughput(results),
        lambda: tenants_section(results),
        lambda: _errors(errors),
        _findings,
    ]
    return "\n".join(line for part in parts for line in part()) + "\n"


def _md_table(header: list[str], body: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(str(c) for c in row) + " |" for row in body],
        "",
    ]


def _head(m: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    s, g = setup["scenario"], setup["generator"]
    dirty = " (with uncommitted changes)" if m["dirty"] else ""
    return [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`), which prints the same table; do not edit by hand.",
        "Figures are measured, not asserted: each has its target and pass/fail.",
        "",
        f"- **Date**: {m['date']}, commit `{m['commit']}`{dirty}; the run took {m.get('bench_minutes', '?')} min.",
        f"- **Machine**: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB memory, Python {m['python']}, "
        f"{m['platform']}.",
        f"- **Load average** (1 / 5 / 15 min): {_load(m['load_average'])} at the start, "
        f"{_load(m['load_average_end'])} at the end (the machine is shared; each measurement's own is below).",
        f"- **Scenario**: `python -m billing_sandbox generate --organizations {g['organizations']} --seed {g['seed']} "
        f"--change-share {g['change_share']}`: {s['organizations']:,} organizations, {s['companies']:,} companies, "
        f"{s['agreements']:,} agreements ({setup['lower_bound']['candidate_agreements']:,} active, not cancelled), "
        f"{s['additions']:,} additions, {s['invoice_lines']:,} invoice lines, "
        f"{setup['lower_bound']['changes']} quantities to change.",
        f"- **Latency**: {setup['latency_ms']} ms injected on both APIs (`POST /_sandbox/faults`).",
        "- **How a run is driven**: the step functions in the DAG's order (resolve → find_invoice → "
        "extract_huntress → extract_connectwise → validate → reconcile → quarantine → push per batch → "
        "record_run), each building its clients from Airflow connections (`AIRFLOW_CONN_*`, through "
        "HttpHook) as its DAG task does, in a fresh process with a private AIRFLOW_HOME and billing database, "
        "against a fresh sandbox process. Steps run one after another (the DAG runs the two extracts in "
        "parallel). `dag.test()` would run the same functions plus the scheduler's per-task cost, and hide "
        "the time of each step.",
        "",
    ]


def _results(rows_: list[Row], results: dict[str, Any]) -> list[str]:
    body = [
        [r.key, r.measure, r.figure, r.target, f"**{r.verdict}**" if r.ok is False else r.verdict]
        for r in rows_
    ]
    loads = [f"{name} {_load(r['load_before'])}" for name, r in results.items()]
    return [
        "## Results",
        "",
        *_md_table(["#", "measure", "figure", "target", "result"], body),
        "Load average (1 / 5 / 15 min) when each measurement started: " + "; ".join(loads) + ".",
        "",
    ]


def _requests(results: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    runs, bound = _runs(results), setup["lower_bound"]
    lines = [
        "## 1. Requests",
        "",
        "Lower bound, from the scenario file alone (`benchmarks/lower_bound.py`): every list at the "
        "largest page the API allows, one additions read per active, not cancelled agreement, one read "
        "and one write per change (the change count is the generator's `meta.counts.clean_keys.changed`, "
        "which `tests/sandbox/generate/` verifies independently).",
        "",
    ]
    body = [[api, k, v] for api in ("huntress", "connectwise") for k, v in bound[api].items()]
    lines += _md_table(
        ["API", "lower bound item", "requests"], [*body, ["", "**total**", f"**{bound['total']}**"]]
    )
    if runs:
        cs = sorted(runs)
        routes = sorted(
            {
                (api, route)
                for run in runs.values()
                for api in ("huntress", "connectwise")
                for route in run["served"][api]["by_route"]
            },
            key=lambda r: (r[0] != "huntress", r[1]),
        )
        body = [
            [api, route, *[runs[c]["served"][api]["by_route"].get(route, 0) for c in cs]]
            for api, route in routes
        ]
        body.append(["", "**total**", *[f"**{served_total(runs[c])}**" for c in cs]])
        body.append(["", "counted by the clients", *[_client_total(runs[c]) for c in cs]])
        body.append(["", "retries", *[_retries(runs[c]) for c in cs]])
        lines += [
            "Served by the sandbox (its own counters), per run:",
            "",
            *_md_table(["API", "route", *[f"concurrency {c}" for c in cs]], body),
        ]
    lines += [
        "The only request above the bound is `GET /login/companyinfo/{companyId}`: extract_connectwise "
        "discovers the codebase once (unless the connection's extra names it) and the push tasks reuse "
        "it.",
        "",
    ]
    return lines


def _client_total(run: dict[str, Any]) -> int:
    return sum(run["client_requests"][api]["total"] for api in ("huntress", "connectwise"))


def _retries(run: dict[str, Any]) -> str:
    counts: Counter[str] = Counter()
    for api in ("huntress", "connectwise"):
        counts.update(run["client_requests"][api]["retries"])
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def _steps(results: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    runs = _runs(results)
    if not runs:
        return []
    cs = sorted(runs)
    names = list(next(iter(runs.values()))["steps"])
    body = [[name, *[f"{runs[c]['steps'].get(name, 0):.2f}" for c in cs]] for name in names]
    body.append(
        ["**ConnectWise-bound** (extract_connectwise + push)", *[f"**{cw_wall(runs[c]):.2f}**" for c in cs]]
    )
    body.append(["latency bound, ConnectWise phases", *[f"{latency_bound(setup, c, False):.2f}" for c in cs]])
    body.append(
        [
            "**network-bound** (+ find_invoice, extract_huntress)",
            *[f"**{cw_wall(runs[c]) + huntress_wall(runs[c]):.2f}**" for c in cs],
        ]
    )
    body.append(["latency bound, + Huntress one at a time", *[f"{latency_bound(setup, c):.2f}" for c in cs]])
    body.append(
        ["push batches", *[", ".join(f"{b:.2f}" for b in runs[c].get("push_batches", [])) for c in cs]]
    )
    body.append(["whole run (all steps)", *[f"{runs[c]['wall_s']:.2f}" for c in cs]])
    body.append(["load average after the run", *[_load(runs[c]["load_average"]) for c in cs]])
    p = setup["lower_bound"]["phases"]
    return [
        "## 2. Wall time per step (seconds)",
        "",
        f"Latency bound = requests × {setup['latency_ms']} ms / concurrency per ConnectWise phase "
        f"(extract {p['connectwise_extract']:,} requests, push {p['connectwise_push']:,}), plus Huntress's "
        f"{p['huntress']} requests one at a time.",
        "",
        *_md_table(["step", *[f"concurrency {c}" for c in cs]], body),
    ]


def _huntress(results: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    lines = [
        "## 3. Huntress rate limit",
        "",
        "Counted from the sandbox's request log (`GET /_sandbox/requests?log=1`): the most requests Huntress "
        "admitted inside any rolling window, and how many it refused with 429. The reseller run needs "
        "only a handful of requests. Account mode needs one request per organization (2,000 → over 34 "
        "minutes), so it is sampled: "
        f"{setup['account_sample']['organizations']} organizations with the window shortened from 60 s to "
        f"{setup['account_sample']['window_s']} s and the limit kept at {setup['account_sample']['limit']}, "
        "in the server and the client alike (the same algorithm, 6× faster). The sample runs resolve, "
        "find_invoice and extract_huntress, each with its own client, as the DAG's tasks do.",
        "",
    ]
    body = []
    for name, run in [
        ("reseller run", _runs(results).get(CONFIGURED)),
        ("account sample", results.get("account_sample")),
    ]:
        if run:
            w = run["served"]["huntress"]["window"]
            body.append(
                [
                    name,
                    run["served"]["huntress"]["total"],
                    w["limit"],
                    f"{w['window_s']:g} s",
                    w["max_in_window"],
                    w["status_429"],
                    f"{w['span_s']:.1f} s",
                    f"{run['steps']['extract_huntress']:.1f} s",
                ]
            )
    return lines + _md_table(
        ["run", "requests", "limit", "window", "max in a window", "429s", "span", "extract_huntress"], body
    )


def _parse(results: dict[str, Any]) -> list[str]:
    p = results.get("dag_parse")
    if not p or "extra_ms" not in p:
        return []
    return [
        "## 4. DAG file parse",
        "",
        f"Fresh processes against a migrated private AIRFLOW_HOME, {p['runs']} of each, alternating: after "
        f"`import airflow.sdk` ({p['sdk_import_ms']:.0f} ms, paid by any DAG file), the time to execute "
        "the DAG file and `benchmarks/dag_noop_twin.py`, a DAG of the same shape (DAG arguments, "
        f"{p['tasks']} tasks, wiring) that does no work. The figure is the median of the paired "
        "differences.",
        "",
        *_md_table(
            ["figure", "median"],
            [
                ["DAG file beyond the same-shape no-work DAG", f"{p['extra_ms']:.1f} ms"],
                ["DAG file", f"{p['file_ms']:.1f} ms (runs: {p['file_ms_all']})"],
                ["no-work twin", f"{p['twin_ms']:.1f} ms (runs: {p['twin_ms_all']})"],
                [
                    "`Variable.get` here: importing Airflow's task runtime first",
                    f"{p['variable_runtime_import_ms']:.1f} ms",
                ],
                [
                    "`Variable.get` here: the first lookup, then the next",
                    f"{p['variable_first_get_ms']:.1f} ms, {p['variable_next_get_ms']:.1f} ms",
                ],
                ["DagBag(dag_folder=dags) call", f"{p['dagbag_call_ms']:.0f} ms"],
                ["fresh process: import DagBag + load", f"{p['dagbag_total_s']:.2f} s"],
                ["DAGs / import errors", f"{p['dagbag_dags']} / {p['dagbag_errors'] or 'none'}"],
            ],
        ),
        "What executing the DAG file imports, by `-X importtime` (top-level modules, cumulative µs, "
        "inflated by the tracing; the twin imports the same decorator and timetable modules): "
        + ", ".join(f"`{name}` {us:,}" for name, us in p.get("importtime_top_us", []))
        + ".",
        "",
    ]


def _reconcile(results: dict[str, Any]) -> list[str]:
    r = results.get("reconcile")
    if not r:
        return []
    return [
        "## 5. Reconciliation at scale",
        "",
        "`benchmarks/reconcile_scale.py`: 25,000 organizations × 4 products against one live addition per "
        "company and product (30 % matched by name, 2 % unmatched, 1 % invalid counts, 1 % EDR on a "
        "cancelled agreement, half the quantities drifting). Inputs are built and pickled by one process; "
        "a fresh one loads them, runs reconcile once cold (peak RSS: interpreter, pandas, inputs and "
        "working set), three times warm (median), once under tracemalloc.",
        "",
        *_md_table(
            ["figure", "value"],
            [
                ["keys", f"{r['keys']:,}"],
                ["cold / warm runs", f"{r['cold_s']} s / {r['warm_s']} s"],
                ["RSS before reconcile (inputs loaded)", f"{r['rss_before_mib'] * MIB_TO_MB:.0f} MB"],
                ["peak RSS", f"{r['peak_rss_mib'] * MIB_TO_MB:.0f} MB"],
                ["tracemalloc peak", f"{r['tracemalloc_peak_mib'] * MIB_TO_MB:.0f} MB"],
                ["outcomes", ", ".join(f"{k} {v:,}" for k, v in r["counts"].items())],
                ["load average after", _load(r["load_average"])],
            ],
        ),
    ]


def _throughput(results: dict[str, Any]) -> list[str]:
    t = results.get("throughput")
    if not t:
        return []
    body = [
        [
            api,
            t[api]["requests"],
            t[api]["seconds"],
            t[api]["requests_per_s"],
            t[api]["p50_ms"],
            t[api]["p95_ms"],
        ]
        for api in ("huntress", "connectwise")
    ]
    return [
        "## 6. Sandbox throughput",
        "",
        f"`benchmarks/sandbox_throughput.py` (defaults): simple GETs over {t['concurrency']} keep-alive "
        f"connections on `{t['scenario'].rsplit('/', 1)[-1]}`, no injected latency.",
        "",
        *_md_table(["API", "requests", "seconds", "requests/s", "p50 ms", "p95 ms"], body),
    ]


def _errors(errors: dict[str, str]) -> list[str]:
    if not errors:
        return []
    return ["## Errors", "", *[f"- `{name}`: {text}" for name, text in errors.items()], ""]


def _findings() -> list[str]:
    return FINDINGS.strip("\n").splitlines()


FINDINGS = """
## What the figures say, and what was changed

- **Requests**: a full run makes the lower bound plus one `/login/companyinfo` (the codebase,
  discovered by extract_connectwise and reused by the push tasks). Paging always uses the largest page and stops on the page without a next link (no empty
  trailing page), the additions are read once per candidate agreement, and each change costs exactly
  one re-read and one PATCH.
- **Concurrency and the 6× target**: with `n` requests in flight the best possible speed-up over one
  at a time is `n`×, so the contract default of 4 cannot reach 6× (it gets close to 4×). 8 does.
  The smallest that does is 7: measured once besides `make bench` (2026-11-22, load average about
  1.1), concurrency 6 gave 5.8× and 7 gave 6.8×; `benchmarks/run_all.py --concurrency 1,4,6,7,8`
  measures them again.
  The default stays 4 (docs/contract.md §1); an operator who wants the target sets
  `"connectwise_concurrency": 8` in the Variable — how many parallel requests a real ConnectWise
  site tolerates before it answers 429 is theirs to judge (the client retries 429 with
  `Retry-After`).
- **Where the time goes**: above pure waiting, each request costs `requests`/urllib3 about 0.7 ms
  more than a raw `http.client` call (a quarter of it reading proxy settings from the environment,
  which operators behind a proxy rely on), and the sandbox's 40 ms sleep plus its own handling
  about 1.4 ms (0.3 ms without the sleep: event-loop timers are coarse); the lists are paged one
  page after another before the additions fan out; each push batch (250 changes, one batch at a
  time, as the DAG's `max_active_tis_per_dagrun=1` runs them) has a tail where fewer than
  `concurrency` changes are left; each result is recorded in SQLite as it arrives (about 2 ms, in
  the consumer thread while the workers keep their requests in flight). These come from one-off
  profiling on this machine, not from `make bench`. On a shared 2-core machine the ratio to the
  bound grows with the load average: compare the loads next to each run.
- **Huntress**: the window is per account, and the DAG's tasks are separate processes: the
  `wait_for_invoice` poke spends a request that the `extract_huntress` client's own limiter never
  saw. In account mode (one request per organization) that made request 60 of the first minute
  a 429 (retried, so the run succeeded, but a 429 all the same). Fixed: the Huntress client now
  reads `x-huntress-api-call-limit` / `x-huntress-api-call-remaining` on every answer and counts
  requests the server saw beyond its own as taken slots (`SlidingWindowLimiter.observe`). When
  the server's limit differs from the configured one, the headers are ignored (behaviour as before).
- **DAG parse**: `billing_day` was read with `Variable.get` at every parse, and its first call
  imports Airflow's task runtime (`airflow.sdk.execution_time.supervisor`, about 30 ms) only to ask
  the environment, where the runtime is not loaded already. The DAG file now reads
  `AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG` itself there, and calls `Variable.get` only where that
  runtime is loaded (the DAG processor, workers: one message to the supervisor) or a secrets
  backend is configured. Measured against a same-shape DAG that does no work.
"""
