"""Pictures: Huntress units vs ConnectWise units per product, and the amount held, as SVG text.

    history_rows(runs)        one row per (billing date, product) from the runs on record
    product_rows(checks)      one row per product of one run (`billing_runs.checks["products"]`)
    history_chart(rows)       per product, the units over the billing dates (+ amount held)
    run_chart(rows)           one run: grouped bars per product (+ amount held)

Rows are `ChartRow`s (plain dicts): `product`, `huntress`, `connectwise_before`, `connectwise_after`, for
the history also `billing_date` (and the `run_id` it was read from), and optionally `amount_held` (money). A chart draws the amount held only when some
row carries one: the quarantine rows' `amount_at_stake` (where a price is known; rows recorded before
runs priced keys have none), which `held_by_product` / `held_by_date` sum. The caption says which.

A chart is one tenant's (docs/contract.md §1 Tenants): every tenant's DAG has the same run ids and
billing dates, so runs or quarantine rows of two tenants would add up into one picture without a
trace. Callers read one tenant's rows; `history_rows` and `held_by_*` refuse rows that carry two
`tenant` values (ChartError) rather than draw their sum.

A chart is drawn from exactly what it shows (`_shown`: products, numbers, dates), so given a cache
(`chart_cache.SvgCache`, the review app's) it is drawn once per data: the key hashes that data and the
drawing libraries' versions, before Altair builds anything (building the spec costs as much as
rendering it), and changed data is another key, never a stale picture.

Drawn with Altair (Vega-Lite) and rendered on the server by vl-convert (`vl_convert`, no browser, no
network: external data is refused), so a page embeds plain `<svg>` and runs no chart script. Both are
imported inside the functions: the DAG file and the task modules stay cheap to import.

The SVG is never passed on as vl-convert wrote it. `sanitize_svg` parses it and writes it again from an
allow-list: SVG drawing elements only (a `<script>`, `<style>`, `<foreignObject>`, `<image>`, `<a>` or
`<use>` makes the chart refused), presentation and ARIA attributes only (event handlers, `style`,
`class`, `href` and any reference outside the chart are dropped), every text and attribute escaped
again. So the result is safe to put inline in a page under a CSP without 'unsafe-inline': it holds no
script, no style attribute and no reference to anything outside itself. Names in labels (products,
dates) are text: Vega escapes them, and the rewrite escapes them once more on output.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import metadata
from typing import Any, NotRequired, TypedDict, TypeVar

from .chart_cache import SvgCache
from .results import RecordedChecks

VEGA_LITE_VERSION = "6.4"  # the Vega-Lite of Altair 6.3 (alt.SCHEMA_VERSION v6.4.x), bundled in vl-convert
HISTORY_DATES = 24  # billing dates on the runs page's chart: two years of monthly runs
HELD = "amount_held"  # a row's money held back (quarantined) for its product
QUARANTINE_AMOUNT = "amount_at_stake"  # the quarantine rows' money at stake, once they carry it
SERIES = {
    "huntress": "Huntress",
    "connectwise_before": "ConnectWise before push",
    "connectwise_after": "ConnectWise after push",
}
COLOURS = ("#175cd3", "#98a2b3", "#f79009")
DASHES = ([1, 0], [2, 2], [6, 3])  # Huntress solid; ConnectWise after dashed, so equal lines both show
HELD_COLOUR = "#b42318"

_SVG_NS = "http://www.w3.org/2000/svg"
_ELEMENTS = frozenset(
    "svg g path rect line circle ellipse polygon polyline text tspan title desc defs clipPath".split()
)
# Presentation attributes Vega's SVG renderer writes, and aria-* (kept for screen readers).
_ATTRIBUTES = frozenset(
    """width height viewBox version preserveAspectRatio id role transform d x y x1 y1 x2 y2 dx dy
    cx cy r rx ry points fill fill-opacity fill-rule stroke stroke-width stroke-opacity
    stroke-dasharray stroke-dashoffset stroke-linecap stroke-linejoin stroke-miterlimit opacity
    clip-path clipPathUnits display visibility pointer-events shape-rendering text-anchor
    dominant-baseline font-family font-size font-style font-weight font-variant letter-spacing""".split()
)
_URL = re.compile(r"url\(\s*([^)]*?)\s*\)")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_QUOTES = "'\""


class ChartRow(TypedDict):
    """A product's units (and the amount held back) as a chart shows them; a history row is dated."""

    product: str
    huntress: float | None
    connectwise_before: float | None
    connectwise_after: float | None
    amount_held: NotRequired[float | None]
    billing_date: NotRequired[str]  # a history row's
    run_id: NotRequired[str | None]  # a history row's: the run it was read from (not drawn)


Row = TypeVar("Row", bound=ChartRow)


class RecordedRun(TypedDict):
    """What a history reads of a run record (`store.RunRecord`, which charts do not import)."""

    tenant: str
    run_id: str
    billing_date: date
    checks: RecordedChecks | None


class HeldRow(TypedDict):
    """What the amount held reads of a quarantine row (`store.QuarantineRow`)."""

    tenant: str
    billing_date: date
    product: str | None
    amount_at_stake: Decimal | None


class UnitPoint(TypedDict):
    """One product's units in one series (and billing date): a mark Vega-Lite draws."""

    billing_date: str
    product: str
    series: str
    units: float


class HeldPoint(TypedDict):
    """One product's amount held (on one billing date): a bar Vega-Lite draws."""

    billing_date: str
    product: str
    amount_held: float


class ChartError(Exception):
    """A chart could not be drawn (renderer missing or failing), or its SVG was refused."""


class UnsafeChart(ChartError):
    """The renderer's SVG holds something a page must not embed (a script, a foreign element)."""


@dataclass(frozen=True)
class Chart:
    """A sanitized SVG and the caption that says what it shows. Jinja renders it as markup
    (`__html__`): only `sanitize_svg` output ever gets here."""

    svg: str
    caption: str

    def __html__(self) -> str:
        return self.svg

    def __str__(self) -> str:
        return self.svg


# -- the data ------------------------------------------------------------------------------------
def product_rows(checks: RecordedChecks | None) -> list[ChartRow]:
    """One row per product of a run's totals check (`checks["products"]`), in its order. Read as
    stored: a run of an older release, or a failed one, may hold no products or odd values."""
    products: object = (checks or {}).get("products") or {}  # as stored: checked, not trusted
    if not isinstance(products, Mapping):
        return []
    rows = []
    for product, totals in products.items():
        if not isinstance(totals, Mapping):
            continue
        row: ChartRow = {
            "product": str(product),
            "huntress": _number(totals.get("huntress")),
            "connectwise_before": _number(totals.get("connectwise_before")),
            "connectwise_after": _number(totals.get("connectwise_after")),
        }
        if _number(totals.get(HELD)) is not None:
            row["amount_held"] = _number(totals.get(HELD))
        rows.append(row)
    return rows


def history_rows(runs: Iterable[RecordedRun], dates: int = HISTORY_DATES) -> list[ChartRow]:
    """Per billing date, the products of its newest run that recorded product totals; the `dates`
    newest billing dates, oldest first. `runs` newest first, as `store.list_runs` returns them."""
    runs = list(runs)
    _one_tenant((r.get("tenant") for r in runs), "runs")
    newest: dict[str, RecordedRun] = {}
    for run in runs:
        day = str(run.get("billing_date") or "")
        if day and day not in newest and product_rows(run.get("checks")):
            newest[day] = run
    chosen = sorted(newest)[-dates:] if dates > 0 else []
    return [
        {"billing_date": day, "run_id": newest[day].get("run_id"), **row}
        for day in chosen
        for row in product_rows(newest[day].get("checks"))
    ]


def held_by_product(quarantine_rows: Iterable[HeldRow]) -> dict[str, float]:
    """Sum of `amount_at_stake` per product over the rows that carry one."""
    return {key[0]: v for key, v in _held(quarantine_rows, ("product",)).items()}


def held_by_date(quarantine_rows: Iterable[HeldRow]) -> dict[tuple[str, str], float]:
    """Sum of `amount_at_stake` per (billing date, product) over the rows that carry one."""
    return {(key[0], key[1]): v for key, v in _held(quarantine_rows, ("billing_date", "product")).items()}


def _held(rows: Iterable[HeldRow], by: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    sums: dict[tuple[str, ...], float] = {}
    rows = list(rows)
    _one_tenant((r.get("tenant") for r in rows), "quarantine rows")
    for r in rows:
        amount = _number(r.get(QUARANTINE_AMOUNT))
        if amount is not None:
            key = tuple(str(value if (value := r.get(f)) is not None else "") for f in by)
            sums[key] = sums.get(key, 0.0) + amount
    return sums


def _one_tenant(tenants: Iterable[object], what: str) -> None:
    """Refuses the rows of `tenants` (each row's `tenant`) unless they are one tenant's: rows without
    a `tenant` belong to any."""
    found = sorted({str(t) for t in tenants if t is not None})
    if len(found) > 1:
        raise ChartError(f"{what} of several tenants ({', '.join(found)}): a chart shows one tenant's")


def with_held(rows: Sequence[Row], held: Mapping[Any, float]) -> list[Row]:
    """`rows` with `amount_held` from `held`, keyed by product (a run) or (billing date, product)."""
    out = []
    for r in rows:
        row = r.copy()
        if held:
            day = row.get("billing_date")
            key = (str(day), str(row["product"])) if "billing_date" in row else str(row["product"])
            if key in held:
                row["amount_held"] = held[key]
        out.append(row)
    return out


def has_held(rows: Iterable[ChartRow]) -> bool:
    return any(_number(r.get(HELD)) is not None for r in rows)


def _number(value: Any) -> float | None:
    """A finite number (money columns come back as Decimal) as float; anything else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    if isinstance(value, Decimal) and not value.is_finite():  # float() refuses a signalling NaN
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _long(rows: Sequence[ChartRow]) -> list[UnitPoint]:
    """One record per row and series: what Vega-Lite draws."""
    return [
        {
            "billing_date": str(r.get("billing_date") or ""),
            "product": str(r["product"]),
            "series": label,
            "units": value,
        }
        for r in rows
        for label, value in _series(r)
        if value is not None
    ]


def _series(row: ChartRow) -> list[tuple[str, float | None]]:
    """(label, number) of each series of SERIES, in its order."""
    numbers = {
        "huntress": row.get("huntress"),
        "connectwise_before": row.get("connectwise_before"),
        "connectwise_after": row.get("connectwise_after"),
    }
    return [(label, _number(numbers[field])) for field, label in SERIES.items()]


def _held_records(rows: Sequence[ChartRow]) -> list[HeldPoint]:
    return [
        {
            "billing_date": str(r.get("billing_date") or ""),
            "product": str(r["product"]),
            "amount_held": amount,
        }
        for r in rows
        if (amount := _number(r.get(HELD))) is not None
    ]


def _products(rows: Iterable[ChartRow]) -> list[str]:
    return list(dict.fromkeys(str(r["product"]) for r in rows))


# -- the pictures --------------------------------------------------------------------------------
def history_caption(rows: Sequence[ChartRow]) -> str:
    days = sorted({str(r["billing_date"]) for r in rows})
    span = f"{days[0]} to {days[-1]}" if len(days) > 1 else (days[0] if days else "no billing date")
    text = (
        f"Per product, Huntress units and ConnectWise units before and after the push, for each billing "
        f"date on record ({span}; the newest run of each date)."
    )
    return text + " " + _held_caption(rows, "each billing date's open quarantine rows")


def run_caption(rows: Sequence[ChartRow]) -> str:
    text = "Per product, Huntress units and ConnectWise units before and after this run's push."
    return text + " " + _held_caption(rows, "this run's quarantine rows")


def _held_caption(rows: Sequence[ChartRow], source: str) -> str:
    if has_held(rows):
        return f"Amount held: the amount at stake of {source}, per product."
    return "Amount held: not shown, as no quarantine row here carries an amount at stake."


def history_chart(rows: Sequence[ChartRow], cache: SvgCache | None = None) -> Chart | None:
    """Per product (a panel each), the three unit series over the billing dates; below, when the rows
    carry it, the amount held per billing date. None without rows. With a `cache`, drawn once per
    what it shows (`_drawn`)."""
    if not rows:
        return None
    shown = _shown(rows, dated=True)
    return Chart(_drawn("history", shown, _history_svg, cache), history_caption(shown))


def _history_svg(rows: Sequence[ChartRow]) -> str:
    alt = _altair()
    products = _products(rows)
    columns = min(2, len(products))
    days = sorted({str(r["billing_date"]) for r in rows})  # every panel on the same dates
    x = alt.X(
        "billing_date:O",
        title="billing date",
        scale=alt.Scale(domain=days),
        axis=alt.Axis(labelAngle=-45, labelOverlap=True),  # 24 dates: every other label
    )
    units = (
        alt.Chart(alt.Data(values=_long(rows)))
        .mark_line(point=True, strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y("units:Q", title="units"),
            color=_series_colour(alt),
            strokeDash=alt.StrokeDash(
                "series:N", scale=alt.Scale(domain=list(SERIES.values()), range=list(DASHES)), legend=None
            ),
        )
        .properties(width=260, height=150)
        .facet(facet=alt.Facet("product:N", title=None, sort=products), columns=columns)
        .resolve_scale(y="independent")  # a product of 3 units stays readable beside one of 3,000
    )
    chart: Any = units
    held = _held_records(rows)
    if held:
        bars = (
            alt.Chart(alt.Data(values=held))
            .mark_bar(color=HELD_COLOUR)
            .encode(x=x, y=alt.Y(f"{HELD}:Q", title="amount held"))
            .properties(width=260, height=90)
            .facet(facet=alt.Facet("product:N", title=None, sort=products), columns=columns)
            .resolve_scale(y="independent")
        )
        chart = alt.vconcat(
            units.properties(title="Units"), bars.properties(title="Amount held (open quarantine)")
        )
    return render_svg(_spec(chart), "history")


def run_chart(rows: Sequence[ChartRow], cache: SvgCache | None = None) -> Chart | None:
    """One run: per product, bars for Huntress, ConnectWise before and after, each labelled with its
    value; beside them, when the rows carry it, the amount held per product. None without rows. With
    a `cache`, drawn once per what it shows (`_drawn`)."""
    if not rows:
        return None
    shown = _shown(rows, dated=False)
    return Chart(_drawn("run", shown, _run_svg, cache), run_caption(shown))


def _run_svg(rows: Sequence[ChartRow]) -> str:
    alt = _altair()
    products = _products(rows)
    base = alt.Chart(alt.Data(values=_long(rows))).encode(
        x=alt.X("product:N", sort=products, title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("series:N", sort=list(SERIES.values())),
        y=alt.Y("units:Q", title="units"),
    )
    bars = base.mark_bar().encode(color=_series_colour(alt))
    labels = base.mark_text(dy=-3, baseline="bottom", fontSize=10, color="#1d2939").encode(
        text=alt.Text("units:Q", format=",~f")
    )
    width = max(240, 120 * len(products))
    chart: Any = (bars + labels).properties(width=width, height=200)
    held = _held_records(rows)
    if held:
        money = alt.Chart(alt.Data(values=held)).encode(
            x=alt.X("product:N", sort=products, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{HELD}:Q", title="amount held"),
        )
        held_chart = (
            money.mark_bar(color=HELD_COLOUR)
            + money.mark_text(dy=-3, baseline="bottom", fontSize=10, color="#1d2939").encode(
                text=alt.Text(f"{HELD}:Q", format=",.2f")
            )
        ).properties(width=max(120, 60 * len(products)), height=200, title="Amount held")
        chart = alt.hconcat(chart.properties(title="Units"), held_chart)
    return render_svg(_spec(chart), "run")


# -- drawn once per what it shows ---------------------------------------------------------------------
def _shown(rows: Sequence[ChartRow], *, dated: bool) -> list[ChartRow]:
    """Exactly what a chart draws of its rows, and nothing else (a history row's run id is not drawn):
    the product, each series' number and the amount held as `_number` reads them, and for the
    history the billing date. The chart is drawn from these, so they are its whole input."""
    shown = []
    for r in rows:
        row: ChartRow = {
            "product": str(r["product"]),
            "huntress": _number(r.get("huntress")),
            "connectwise_before": _number(r.get("connectwise_before")),
            "connectwise_after": _number(r.get("connectwise_after")),
            "amount_held": _number(r.get(HELD)),
        }
        if dated:
            row["billing_date"] = str(r["billing_date"])
        shown.append(row)
    return shown


def chart_key(kind: str, shown: Sequence[ChartRow]) -> str:
    """A chart's cache key: a hash of its kind and the data it draws (`_shown`, in order), with the
    versions of Altair, Vega-Lite and the renderer that draw it. Equal data, equal key; any changed
    number, product or date, another key: a cached chart is never a stale one."""
    text = json.dumps(
        [kind, list(shown), _versions()], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _versions() -> list[str]:
    found = [VEGA_LITE_VERSION]
    for package in ("altair", "vl-convert-python"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:  # pragma: no cover - dependencies of the package
            found.append(f"{package} missing")
    return found


def _drawn(
    kind: str,
    shown: list[ChartRow],
    draw: Callable[[Sequence[ChartRow]], str],
    cache: SvgCache | None,
) -> str:
    """`draw(shown)`, or the SVG the cache holds for the same data. The key is made before Altair
    builds anything: building and validating the spec costs as much as rendering it."""
    if cache is None:
        return draw(shown)
    return cache.get_or_draw(chart_key(kind, shown), lambda: draw(shown))


def _series_colour(alt: Any) -> Any:
    return alt.Color(
        "series:N",
        scale=alt.Scale(domain=list(SERIES.values()), range=list(COLOURS)),
        legend=alt.Legend(title=None, orient="top"),
    )


# -- rendering -----------------------------------------------------------------------------------
def _altair() -> Any:
    try:
        import altair
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ChartError("altair is not installed") from exc
    return altair


def _spec(chart: Any) -> dict[str, Any]:  # Vega-Lite's JSON, handed to the renderer untouched
    """The chart's Vega-Lite spec, validated by Altair against the schema."""
    try:
        spec: dict[str, Any] = chart.to_dict()
    except Exception as exc:  # altair's SchemaValidationError and the like
        raise ChartError(f"the chart's spec is invalid: {exc}") from exc
    return spec


def render_svg(spec: Mapping[str, Any], id_prefix: str = "chart") -> str:  # any Vega-Lite spec
    """A Vega-Lite spec as sanitized SVG text. vl-convert may fetch nothing: external data is refused."""
    try:
        import vl_convert
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ChartError("vl-convert-python is not installed") from exc
    try:
        svg = vl_convert.vegalite_to_svg(dict(spec), vl_version=VEGA_LITE_VERSION, allowed_base_urls=[])
    except Exception as exc:  # the renderer reports a bad spec or a refused fetch as ValueError
        raise ChartError(f"the chart could not be rendered: {exc}") from exc
    return sanitize_svg(svg, id_prefix)


def sanitize_svg(text: str, id_prefix: str = "chart") -> str:
    """`text` parsed and written again from the allow-list (module doc): only SVG drawing elements,
    presentation and ARIA attributes, ids prefixed with `id_prefix` (two charts in one page must not
    share a clip path id) and `url(#id)` pointing inside the chart. Raises UnsafeChart for anything
    that cannot be drawn safely by dropping an attribute: a script, a foreign element, a DOCTYPE."""
    if not _ID.fullmatch(id_prefix):
        raise ValueError(f"bad id prefix {id_prefix!r}")
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise UnsafeChart("a chart's SVG may not declare a DOCTYPE or entities")
    try:
        root = ET.fromstring(text)  # comments and processing instructions are dropped
    except ET.ParseError as exc:
        raise UnsafeChart(f"the chart's SVG does not parse: {exc}") from exc
    ids = {v for el in root.iter() if (v := el.get("id")) and _ID.fullmatch(v)}
    out: list[str] = []
    _write(root, out, id_prefix, ids, top=True)
    return "".join(out)


def _write(el: ET.Element, out: list[str], prefix: str, ids: set[str], top: bool = False) -> None:
    tag = _svg_tag(el.tag)
    if tag == "svg" and not top:
        raise UnsafeChart("a nested <svg> is not allowed in a chart")
    attrs: list[tuple[str, str]] = [("xmlns", _SVG_NS), ("class", "billing-chart")] if top else []
    for name, value in el.attrib.items():
        kept = _attribute(name, value, prefix, ids)
        if kept is not None:
            attrs.append(kept)
    out.append(f"<{tag}" + "".join(f' {n}="{html.escape(v, quote=True)}"' for n, v in attrs) + ">")
    if el.text:
        out.append(html.escape(el.text, quote=False))
    for child in el:
        _write(child, out, prefix, ids)
        if child.tail:
            out.append(html.escape(child.tail, quote=False))
    out.append(f"</{tag}>")


def _svg_tag(tag: str) -> str:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if namespace != _SVG_NS or local not in _ELEMENTS:
        raise UnsafeChart(f"<{local or tag}> is not allowed in a chart")
    return local


def _attribute(name: str, value: str, prefix: str, ids: set[str]) -> tuple[str, str] | None:
    """The attribute as written out, or None to drop it."""
    if name.startswith("{") or not (name in _ATTRIBUTES or re.fullmatch(r"aria-[a-z]+", name)):
        return None  # xlink:href and other namespaced names, on*, style, class, href, src, ...
    if name == "id":
        return (name, f"{prefix}-{value}") if value in ids else None
    targets = [t.strip(_QUOTES) for t in _URL.findall(value)]
    if targets:
        if not all(t.startswith("#") and t[1:] in ids for t in targets):
            return None  # a reference outside the chart: never fetched, never kept
        value = _URL.sub(lambda m: f"url(#{prefix}-{m.group(1).strip(_QUOTES)[1:]})", value)
    if "javascript:" in "".join(value.lower().split()):
        return None
    return name, value
