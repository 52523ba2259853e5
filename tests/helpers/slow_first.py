"""The order `make test` hands tests to pytest-xdist: each worker starts with its share of the slow ones.

`--dist worksteal` cuts the collection into one block of consecutive tests per worker (equal counts)
and, once a worker runs dry, moves the tail half of the longest queue to it. A 2-minute test at the
end of a block therefore ran alone while the other workers had finished: the suite's last minutes
were one test. Here the slow tests (SLOW, seconds on the 2-core machine) are dealt to the blocks
longest first, each to the block with the least slow time so far, and put at the head of its block;
the other tests keep their order and fill the blocks up. Stealing takes tails, so the slow heads stay
where they were dealt and only the quick tests move.

A file named in SLOW moves whole (its module-scoped fixtures, an API server and a DAG run, are set up
once); a test named in SLOW moves alone. Unnamed tests count as quick. Outside xdist, or with one
worker, nothing moves.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

# Seconds (setup + call + teardown) of the slowest tests, from `pytest --durations` of `make test`
# on the 2-core machine. Rough is enough: they only decide which block each goes to. Not here:
# ui/test_apply_local.py (67 s), which asserts an apply within 30 s and so is not started beside
# the heaviest tests.
SLOW: dict[str, float] = {
    "e2e/test_celery.py::test_celery_two_workers_three_tenants_redis_restarted_one_worker_killed": 118,
    "ui/test_month_close_apply_now.py": 147,
    "ui/test_make_airflow_port.py": 120,
    "e2e/test_backfill.py::test_backfill_three_billing_dates[today]": 62,
    "e2e/test_backfill.py::test_backfill_three_billing_dates[billing-day-after-tick]": 69,
    "e2e/test_backfill.py::test_backfill_three_billing_dates[mid-month]": 62,
    "ui/test_fuzz_routes.py": 78,
    "ui/test_month_close.py": 60,
    "ui/test_browser.py": 60,
    "proof/test_executors.py": 50,
    "e2e/test_real_world.py::test_reseller_month_as_the_real_services_send_it": 39,
    "proof/test_faults.py": 40,
    "ui/test_heavy_pages.py": 50,  # the export under tracemalloc alone is 30-50 s
    "sync/reconcile/test_property.py": 30,
    "proof/test_postgres_restart.py": 20,
    "test_packaging.py": 19,
    "ui/test_settings_browser.py": 20,
    "ui/test_company_cards.py": 20,
    "ui/test_powers_browser.py": 20,
    "ui/test_override_picker_browser.py": 18,
    "ui/test_connection_form_browser.py": 16,
}


class Item(Protocol):
    nodeid: str
    path: Path


T = TypeVar("T", bound=Item)


def worker_count() -> int:
    """The number of xdist workers, as each worker is told (0 outside xdist)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)


def block_sizes(n: int, workers: int) -> list[int]:
    """How worksteal's first deal cuts `n` tests: each idle worker in turn gets pending // workers left."""
    sizes = []
    for left in range(workers, 0, -1):
        sizes.append(n // left)
        n -= sizes[-1]
    return sizes


def _key(item: Item, tests: Path) -> tuple[str, str]:
    """(the file relative to tests/, the test id within it)."""
    try:
        rel = item.path.resolve().relative_to(tests).as_posix()
    except ValueError:
        rel = item.nodeid.split("::", 1)[0]
    return rel, item.nodeid.split("::", 1)[1] if "::" in item.nodeid else ""


def order(items: Sequence[T], tests: Path, workers: int) -> list[T]:
    """`items` in the order described above, for `workers` worksteal workers."""
    if workers < 2 or len(items) < 2 * workers:
        return list(items)
    units: dict[str, list[T]] = {}
    quick: list[T] = []
    for item in items:
        rel, name = _key(item, tests)
        unit = f"{rel}::{name}" if f"{rel}::{name}" in SLOW else rel if rel in SLOW else None
        if unit is None:
            quick.append(item)
        else:
            units.setdefault(unit, []).append(item)
    blocks: list[list[T]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for unit in sorted(units, key=lambda u: -SLOW[u]):
        k = min(range(workers), key=lambda i: (load[i], i))
        blocks[k].extend(units[unit])
        load[k] += SLOW[unit]
    out: list[T] = []
    rest = iter(quick)
    for block, size in zip(blocks, block_sizes(len(items), workers), strict=True):
        out.extend(block)
        out.extend(itertools.islice(rest, max(0, size - len(block))))
    out.extend(rest)
    return out


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` have deselected: the blocks are of what runs
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items[:] = order(items, Path(__file__).resolve().parents[1], worker_count())
