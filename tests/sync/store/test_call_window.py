"""billing_api_calls: an API account's recent request starts, read before a task's first request and
merged in after its last (docs/contract.md §1 Tenants, §4). SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from billing_sync import store

NOW = 1_780_000_000.25  # Unix time
WINDOW = 60.0


def record(
    engine: sa.Engine, starts: list[float], account: str = "huntress_north", **kw: float
) -> list[float]:
    return store.record_api_calls(
        engine, "huntress", account, starts, within_s=kw.get("within_s", WINDOW), now=kw.get("now", NOW)
    )


def recent(engine: sa.Engine, account: str = "huntress_north", now: float = NOW) -> list[float]:
    return store.recent_api_calls(engine, "huntress", account, within_s=WINDOW, now=now)


def rows(engine: sa.Engine) -> list[tuple]:
    t = store.api_calls
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t).order_by(t.c.account, t.c.started_epoch))]


def test_starts_read_back_exactly_per_api_and_account(engine: sa.Engine) -> None:
    starts = [NOW - 5.123456789, NOW - 3.000001, NOW - 3.000001]  # two requests share a stamp
    assert record(engine, starts) == starts
    assert recent(engine) == starts
    assert recent(engine, "huntress_south") == []
    assert store.recent_api_calls(engine, "connectwise", "huntress_north", within_s=WINDOW, now=NOW) == []
    assert rows(engine) == [
        ("huntress", "huntress_north", NOW - 5.123456789, 1),
        ("huntress", "huntress_north", NOW - 3.000001, 2),
    ]


def test_writers_merge_as_a_union_and_lose_nothing(engine: sa.Engine) -> None:
    a, b, c, d = NOW - 4, NOW - 3, NOW - 2, NOW - 1
    record(engine, [a, b])
    # The next task was seeded with a and b, and hands them back with its own start c.
    assert record(engine, [a, b, c]) == [a, b, c]
    # A task that ran beside it, from the same record, knew nothing of c.
    assert record(engine, [a, b, d]) == [a, b, c, d]
    # A 429 left three phantoms at one stamp where the record had one start: three, not four.
    assert record(engine, [a, a, a]) == [a, a, a, b, c, d]
    assert record(engine, [a]) == [a, a, a, b, c, d]


def test_starts_outside_the_window_are_pruned_on_write(engine: sa.Engine) -> None:
    record(engine, [NOW - 90, NOW - 30, NOW - 10, NOW + 200])  # too old, two in the window, far ahead
    assert rows(engine) == [
        ("huntress", "huntress_north", NOW - 30, 1),
        ("huntress", "huntress_north", NOW - 10, 1),
    ]
    record(engine, [NOW - 30], account="huntress_south")
    later = NOW + 40  # NOW - 30 is 70 s old now
    assert recent(engine, now=later) == [NOW - 10]
    assert record(engine, [later], now=later) == [NOW - 10, later]
    assert [r[1:3] for r in rows(engine)] == [
        ("huntress_north", NOW - 10),
        ("huntress_north", later),
        ("huntress_south", NOW - 30),  # another account's record is its own writers' to prune
    ]


def test_concurrent_writers_keep_every_start(engine: sa.Engine) -> None:
    """Tasks of one account on different workers write at once: each start of each is kept once."""
    shared = [NOW - 20, NOW - 19]
    record(engine, shared)
    writers = 4
    barrier, errors = threading.Barrier(writers), []

    def write(n: int) -> None:
        barrier.wait()
        try:
            record(engine, [*shared, *(NOW - 10 + n + i / 10 for i in range(5))])
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert recent(engine) == sorted(
        [*shared, *(NOW - 10 + n + i / 10 for n in range(writers) for i in range(5))]
    )


def test_bad_values_are_refused(engine: sa.Engine) -> None:
    for starts in ([float("nan")], [True], ["1780000000"]):
        with pytest.raises(ValueError, match="finite Unix time"):
            record(engine, starts)  # type: ignore[arg-type]
    for within in (0, -1, float("inf")):
        with pytest.raises(ValueError, match="within_s"):
            record(engine, [NOW], within_s=within)
    with pytest.raises(ValueError, match="account"):
        store.record_api_calls(engine, "huntress", "", [NOW], within_s=WINDOW)
    assert recent(engine) == []
