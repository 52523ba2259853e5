"""Issue 19 §6: the heavy pages stay cheap, whatever a reader repeats.

- ``export.csv?status=all`` streams: it is sent in many pieces, its peak Python memory (tracemalloc)
  stays far below what loading every row takes, and its bytes are exactly the CSV the export wrote
  before it streamed (`reference_csv`: the old in-memory algorithm, kept here as the oracle).
- The quarantine list (both views) and the runs list are paged: no page renders more than the page
  size, the next links keep the filters and the tenant and walk every row exactly once, and the total
  is shown.
- The runs pages' charts are cached by what they show: two views of the same data call vl-convert
  once (the real renderer, wrapped to count), and a change in the data draws it again.

A real SQLite billing database filled through `store`, the app through FastAPI's TestClient (auth by
header, as tests/helpers/review_app.py), and for the export the app called straight as ASGI, so the test sees
each piece of the body as it is sent and no client buffers it.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billing_sync import csvfile, frames, store
from billing_sync.names import reason_rank
from billing_sync.review.app import create_app
from billing_sync.review.queries import quarantine, staging
from billing_sync.review.security import ReviewAuth
from tests.helpers.review_app import EVIL, editor, reader

TENANT = "north"  # not the default tenant: every link must carry it
USER = {"X-User": "rita"}
EXPORT_ROWS = 20_000
DAYS = ("2026-09-01", "2026-10-01", "2026-11-01")
REASONS = ("unmapped_organization", "change_exceeds_limit", "no_live_addition", "invalid_usage")
PROFILE = False
FORMULA = '=HYPERLINK("http://evil.example","x")'


def run_id(day: str) -> str:
    return f"scheduled__{day}T00:00:00+00:00"


def quarantine_inputs(count: int, day_index: int, spread: int) -> list[dict[str, Any]]:
    """`count` rows in three kinds of group (`spread` companies, `spread` organizations, bare keys),
    with text that needs the CSV's quoting and formula defusing, and an amount at stake on most."""
    rows = []
    for i in range(count):
        kind = i % 3
        row: dict[str, Any] = {
            "reason_code": REASONS[i % len(REASONS)],
            "product": f"p{i % 11:02d}",
            "detail": f'{FORMULA} line\n{i}, "quoted"' if i % 5 == 0 else f"detail {i}",
            "payload": {"i": i, "blob": "x" * 200},
            "amount_at_stake": None if i % 4 == 0 else f"{(i * 7) % 1000}.{i % 100:02d}",
        }
        if kind == 0:
            row.update(sync_key=f"company:{i % spread}:p{i}", cw_company_id=i % spread)
        elif kind == 1:
            row.update(
                sync_key=f"organization:{i % spread}:p{i}",
                huntress_organization_id=1000 + i % spread,
                huntress_organization_name=EVIL if i % spread == 0 else f"-Org {i % spread}",
            )
        else:
            row.update(sync_key=f"key:{day_index}:{i}")
        rows.append(row)
    return rows


def fill(engine: Any, rows_per_day: int, spread: int, runs: int = 0) -> None:
    """The tenant's quarantine over three billing dates (some rows decided), its companies, and
    `runs` extra runs for the runs list."""
    companies = [
        {"id": c, "identifier": f"co{c}", "name": FORMULA if c == 5 else f"Company {c}, Inc"}
        for c in range(97)
    ]
    for n, day in enumerate(DAYS):
        store.start_run(engine, run_id(day), day, 4000 + n, "push", {}, tenant=TENANT)
        store.write_frame(engine, run_id(day), "companies", frames.companies_frame(companies), tenant=TENANT)
        store.write_frame(engine, run_id(day), "organizations", frames.organizations_frame([]), tenant=TENANT)
        store.upsert_quarantine(
            engine, run_id(day), day, quarantine_inputs(rows_per_day, n, spread), tenant=TENANT
        )
        products = {"edr": {"huntress": 50 + n, "connectwise_before": 40, "connectwise_after": 50 + n}}
        store.finish_run(engine, run_id(day), "success", {"total": 1}, {"products": products}, tenant=TENANT)
    q = store.quarantine
    with engine.begin() as conn:  # some decided rows: status=all has more than the open ones
        conn.execute(
            q.update()
            .where(q.c.tenant == TENANT, q.c.id % 7 == 0)
            .values(status="dismissed", resolved_by="Rita", resolved_by_id="rita", note="@SUM(A1) not ours")
        )
    for n in range(runs):
        rid = f"manual__2027-01-01T00:00:{n:02d}+00:00"
        store.start_run(engine, rid, "2027-01-01", None, "push", {}, tenant=TENANT)
        store.finish_run(engine, rid, "success", {"total": n}, {}, tenant=TENANT)


class Site:
    def __init__(self, root: FastAPI, client: TestClient, engine: Any) -> None:
        self.root, self.client, self.engine = root, client, engine

    def get(self, path: str) -> Any:
        response = self.client.get(f"/billing-review{path}", headers=USER)
        assert response.status_code == 200, (path, response.text[:2000])
        return response


def make_site(
    tmp_path: Path, rows_per_day: int, spread: int, runs: int = 0, url: str | None = None
) -> Iterator[Site]:
    engine = store.make_engine(url or f"sqlite:///{tmp_path / 'billing.db'}")
    fill(engine, rows_per_day, spread, runs)
    auth = ReviewAuth(reader=reader, editor=editor)
    root = FastAPI()
    root.mount(
        "/billing-review",
        create_app(engine=engine, auth=auth, csrf_secret=b"k", reports_root=tmp_path / "reports"),
    )
    with TestClient(root) as client:
        yield Site(root, client, engine)
    engine.dispose()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from make_site(tmp_path_factory.mktemp("heavy"), EXPORT_ROWS // len(DAYS) + 1, 97)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, 40, 3, runs=7)


# --- the export streams ------------------------------------------------------------------------------


def reference_csv(engine: Any, filters: dict[str, Any]) -> str:
    """The export as it was written before it streamed: every row read, groups newest seen first
    (ties by group key), inside a group by reason, product, billing date, id; formulas defused."""
    rows = store.list_quarantine(engine, **filters, limit=None, tenant=TENANT)
    names = staging.company_names(engine, tenant=TENANT)
    newest: dict[str, Any] = {}
    for r in rows:
        newest.setdefault(quarantine.group_key(r), r["last_seen_at"])
    order = {k: i for i, k in enumerate(sorted(newest, key=lambda k: (-newest[k].timestamp(), k)))}
    rows.sort(
        key=lambda r: (
            order[quarantine.group_key(r)],
            reason_rank(r["reason_code"]),
            r.get("product") or "",
            r["billing_date"],
            r["id"],
        )
    )
    out = [
        {
            **r,
            "group": quarantine.group_key(r),
            "company_name": names.get(r["cw_company_id"], "") if r["cw_company_id"] is not None else "",
        }
        for r in rows
    ]
    return csvfile.rows_text(out, quarantine.EXPORT_COLUMNS)


def asgi_get(app: Any, path: str, query: str) -> dict[str, Any]:
    """GET `path` from the ASGI app: status, headers, the number of body pieces sent, the body's
    SHA-256 and length (the body itself is not kept, so it does not count in the memory measured)."""
    digest, sent = hashlib.sha256(), {"pieces": 0, "bytes": 0, "status": None, "headers": {}}

    async def call() -> None:
        hold = asyncio.Event()
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await hold.wait()  # the client never goes away
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                sent["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body" and message.get("body"):
                sent["pieces"] += 1
                sent["bytes"] += len(message["body"])
                digest.update(message["body"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [
                (b"host", b"testserver"),
                *((k.lower().encode(), v.encode()) for k, v in USER.items()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)

    asyncio.run(call())
    return {**sent, "sha256": digest.hexdigest()}


def peak_bytes(fn: Any) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_export_streams_every_row_in_pieces_in_little_memory(big: Site) -> None:
    path, query = "/billing-review/quarantine/export.csv", f"status=all&tenant={TENANT}"
    expected = reference_csv(big.engine, {}).encode()
    assert expected.count(b"\n") > EXPORT_ROWS, "the export holds every row (and the quoted line breaks)"
    asgi_get(big.root, path, f"status=all&billing_date=2026-09-01&reason_code=x&tenant={TENANT}")  # warm-up

    start = time.perf_counter()
    peak, sent = peak_bytes(lambda: asgi_get(big.root, path, query))
    took = time.perf_counter() - start
    loading_all, rows = peak_bytes(lambda: store.list_quarantine(big.engine, limit=None, tenant=TENANT))

    print(
        f"\nexport of {len(rows):,} rows ({sent['bytes']:,} B) in {sent['pieces']} pieces, {took:.2f}s "
        f"under tracemalloc: peak {peak / 2**20:.1f} MiB; loading every row: {loading_all / 2**20:.1f} MiB"
    )
    assert len(rows) >= EXPORT_ROWS
    assert sent["status"] == 200 and sent["headers"]["content-type"] == "text/csv; charset=utf-8"
    assert sent["headers"]["content-disposition"].startswith(
        'attachment; filename="billing-quarantine-north-all-'
    )
    assert sent["headers"]["cache-control"] == "no-store"
    assert sent["bytes"] == len(expected) and sent["sha256"] == hashlib.sha256(expected).hexdigest(), (
        "the streamed CSV is byte for byte the one the export wrote before"
    )
    assert sent["pieces"] >= 10, f"sent in {sent['pieces']} piece(s): not streamed"
    assert peak < loading_all / 4, f"export peak {peak:,} B vs {loading_all:,} B to load every row"


def test_export_keeps_the_filters_and_the_order(big: Site) -> None:
    """A filtered export is the same bytes as before too (rows of one billing date and reason)."""
    filters = {"status": "open", "billing_date": "2026-10-01", "reason_code": "change_exceeds_limit"}
    expected = reference_csv(big.engine, filters).encode()
    query = "&".join(f"{k}={v}" for k, v in filters.items()) + f"&tenant={TENANT}"
    sent = asgi_get(big.root, "/billing-review/quarantine/export.csv", query)
    assert sent["status"] == 200
    assert sent["sha256"] == hashlib.sha256(expected).hexdigest()
    assert expected.count(b"\n") > 1000


def test_export_and_grouped_pages_keep_their_order_on_both_databases(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL reads the export through a server-side cursor and sorts text by its collation
    unless told otherwise: the same bytes as before there too, and the grouped pages in that order."""
    from billing_sync.review import app as review_app

    monkeypatch.setattr(review_app, "PAGE_SIZE", 500)
    for site in make_site(tmp_path, 700, 7, url=db_url):
        expected = reference_csv(site.engine, {}).encode()
        sent = asgi_get(site.root, "/billing-review/quarantine/export.csv", f"status=all&tenant={TENANT}")
        assert sent["sha256"] == hashlib.sha256(expected).hexdigest() and sent["pieces"] >= 4
        pages = walk(site, f"/quarantine?status=all&tenant={TENANT}")
        shown = [int(i) for html in pages for i in re.findall(r'data-row-id="(\d+)"', html)]
        exported = [int(r["id"]) for r in csv.DictReader(io.StringIO(expected.decode(), newline=""))]
        in_order = [i for i in exported if i in set(shown)]
        assert shown == in_order and len(shown) == 3 * 700, "the grouped pages in the export's order"


# --- the lists are paged ----------------------------------------------------------------------------


def links(html: str, label: str) -> list[str]:
    return [unescape(h) for h in re.findall(rf'<a href="([^"]+)">{re.escape(label)}</a>', html)]


def walk(site: Site, first: str, label: str = "Older →") -> list[str]:
    """Every page from `first` on, following the `label` link (the same on top and bottom)."""
    pages, path, seen = [], first, set()
    while path:
        assert path not in seen, f"the links loop: {path}"
        seen.add(path)
        html = site.get(path).text
        pages.append(html)
        found = set(links(html, label))
        assert len(found) <= 1, found
        path = found.pop().removeprefix("/billing-review") if found else ""
        if path:
            query = parse_qs(urlsplit(path).query)
            assert query.get("tenant") == [TENANT], f"the link drops the tenant: {path}"
    return pages


@pytest.mark.parametrize("view", ["groups", "rows"])
def test_quarantine_list_pages_never_hold_more_than_the_page_size(
    small: Site, monkeypatch: pytest.MonkeyPatch, view: str
) -> None:
    from billing_sync.review import app as review_app

    size = 7
    monkeypatch.setattr(review_app, "PAGE_SIZE", size)
    wanted = {r["id"] for r in store.list_quarantine(small.engine, status=None, limit=None, tenant=TENANT)}
    assert (
        len(wanted) == 3 * 40
        and max(  # a company group larger than a page
            sum(1 for r in store.list_quarantine(small.engine, company_id=c, limit=None, tenant=TENANT))
            for c in range(3)
        )
        > size
    )
    pages = walk(small, f"/quarantine?status=all&view={view}&tenant={TENANT}")
    ids = [int(i) for html in pages for i in re.findall(r'data-row-id="(\d+)"', html)]
    per_page = [len(re.findall(r'data-row-id="', html)) for html in pages]
    assert max(per_page) <= size, per_page
    assert len(ids) == len(set(ids)) and set(ids) == wanted, "every row exactly once"
    assert len(pages) == -(-len(wanted) // size)
    for n, html in enumerate(pages, 1):
        total = re.search(r'data-testid="total">([^<]*)<', html)
        assert (
            total
            and f"{len(wanted)} rows" in total.group(1)
            and f"page {n} of {len(pages)}" in total.group(1)
        )
        assert 'name="status"' in html and re.search(r'<option value="all"\s+selected', html)
    # Walking back gives the same pages.
    back = walk(small, f"/quarantine?status=all&view={view}&tenant={TENANT}&page={len(pages)}", "← Newer")
    assert [re.findall(r'data-row-id="(\d+)"', h) for h in reversed(back)] == [
        re.findall(r'data-row-id="(\d+)"', h) for h in pages
    ]


def test_a_group_split_over_two_pages_says_so(small: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from billing_sync.review import app as review_app

    monkeypatch.setattr(review_app, "PAGE_SIZE", 7)
    pages = walk(small, f"/quarantine?status=all&tenant={TENANT}")
    heads = [re.findall(r'data-group="([^"]+)"', html) for html in pages]
    split = [(n, k) for n in range(len(pages) - 1) for k in heads[n][-1:] if heads[n + 1][:1] == [k]]
    assert split, "the fixture has a group larger than a page"
    n, key = split[0]
    assert f'data-continued="{key}"' in pages[n + 1]
    order = [k for h in heads for k in h]
    assert [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k] == list(dict.fromkeys(order)), (
        "a group's rows are together: each group starts once"
    )


def test_runs_list_is_paged_with_its_total(small: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from billing_sync.review import app as review_app

    monkeypatch.setattr(review_app, "RUNS_PAGE_SIZE", 3)
    wanted = [r["run_id"] for r in store.list_runs(small.engine, limit=None, tenant=TENANT)]
    assert len(wanted) == 10
    pages = walk(small, f"/runs?tenant={TENANT}")
    assert len(pages) == 4
    found = [unescape(r) for html in pages for r in re.findall(r'<td><a href="[^"]*">([^<]+)</a></td>', html)]
    assert found == wanted, "every run exactly once, newest first"
    for n, html in enumerate(pages, 1):
        total = re.search(r'data-testid="runs-total">([^<]*)<', html)
        assert total and total.group(1).strip() == f"10 runs, page {n} of 4", total


# --- the charts are cached by what they show -------------------------------------------------------


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each call of vl-convert's real SVG renderer, counted (the renderer still draws)."""
    import vl_convert

    calls: list[str] = []
    real = vl_convert.vegalite_to_svg

    def counted(*args: Any, **kwargs: Any) -> str:
        calls.append(datetime.now(UTC).isoformat())
        return real(*args, **kwargs)

    monkeypatch.setattr(vl_convert, "vegalite_to_svg", counted)
    return calls


def history_svg(site: Site) -> str:
    html = site.get(f"/runs?tenant={TENANT}").text
    found = re.search(r'<figure[^>]*data-testid="history-chart"[^>]*>(.*?)</figure>', html, re.S)
    assert found and "<svg" in found.group(1), "the chart is drawn"
    return found.group(1)


def test_runs_chart_is_drawn_once_per_data(small: Site, renders: list[str]) -> None:
    first = history_svg(small)
    again = history_svg(small)
    assert again == first and len(renders) == 1, f"two views of the same data: {len(renders)} renders"

    # New data: the newest run of a billing date changes what the chart shows.
    day = "2026-12-01"
    store.start_run(small.engine, run_id(day), day, 4999, "push", {}, tenant=TENANT)
    products = {"edr": {"huntress": 777, "connectwise_before": 40, "connectwise_after": 777}}
    store.finish_run(
        small.engine, run_id(day), "success", {"total": 1}, {"products": products}, tenant=TENANT
    )
    changed = history_svg(small)
    assert len(renders) == 2 and ">2026-12-01</text>" in changed and changed != first
    history_svg(small)
    assert len(renders) == 2

    # The amount held in the open rows is data of the chart too: a held edr row redraws it, and
    # resolving it brings back the data, and so the chart, drawn before.
    held = {"sync_key": "company:1:edr", "reason_code": "change_exceeds_limit", "cw_company_id": 1,
            "product": "edr", "payload": {}, "amount_at_stake": "123.45"}  # fmt: skip
    store.upsert_quarantine(small.engine, run_id(day), day, [held], tenant=TENANT)
    with_held = history_svg(small)
    assert len(renders) == 3 and "amount held" in with_held and with_held != changed
    q = store.quarantine
    with small.engine.begin() as conn:
        conn.execute(q.update().where(q.c.sync_key == "company:1:edr").values(status="resolved"))
    assert history_svg(small) == changed and len(renders) == 3


def test_run_chart_is_drawn_once_per_data(small: Site, renders: list[str]) -> None:
    path = f"/runs/{quote(run_id(DAYS[0]), safe='')}?tenant={TENANT}"
    first, again = small.get(path).text, small.get(path).text
    assert 'data-testid="run-chart"' in first and len(renders) == 1
    assert first.count("<svg") == again.count("<svg") == 1
    other = f"/runs/{quote(run_id(DAYS[1]), safe='')}?tenant={TENANT}"
    small.get(other)
    assert len(renders) == 2, "another run's data is another chart"


def test_runs_page_view_time(small: Site, renders: list[str]) -> None:
    """The figure for the README (printed with -s): a runs-page view once its chart is drawn."""
    small.get(f"/runs?tenant={TENANT}")
    start = time.perf_counter()
    views = 5
    for _ in range(views):
        small.get(f"/runs?tenant={TENANT}")
    if PROFILE:
        import cProfile

        cProfile.runctx("small.get(f'/runs?tenant={TENANT}')", globals(), locals(), sort="cumtime")
    per_view = (time.perf_counter() - start) / views
    print(f"\nruns page: {per_view * 1000:.0f} ms per view, {len(renders)} render(s) for {views + 1} views")
    assert len(renders) == 1
