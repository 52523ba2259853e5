"""Push planned quantity changes to ConnectWise: re-read, write, record. Idempotent.

For each change the addition is read again right before the write. Its quantity decides:
- still the quantity reconciliation saw → PATCH it to the new quantity;
- already the new quantity → a previous attempt wrote it (e.g. a killed task) → record, no write;
- anything else → someone changed it since the read → quarantine `changed_since_read`, no write.
Each result is written to the ledger as soon as it is known, so a task killed part-way leaves a
ledger that agrees with ConnectWise, and its retry finishes the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from .connectwise import ConnectWiseClient
from .errors import ApiError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    sync_key: str
    action: str  # updated | failed
    reason_code: str | None  # changed_since_read | push_rejected when failed
    detail: str
    quantity_now: float | None  # what ConnectWise holds after this step, when known


def push_one(client: ConnectWiseClient, change: Mapping[str, Any]) -> PushResult:
    key, old, new = change["sync_key"], float(change["previous_quantity"]), int(change["new_quantity"])
    agreement_id, addition_id = int(change["agreement_id"]), int(change["addition_id"])
    try:
        current = client.addition(agreement_id, addition_id).get("quantity")
    except ApiError as exc:
        return PushResult(key, "failed", "push_rejected", f"re-read before write failed: {exc}", None)
    if _same(current, new):
        return PushResult(
            key, "updated", None, "already at the new quantity (written by an earlier attempt)", new
        )
    if not _same(current, old):
        return PushResult(
            key,
            "failed",
            "changed_since_read",
            f"quantity is {current!r} in ConnectWise, {old:g} when read; not overwritten",
            current,
        )
    try:
        written = client.set_quantity(agreement_id, addition_id, new).get("quantity")
    except ApiError as exc:
        return _settle_failed_write(client, change, exc)
    if written is not None and not _same(written, new):
        return PushResult(
            key,
            "failed",
            "push_rejected",
            f"ConnectWise answered the write with quantity {written!r}, not {new}",
            written,
        )
    return PushResult(key, "updated", None, f"{old:g} → {new}", new)


def _settle_failed_write(client: ConnectWiseClient, change: Mapping[str, Any], exc: ApiError) -> PushResult:
    """A write without a usable answer (a body that is not JSON, retries used up) may still have
    happened: a re-read settles it, so the ledger says what ConnectWise holds."""
    key, new = change["sync_key"], int(change["new_quantity"])
    try:
        now = client.addition(int(change["agreement_id"]), int(change["addition_id"])).get("quantity")
    except ApiError:
        return PushResult(key, "failed", "push_rejected", str(exc), None)
    if _same(now, new):
        log.warning("%s: the write got no usable answer (%s), but the re-read shows %s", key, exc, new)
        return PushResult(
            key,
            "updated",
            None,
            f"{float(change['previous_quantity']):g} → {new} (applied; its answer was lost)",
            new,
        )
    return PushResult(key, "failed", "push_rejected", str(exc), now)


def push_changes(
    client: ConnectWiseClient,
    changes: Iterable[Mapping[str, Any]],
    on_result: Callable[[Mapping[str, Any], PushResult], None],
) -> list[PushResult]:
    """Push with `client.concurrency` changes in flight; `on_result` runs in this thread, in
    completion order, so recording needs no locks."""
    changes = list(changes)
    results = []
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        futures = {pool.submit(push_one, client, c): c for c in changes}
        for fut in as_completed(futures):
            result = fut.result()
            on_result(futures[fut], result)
            results.append(result)
    return results


def _same(value: Any, target: float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, int | float) and float(value) == float(target)
