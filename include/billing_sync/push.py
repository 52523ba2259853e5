"""Push planned quantity changes to ConnectWise: re-read, write, record. Idempotent.

For each change the addition is read again right before the write. Its quantity decides:
- still the quantity reconciliation saw → PATCH it to the new quantity;
- already the new quantity → a previous attempt wrote it (e.g. a killed task) → record, no write;
- anything else → someone changed it since the read → quarantine `changed_since_read`, no write.
Each result is written to the ledger as soon as it is known, so a task killed part-way leaves a
ledger that agrees with ConnectWise, and its retry finishes the rest.

An approved new addition (`create_one`) is created the same careful way: the agreement and its
additions of the product are read first, and the POST is sent only while none is live; an answer
that is lost is settled by reading again, never by a blind second POST, so an addition is created
at most once, however often the push is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from .api_records import Addition, Agreement
from .connectwise import CONNECTWISE_RETRYABLE
from .errors import ApiError
from .frames import additions_frame
from .reconcile.live import live_mask
from .rows import OutcomeRecord
from .scrub import cut
from .sources import ConnectWiseSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushResult:
    sync_key: str
    action: str  # updated | created | failed
    reason_code: str | None  # changed_since_read | push_rejected when failed
    detail: str
    quantity_now: object  # what ConnectWise holds after this step, as it answered; None when unknown
    addition_id: int | None = None  # created: the new addition's id


_Needed = Literal["agreement_id", "addition_id", "company_id", "previous_quantity", "new_quantity"]


def _needed(change: OutcomeRecord, field: _Needed) -> float:
    """A number every change to push carries (reconcile sets it); TypeError, as int(None) raises,
    when it does not."""
    value = change[field]
    if value is None:
        raise TypeError(f"{change['sync_key']}: a change to push without its {field}")
    return value


def push_one(client: ConnectWiseSource, change: OutcomeRecord) -> PushResult:
    key, old = change["sync_key"], float(_needed(change, "previous_quantity"))
    new = int(_needed(change, "new_quantity"))
    agreement_id, addition_id = int(_needed(change, "agreement_id")), int(_needed(change, "addition_id"))
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
            f"quantity is {cut(client.api.scrub(repr(current)), 100)} in ConnectWise, {old:g} when read; "
            "not overwritten",
            current,
        )
    try:
        written = client.set_quantity(agreement_id, addition_id, new).get("quantity")
    except ApiError as exc:
        if exc.status == 403:  # the role forbids it: nothing was written, and no retry changes that
            return PushResult(
                key, "failed", "push_rejected", refused_by_role("Edit", agreement_id, exc), current
            )
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


def refused_by_role(level: str, agreement_id: int, exc: ApiError) -> str:
    """A 403 to a write, in words: the permission the API member's role lacks, for which agreement
    (ConnectWise answers a write its security role forbids with 403 `Security`)."""
    return (
        f"ConnectWise refused the write on agreement {agreement_id} (HTTP 403, {exc}): the API member's "
        f"security role lacks Finance → Agreements: {level} for agreement {agreement_id}; set {level} to "
        f"All, or customize it to include agreement {agreement_id}, and re-run"
    )


def _settle_failed_write(client: ConnectWiseSource, change: OutcomeRecord, exc: ApiError) -> PushResult:
    """A write without a usable answer (a body that is not JSON, retries used up) may still have
    happened: a re-read settles it, so the ledger says what ConnectWise holds."""
    key, new = change["sync_key"], int(_needed(change, "new_quantity"))
    try:
        now = client.addition(int(_needed(change, "agreement_id")), int(_needed(change, "addition_id"))).get(
            "quantity"
        )
    except ApiError:
        return PushResult(key, "failed", "push_rejected", str(exc), None)
    if _same(now, new):
        log.warning("%s: the write got no usable answer (%s), but the re-read shows %s", key, exc, new)
        return PushResult(
            key,
            "updated",
            None,
            f"{_needed(change, 'previous_quantity'):g} → {new} (applied; its answer was lost)",
            new,
        )
    return PushResult(key, "failed", "push_rejected", str(exc), now)


CREATE_ATTEMPTS = 3  # POSTs of one new addition at most, each after a read that found none


def create_one(client: ConnectWiseSource, change: OutcomeRecord) -> PushResult:
    """Create an approved new addition (`new_quantity` of `catalog_identifier` on `agreement_id`,
    effective `effective_date`), at most once.

    Read first: the agreement must still be Active, not cancelled, the company's, started by the
    effective date and not ended before it; a live addition of the product on it that carries the approved
    quantity and effective date is the one an earlier attempt made (its answer lost, or its task
    killed before recording): created, nothing sent. Any other live addition of the product means
    ConnectWise changed since the approval (`changed_since_read`): nothing is created. A POST that
    fails without a refusal (dropped connection, 5xx, 429, an answer that is no JSON) is settled by
    reading again before anything is sent again.
    """
    key, new = change["sync_key"], int(_needed(change, "new_quantity"))
    agreement_id, identifier = int(_needed(change, "agreement_id")), str(change["catalog_identifier"])
    day = date.fromisoformat(str(change["effective_date"]))
    try:
        agreement = client.agreement(agreement_id)
    except ApiError as exc:
        return PushResult(
            key, "failed", "push_rejected", f"re-read of agreement {agreement_id} failed: {exc}", None
        )
    unfit = _unfit_agreement(agreement, int(_needed(change, "company_id")), day)
    if unfit:
        return PushResult(
            key, "failed", "changed_since_read", f"agreement {agreement_id} {unfit}; nothing created", None
        )
    lost: ApiError | None = None
    for attempt in range(CREATE_ATTEMPTS + 1):
        if lost is not None:  # give a write that did happen the time to show
            time.sleep(client.api.retry.delay(attempt, None))
        try:
            live = _in_the_way(agreement, client.agreement_additions(agreement_id, identifier), day)
        except ApiError as exc:
            why = f"the create's answer was lost ({lost}) and " if lost else ""
            return PushResult(
                key, "failed", "push_rejected", f"{why}re-read of the additions failed: {exc}", None
            )
        ours = [a for a in live if _same(a.get("quantity"), new) and _day(a.get("effectiveDate")) == day]
        if ours:
            made = ours[0].get("id")
            how = "its answer was lost" if lost else "made by an earlier attempt"
            detail = f"addition {made} of {new} found on agreement {agreement_id} ({how})"
            return PushResult(key, "created", None, detail, new, _id(made))
        if live:
            found = ", ".join(f"{a.get('id')} (quantity {a.get('quantity')!r})" for a in live)
            return PushResult(
                key,
                "failed",
                "changed_since_read",
                f"agreement {agreement_id} now has a live {identifier} addition: {found}; nothing created",
                None,
            )
        if attempt == CREATE_ATTEMPTS:
            break
        try:
            record = client.create_addition(agreement_id, identifier, new, day)
        except ApiError as exc:
            if exc.status == 403:
                return PushResult(
                    key, "failed", "push_rejected", refused_by_role("Add", agreement_id, exc), None
                )
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in CONNECTWISE_RETRYABLE:
                return PushResult(key, "failed", "push_rejected", str(exc), None)  # refused: nothing made
            lost = exc
            log.warning(
                "%s: the create got no usable answer (%s); reading before anything is sent again", key, exc
            )
            continue
        made = record.get("id")
        detail = f"addition {made} of {new} created on agreement {agreement_id}"
        return PushResult(key, "created", None, detail, new, _id(made))
    return PushResult(
        key, "failed", "push_rejected", f"no addition created after {CREATE_ATTEMPTS} attempts: {lost}", None
    )


def _unfit_agreement(agreement: Agreement, company_id: int, day: date) -> str | None:
    """Why a new addition may not go on this agreement any more (None: it may)."""
    company = agreement.get("company")
    owner = company.get("id") if isinstance(company, Mapping) else None
    if owner != company_id:
        return f"belongs to company {owner!r}, not {company_id}"
    if agreement.get("agreementStatus") != "Active" or agreement.get("cancelledFlag") is not False:
        return f"is {agreement.get('agreementStatus')!r} (cancelled {agreement.get('cancelledFlag')!r})"
    ends = _day(agreement.get("endDate"), unreadable=date.min)
    if ends is not None and ends < day:
        return f"ended {agreement.get('endDate')}"
    starts = _day(agreement.get("startDate"), unreadable=date.max)
    if starts is not None and starts > day:  # as reconcile.live reads an addition without its own date
        return f"starts only {agreement.get('startDate')}"
    return None


def _in_the_way(agreement: Agreement, additions: Iterable[Addition], day: date) -> list[Addition]:
    """The re-read additions (of the agreement just read) a new one may not be created beside: those
    live on `day` or in doubt, as reconcile.live.live_mask reads them (`doubt_is_live`: when in
    doubt, nothing is created)."""
    agreement_id = _id(agreement.get("id"))
    mine: list[Addition] = [{**a, "agreementId": agreement_id} for a in additions]
    if not mine or agreement_id is None:
        return mine  # nothing to judge them by: each stands in the way
    frame = additions_frame({agreement_id: agreement}, mine)
    live = live_mask(frame, day, (), doubt_is_live=True)
    return [a for a, is_live in zip(mine, live, strict=True) if is_live]


def _day(value: Any, unreadable: date | None = None) -> date | None:
    """The UTC date of a ConnectWise date-time; None when absent, `unreadable` when unreadable."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return unreadable
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def _id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def push_changes(
    client: ConnectWiseSource,
    changes: Iterable[OutcomeRecord],
    on_result: Callable[[OutcomeRecord, PushResult], None],
) -> list[PushResult]:
    """Push with `client.concurrency` changes in flight; `on_result` runs in this thread, in
    completion order, so recording needs no locks.

    When `on_result` raises (the billing database went away), no further write starts: only those
    already in flight land unrecorded, for the retried task to settle by re-reading. Left to the
    pool, every queued change of the batch would still be written, with no ledger row for any.
    """
    changes = list(changes)
    results = []
    with ThreadPoolExecutor(max_workers=client.concurrency) as pool:
        futures = {
            pool.submit(create_one if c.get("outcome") == "create" else push_one, client, c): c
            for c in changes
        }
        try:
            for fut in as_completed(futures):
                result = fut.result()
                on_result(futures[fut], result)
                results.append(result)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
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
