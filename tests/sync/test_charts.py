"""The charts (billing_sync.charts): SVG with the products and numbers, hostile labels as text, no
script or outside reference in what a page embeds, the amount held only when the data carries it,
and the renderer imported only when a chart is drawn."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from billing_sync import charts
from billing_sync.notify import build

EVIL = '<script>alert("x")</script>'
SVG = "{http://www.w3.org/2000/svg}"


def checks(edr: int = 52, before: float = 45.0, after: float = 52.0) -> dict:
    return {
        "products": {
            "edr": {
                "huntress": edr,
                "connectwise_before": before,
                "connectwise_after": after,
                "difference": 0,
            },
            "itdr": {"huntress": 12, "connectwise_before": 12.0, "connectwise_after": 12.0, "difference": 0},
            EVIL: {"huntress": 7, "connectwise_before": 3.0, "connectwise_after": 7.0, "difference": 0},
        },
        "mismatches": [],
    }


RUNS = [  # newest first, as store.list_runs returns them
    {"run_id": "r4", "billing_date": "2026-11-01", "checks": checks(52, 45.0, 52.0)},
    {"run_id": "r3", "billing_date": "2026-11-01", "checks": checks(999, 1.0, 1.0)},  # older run, same date
    {"run_id": "r2", "billing_date": "2026-10-01", "checks": checks(48, 40.0, 48.0)},
    {"run_id": "failed", "billing_date": "2026-09-01", "checks": {"failed_task": "push"}},
    {"run_id": "r1", "billing_date": EVIL, "checks": checks(40, 40.0, 40.0)},
]


class _Svg(HTMLParser):
    """Parses the SVG the way a browser parses it inline in an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.texts.append(data)


def parsed(svg: str) -> _Svg:
    p = _Svg()
    p.feed(svg)
    return p


def assert_safe(svg: str) -> None:
    p = parsed(svg)
    tags = {t for t, _ in p.tags}
    assert tags <= {"svg", "g", "path", "rect", "line", "text", "tspan", "title", "defs", "clippath"}, tags
    assert "<script" not in svg.lower() and "<style" not in svg.lower()
    for _, attrs in p.tags:
        assert not [a for a in attrs if a.startswith("on") or a in ("style", "href", "xlink:href", "src")]
        assert not [v for v in attrs.values() if v and "url(" in v and "url(#" not in v]


@pytest.fixture(scope="module")
def run_svg() -> str:
    chart = charts.run_chart(charts.product_rows(checks()))
    assert chart is not None
    return chart.svg


@pytest.fixture(scope="module")
def history_svg() -> str:
    chart = charts.history_chart(charts.history_rows(RUNS))
    assert chart is not None
    return chart.svg


def test_run_chart_names_each_product_and_labels_each_bar_with_its_number(run_svg: str) -> None:
    texts = parsed(run_svg).texts
    for product in ("edr", "itdr", EVIL):
        assert product in texts, product
    for value in ("52", "45", "12", "7", "3"):
        assert value in texts, f"a text element with {value}"
    for series in charts.SERIES.values():
        assert series in texts
    ET.fromstring(run_svg)  # also well-formed XML: the same file opens on its own


def test_hostile_labels_are_text_never_markup(run_svg: str, history_svg: str) -> None:
    for svg in (run_svg, history_svg):
        assert_safe(svg)
        assert "&lt;script&gt;" in svg
        assert EVIL in parsed(svg).texts, "reads back exactly, as text"


def test_history_takes_the_newest_run_of_each_billing_date(history_svg: str) -> None:
    rows = charts.history_rows(RUNS)
    assert {(r["billing_date"], r["run_id"]) for r in rows} == {
        ("2026-11-01", "r4"),
        ("2026-10-01", "r2"),
        (EVIL, "r1"),
    }, "the older run of a date and a run without product totals are left out"
    texts = parsed(history_svg).texts
    assert {"2026-10-01", "2026-11-01", "edr", "itdr", "billing date"} <= set(texts)
    labels = " | ".join(a.get("aria-label", "") for _, a in parsed(history_svg).tags)
    assert "billing date: 2026-11-01; units: 52; series: Huntress" in labels
    assert "units: 999" not in labels


def test_history_keeps_the_newest_dates_oldest_first() -> None:
    runs = [
        {"run_id": f"r{m}", "billing_date": f"2026-{m:02d}-01", "checks": checks()} for m in range(12, 0, -1)
    ]
    rows = charts.history_rows(runs, dates=3)
    assert sorted({r["billing_date"] for r in rows}) == ["2026-10-01", "2026-11-01", "2026-12-01"]
    assert rows[0]["billing_date"] == "2026-10-01"


def test_amount_held_is_drawn_only_when_the_data_carries_it() -> None:
    rows = charts.product_rows(checks())
    plain = charts.run_chart(rows)
    assert "amount held" not in parsed(plain.svg).texts
    assert "not shown" in plain.caption and "amount at stake" in plain.caption

    quarantine = [
        {"product": "edr", "billing_date": "2026-11-01", "amount_at_stake": 1200.5},
        {"product": "edr", "billing_date": "2026-11-01", "amount_at_stake": Decimal("99.50")},  # sa.Numeric
        {"product": "itdr", "billing_date": "2026-11-01", "amount_at_stake": None},
        {"product": "itdr", "billing_date": "2026-11-01"},  # rows of today: no amount at all
    ]
    assert charts.held_by_product(quarantine) == {"edr": 1300.0}
    assert charts.held_by_product(quarantine[3:]) == {}
    held = charts.run_chart(charts.with_held(rows, charts.held_by_product(quarantine)))
    texts = parsed(held.svg).texts
    assert "amount held" in texts and "1,300.00" in texts
    assert "Amount held: the amount at stake" in held.caption
    assert_safe(held.svg)

    history = charts.with_held(charts.history_rows(RUNS), charts.held_by_date(quarantine))
    by_key = {(r["billing_date"], r["product"]): r.get("amount_held") for r in history}
    assert by_key[("2026-11-01", "edr")] == 1300.0 and by_key[("2026-10-01", "edr")] is None
    chart = charts.history_chart(history)
    assert "amount held" in parsed(chart.svg).texts
    assert "open quarantine rows" in chart.caption
    assert_safe(chart.svg)


def test_no_data_no_chart() -> None:
    assert charts.run_chart([]) is None and charts.history_chart([]) is None
    assert charts.product_rows(None) == [] and charts.product_rows({"failed_task": "push"}) == []
    assert charts.history_rows([{"run_id": "x", "billing_date": "2026-11-01", "checks": None}]) == []


def test_bad_numbers_are_left_out_not_drawn() -> None:
    rows = charts.product_rows(
        {
            "products": {
                "edr": {"huntress": True, "connectwise_before": float("nan"), "connectwise_after": "5"}
            }
        }
    )
    assert rows == [
        {"product": "edr", "huntress": None, "connectwise_before": None, "connectwise_after": None}
    ]


# -- the sanitizer -------------------------------------------------------------------------------
WRAP = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">{}</svg>'


@pytest.mark.parametrize(
    "inner",
    [
        "<script>alert(1)</script>",
        "<style>svg{}</style>",
        '<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>',
        '<image xlink:href="http://attacker.example/x.png"/>',
        '<a xlink:href="javascript:alert(1)"><text>x</text></a>',
        '<use xlink:href="http://attacker.example/s.svg#x"/>',
        "<svg><text>nested</text></svg>",
    ],
)
def test_sanitizer_refuses_what_a_page_must_not_embed(inner: str) -> None:
    with pytest.raises(charts.UnsafeChart):
        charts.sanitize_svg(WRAP.format(inner))


def test_sanitizer_refuses_doctypes_and_broken_xml() -> None:
    with pytest.raises(charts.UnsafeChart):
        charts.sanitize_svg(
            '<!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>'
        )
    with pytest.raises(charts.UnsafeChart):
        charts.sanitize_svg("<svg")
    with pytest.raises(charts.UnsafeChart):
        charts.sanitize_svg("<html><body/></html>")  # not SVG at all


def test_sanitizer_drops_handlers_styles_and_outside_references() -> None:
    svg = charts.sanitize_svg(
        WRAP.format(
            '<defs><clipPath id="c1"><rect width="5" height="5"/></clipPath></defs>'
            '<g onload="alert(1)" style="fill:red" class="x" clip-path="url(#c1)">'
            '<rect fill="url(http://attacker.example/p)" stroke="#000" width="1" height="1"/>'
            '<path d="M0,0" xlink:href="#c1" aria-label="a &lt;b&gt; &amp; &quot;c&quot;"/>'
            "<text>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</text>"
            "<!-- a comment --><?pi x?></g>"
        ),
        id_prefix="one",
    )
    assert "onload" not in svg and "style=" not in svg and 'class="x"' not in svg
    assert "attacker" not in svg and "href" not in svg and "<!--" not in svg and "<?" not in svg
    assert 'id="one-c1"' in svg and 'clip-path="url(#one-c1)"' in svg, "ids prefixed, refs follow"
    assert 'stroke="#000"' in svg
    assert 'aria-label="a &lt;b&gt; &amp; &quot;c&quot;"' in svg
    assert "<text>&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</text>" in svg
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="billing-chart"')
    assert_safe(svg)


def test_sanitizer_drops_references_to_ids_it_does_not_hold() -> None:
    svg = charts.sanitize_svg(WRAP.format('<g clip-path="url(#elsewhere)" fill="#fff"/>'))
    assert "clip-path" not in svg and 'fill="#fff"' in svg


def test_renderer_fetches_nothing() -> None:
    spec = {"data": {"url": "http://127.0.0.1:9/data.csv"}, "mark": "bar"}
    with pytest.raises(charts.ChartError, match="not allowed"):
        charts.render_svg(spec)


def test_chart_renders_as_markup_in_jinja() -> None:
    import jinja2

    chart = charts.Chart('<svg xmlns="http://www.w3.org/2000/svg"></svg>', "a <caption>")
    page = jinja2.Environment(autoescape=True).from_string("{{ c }}|{{ c.caption }}").render(c=chart)
    assert page == '<svg xmlns="http://www.w3.org/2000/svg"></svg>|a &lt;caption&gt;'


@pytest.mark.perf
def test_rendering_time_is_modest() -> None:
    rows = charts.history_rows(RUNS)
    charts.history_chart(rows)  # the renderer's first call in this process may be the slow one
    started = time.perf_counter()
    charts.history_chart(rows)
    charts.run_chart(charts.product_rows(checks()))
    assert time.perf_counter() - started < 5, "two charts after the first: well under a second here"


@pytest.mark.perf  # a fresh interpreter: seconds
def test_importing_charts_loads_no_renderer() -> None:
    code = (
        "import sys, billing_sync.charts, billing_sync.report; "
        "print([m for m in ('altair', 'vl_convert') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_summary_alert_links_the_charts() -> None:
    run_id = "manual__2026-11-01T00:00:00+00:00"
    message = build.summary_message(
        {"run_id": run_id, "billing_date": "2026-11-01", "invoice_id": 1, "mode": "push"},
        {"counts": {"quarantined": 1, "no_live_addition": 1}, "checks": {}},
    )
    assert message is not None
    links = dict(message.links)
    assert links["Chart of this run"].endswith(
        "/billing-review/runs/manual__2026-11-01T00%3A00%3A00%2B00%3A00#chart"
    )
    assert links["Charts over billing dates"].endswith("/billing-review/runs#charts")
    assert links["Charts over billing dates"].startswith(("http://", "https://"))
