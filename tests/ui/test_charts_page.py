"""The charts on the runs pages (routes/runs.py): inline SVG under the pages' unchanged, strict CSP.

Same set-up as tests/helpers/review_app.py (TestClient, auth by header, a billing DB filled through store),
plus product totals on two billing dates. The last test loads the page Chromium-side with its real
headers and checks that the CSP blocks nothing and the chart is drawn."""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from billing_sync import charts, report, store
from billing_sync.review.routes import runs as runs_route
from billing_sync.review.security import ReviewAuth
from tests.helpers.review_app import EVIL, RUN, App, editor, fill, mounted, reader
from tests.ui.conftest import ARTIFACTS

OLDER = "scheduled__2026-10-01T00:00:00+00:00"
ESCAPED = html.escape(EVIL, quote=False)  # as a text node: &lt;script&gt;alert("x")&lt;/script&gt;
BARE = "manual__2026-12-01T00:00:00+00:00"  # a run without product totals (failed early)
CHECKS = {
    "products": {
        "edr": {"huntress": 52, "connectwise_before": 45.0, "connectwise_after": 47.0, "difference": -5.0},
        EVIL: {"huntress": 8, "connectwise_before": 8.0, "connectwise_after": 8.0, "difference": 0.0},
    },
    "mismatches": ["edr: Huntress bills 52, ConnectWise bills 47 after the push"],
}
STRICT_CSP = re.compile(
    r"default-src 'none'; script-src 'nonce-([\w-]+)'; style-src 'nonce-\1'; img-src 'self' data:; "
    r"form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    directory = fill(engine, tmp_path / "reports")
    store.finish_run(
        engine,
        RUN,
        "success",
        {"updated": 3, "quarantined": 2, "total": 5},
        CHECKS,
        str(directory),
        tenant="default",
    )
    store.start_run(engine, OLDER, "2026-10-01", 4001, "push", {}, tenant="default")
    older = {"products": {"edr": {"huntress": 40, "connectwise_before": 40.0, "connectwise_after": 40.0}}}
    store.finish_run(engine, OLDER, "success", {"unchanged": 1, "total": 1}, older, tenant="default")
    store.start_run(engine, BARE, "2026-12-01", None, "push", {}, tenant="default")
    store.finish_run(engine, BARE, "failed", {}, {"failed_task": "extract_huntress"}, tenant="default")
    with mounted(engine, tmp_path / "reports", directory, ReviewAuth(reader=reader, editor=editor)) as app:
        yield app


def figure(page: str, testid: str) -> str:
    found = re.search(rf'<figure[^>]*data-testid="{testid}"[^>]*>(.*?)</figure>', page, re.S)
    assert found, f"no {testid} figure"
    return found.group(1)


def assert_strict(response: Any) -> None:
    """The pages' CSP as it was: nonce'd script and style only, no 'unsafe-inline'; and nothing in
    the page that such a CSP would block (no style attribute, no script without the nonce)."""
    csp = response.headers["content-security-policy"]
    nonce = STRICT_CSP.fullmatch(csp)
    assert nonce, csp
    assert "unsafe" not in csp
    page = response.text
    assert not re.search(r"\sstyle=", page), "a style attribute the CSP would block"
    scripts = re.findall(r"<script\b[^>]*>", page, re.I)
    assert scripts == [f'<script nonce="{nonce.group(1)}">'], scripts
    assert "<script>alert" not in page


def test_runs_page_shows_the_chart_over_billing_dates_inline(app: App) -> None:
    page = app.get("/runs")
    assert page.status_code == 200
    assert_strict(page)
    svg = figure(page.text, "history-chart")
    assert svg.lstrip().startswith('<svg xmlns="http://www.w3.org/2000/svg" class="billing-chart"')
    for text in ("edr", "2026-10-01", "2026-11-01", ESCAPED):
        assert f">{text}</text>" in svg, text
    assert "billing date: 2026-11-01; units: 52; series: Huntress" in svg
    assert "2026-12-01" not in svg, "a run without product totals is not a billing date of the chart"
    assert 'id="charts"' in page.text, "the anchor the summary alert links"
    assert "Amount held: not shown" in page.text


def test_other_pages_of_the_list_link_the_chart(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from billing_sync.review import app as review_app

    monkeypatch.setattr(review_app, "RUNS_PAGE_SIZE", 1)
    page = app.get("/runs?page=2")
    assert page.status_code == 200
    assert 'data-testid="history-chart"' not in page.text and "<svg" not in page.text
    assert re.search(r'href="/billing-review/runs#charts"', page.text)


def test_run_page_shows_the_runs_chart_with_its_numbers(app: App) -> None:
    page = app.get(f"/runs/{quote(RUN, safe='')}")
    assert page.status_code == 200
    assert_strict(page)
    svg = figure(page.text, "run-chart")
    for text in ("edr", "52", "45", "47", "8", ESCAPED):
        assert f">{text}</text>" in svg, text
    assert 'id="chart"' in page.text


def test_run_without_totals_has_no_chart(app: App) -> None:
    page = app.get(f"/runs/{quote(BARE, safe='')}")
    assert page.status_code == 200 and "run-chart" not in page.text and "<svg" not in page.text


def test_a_chart_that_cannot_be_drawn_leaves_the_page_standing(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(spec: Any, id_prefix: str = "chart") -> str:
        raise charts.UnsafeChart("<script> found")

    monkeypatch.setattr(charts, "render_svg", broken)
    for path in ("/runs", f"/runs/{quote(RUN, safe='')}"):
        page = app.get(path)
        assert page.status_code == 200, path
        assert runs_route.CHART_FAILED in page.text and "<svg" not in page.text
        assert "<script> found" not in page.text


def test_amount_held_is_read_only_once_quarantine_rows_can_carry_it(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the column: no query. With rows that carry it, the chart shows it (summed by the
    database: `queries.runs.held_amounts`, never every quarantine row read)."""
    asked: list[dict] = []
    real = runs_route.queries.held_amounts

    def spy(*args: Any, **kw: Any) -> dict:
        asked.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(runs_route.queries, "held_amounts", spy)
    monkeypatch.setattr(runs_route, "_held_recorded", lambda: False)
    app.get("/runs")
    assert asked == []
    held = {("2026-11-01", "edr"): 321.0, ("edr",): 321.0}
    monkeypatch.setattr(runs_route, "_held_recorded", lambda: True)
    monkeypatch.setattr(
        runs_route.queries,
        "held_amounts",
        lambda eng, by, **kw: {k: v for k, v in held.items() if len(k) == len(by)},
    )
    page = app.get("/runs").text
    assert ">amount held</text>" in figure(page, "history-chart")
    assert "Amount held: the amount at stake of each billing date" in page
    run_page = app.get(f"/runs/{quote(RUN, safe='')}").text
    assert ">321.00</text>" in figure(run_page, "run-chart")


def test_amount_held_from_the_quarantine_rows_in_the_database(app: App) -> None:
    """Through the real column once the schema has it (a money column: Decimal); until then the
    caption says the amount is not shown."""
    if charts.QUARANTINE_AMOUNT not in store.quarantine.c:
        assert "Amount held: not shown" in app.get("/runs").text
        return
    q = store.quarantine
    with app.engine.begin() as conn:
        conn.execute(
            q.update().where(q.c.product == "edr").values({charts.QUARANTINE_AMOUNT: Decimal("321.50")})
        )
    page = app.get("/runs")
    assert_strict(page)
    assert ">amount held</text>" in figure(page.text, "history-chart")
    assert "Amount held: the amount at stake of each billing date" in page.text
    run_page = app.get(f"/runs/{quote(RUN, safe='')}")
    assert_strict(run_page)
    assert ">321.50</text>" in figure(run_page.text, "run-chart")


def test_report_of_the_run_carries_its_chart(app: App, tmp_path: Path) -> None:
    ref = {
        "tenant": "default",
        "run_id": RUN,
        "billing_date": "2026-11-01",
        "mode": "push",
        "invoice_id": 5001,
    }
    out = tmp_path / "report-out"
    out.mkdir()
    page = report.write_report(app.engine, ref, {"checks": CHECKS}, out).read_text(encoding="utf-8")
    svg = re.search(r'<figure id="chart">(.*?)</figure>', page, re.S)
    assert svg and "<svg" in svg.group(1)
    assert ">52</text>" in svg.group(1) and ">edr</text>" in svg.group(1)
    assert ESCAPED in svg.group(1)
    assert "<script" not in page and " src=" not in page and "<img" not in page
    assert "Amount held: not shown" in page


def serve(route: Any, request: Any = None, *, body: str, headers: dict[str, str]) -> None:
    route.fulfill(status=200, headers=headers, body=body)


@pytest.mark.browser
def test_chart_draws_in_chromium_under_the_pages_csp(app: App, browser: Any) -> None:
    """The page as served (body and headers) in Chromium: the CSP reports no violation and the
    chart has a size and its texts."""
    served = {path: app.get(path) for path in ("/runs", f"/runs/{quote(RUN, safe='')}")}
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    try:
        for path, response in served.items():
            tab = context.new_page()
            console: list[str] = []
            tab.on("console", lambda m, sink=console: sink.append(m.text))
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            tab.route("http://billing.test/**", functools.partial(serve, body=response.text, headers=headers))
            tab.goto(f"http://billing.test/billing-review{path}")
            chart = tab.locator("figure svg.billing-chart").first
            box = chart.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 150, box
            assert "edr" in chart.text_content()
            assert not [m for m in console if "Content Security Policy" in m], console
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = "charts-runs" if path == "/runs" else "charts-run"
            tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            tab.close()
    finally:
        context.close()
