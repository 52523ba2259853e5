"""The shared rate-limit window (`billing_api_calls`) of an API account.

The request starts of an API account within its window, shared by every task of the account whatever
its tenant (docs/contract.md §1 Tenants, §4).

A task reads them before its first request (`recent_api_calls`) and merges its own in when it is
done (`record_api_calls`). The merge is a union, not a sum: a start the record holds already (a task
seeded with it hands it back unchanged) is not counted twice, and two writers never lose each
other's starts. Starts older than the window are pruned on every write, so an account has at most a
window's worth of rows; so are starts more than a window ahead (a clock that far off is no guide,
and such a start would never leave the window). Only the account's name (a connection id) and times
are stored.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from .database import _reading, _writing
from .schema import api_calls
from .values import _text


def recent_api_calls(
    engine: Engine, api: str, account: str, *, within_s: float, now: float | None = None
) -> list[float]:
    """The account's recorded request starts of the last `within_s` seconds (Unix time), oldest
    first; a stamp several requests share is listed as often."""
    api, account = _text(api, "api"), _text(account, "account")
    with _reading(engine) as conn:
        return _recent(conn, api, account, _bounds(now, within_s))


def record_api_calls(
    engine: Engine,
    api: str,
    account: str,
    starts: Iterable[float],
    *,
    within_s: float,
    now: float | None = None,
) -> list[float]:
    """Merge `starts` (Unix time) into the account's record, in one transaction: each stamp counts as
    often as the record or `starts` has it, whichever is more, and starts older than `within_s`
    seconds are dropped. Returns the account's record as it now stands (`recent_api_calls`)."""
    api, account = _text(api, "api"), _text(account, "account")
    low, high = bounds = _bounds(now, within_s)
    counted = Counter(_stamp(s) for s in starts)
    rows = [
        {"api": api, "account": account, "started_epoch": s, "calls": n}
        for s, n in sorted(counted.items())
        if low <= s <= high
    ]
    t = api_calls
    mine = sa.and_(t.c.api == api, t.c.account == account)
    with _writing(engine) as conn:
        conn.execute(t.delete().where(mine, sa.not_(t.c.started_epoch.between(low, high))))
        if rows:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            stmt = insert(t)
            more = sa.case((stmt.excluded.calls > t.c.calls, stmt.excluded.calls), else_=t.c.calls)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["api", "account", "started_epoch"], set_={"calls": more}
                ),
                rows,
            )
        return _recent(conn, api, account, bounds)


def _recent(conn: Connection, api: str, account: str, bounds: tuple[float, float]) -> list[float]:
    t = api_calls
    stmt = (
        sa.select(t.c.started_epoch, t.c.calls)
        .where(t.c.api == api, t.c.account == account, t.c.started_epoch.between(*bounds))
        .order_by(t.c.started_epoch)
    )
    return [float(s) for s, n in conn.execute(stmt) for _ in range(int(n))]


def _bounds(now: float | None, within_s: float) -> tuple[float, float]:
    """The stamps that count at `now` (default: the time now): at most `within_s` old, or ahead."""
    if not _finite(within_s) or within_s <= 0:
        raise ValueError(f"within_s must be a positive number of seconds, not {within_s!r}")
    at = time.time() if now is None else _stamp(now)
    return at - within_s, at + within_s


def _stamp(value: float) -> float:
    if not _finite(value):
        raise ValueError(f"a request start must be a finite Unix time, not {value!r}")
    return float(value)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
