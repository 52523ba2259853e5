"""Issue 19 §6: a chart is drawn once per what it shows (`charts.run_chart` / `history_chart` with a
`chart_cache.SvgCache`), the cache is bounded and thread-safe, and changed data is never answered
with the old picture. vl-convert's real renderer is wrapped to count its calls; it still draws."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from billing_sync import charts
from billing_sync.chart_cache import SvgCache


def rows(edr: float = 52, held: float | None = None) -> list[dict[str, Any]]:
    out = [
        {"product": "edr", "huntress": edr, "connectwise_before": 45.0, "connectwise_after": edr},
        {"product": "sat", "huntress": 8, "connectwise_before": 8.0, "connectwise_after": 8.0},
    ]
    if held is not None:
        out[0][charts.HELD] = held
    return out


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import vl_convert

    calls: list[int] = []
    real = vl_convert.vegalite_to_svg

    def counted(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vl_convert, "vegalite_to_svg", counted)
    return calls


def test_same_data_is_drawn_once_changed_data_again(renders: list[int]) -> None:
    cache = SvgCache(max_entries=8, max_bytes=2**22)
    first = charts.run_chart(rows(), cache)
    again = charts.run_chart(rows(), cache)
    assert first is not None and again == first and len(renders) == 1
    changed = charts.run_chart(rows(edr=53), cache)
    assert changed is not None and len(renders) == 2 and ">53</text>" in changed.svg
    held = charts.run_chart(rows(held=12.5), cache)
    assert held is not None and len(renders) == 3 and "Amount held: the amount at stake" in held.caption
    # What is not drawn is not part of the key: a history row's run id.
    dated = [{**r, "billing_date": "2026-11-01"} for r in rows()]
    charts.history_chart([{**r, "run_id": "a"} for r in dated], cache)
    charts.history_chart([{**r, "run_id": "b"} for r in dated], cache)
    assert len(renders) == 4
    # Without a cache (the report of a run), drawn each time, as before.
    charts.run_chart(rows())
    assert len(renders) == 5


def test_keys_name_the_data_and_the_drawing_libraries() -> None:
    shown = charts._shown(rows(), dated=False)
    assert charts.chart_key("run", shown) == charts.chart_key("run", charts._shown(rows(), dated=False))
    assert charts.chart_key("run", shown) != charts.chart_key("history", shown)
    assert charts.chart_key("run", shown) != charts.chart_key(
        "run", charts._shown(rows(edr=52.5), dated=False)
    )
    assert any(v.startswith("vl-convert-python ") for v in charts._versions())


def test_a_failed_drawing_is_not_kept() -> None:
    cache = SvgCache(max_entries=4, max_bytes=1000)

    def broken() -> str:
        raise charts.ChartError("no")

    with pytest.raises(charts.ChartError):
        cache.get_or_draw("k", broken)
    assert len(cache) == 0 and cache.get_or_draw("k", lambda: "<svg/>") == "<svg/>"


def test_the_cache_is_bounded_by_count_and_by_size() -> None:
    cache = SvgCache(max_entries=3, max_bytes=100)
    for n in range(10):
        cache.get_or_draw(f"k{n}", lambda n=n: f"<svg>{n}</svg>")
    assert len(cache) == 3 and cache.get("k9") and cache.get("k0") is None
    cache.get("k7")  # used: kept over k8
    cache.get_or_draw("big", lambda: "x" * 60)
    assert cache.size_bytes <= 100 and cache.get("k7") and cache.get("k8") is None
    assert cache.get_or_draw("huge", lambda: "y" * 101) == "y" * 101, "drawn, though too big to keep"
    assert cache.get("huge") is None and cache.size_bytes <= 100
    with pytest.raises(ValueError):
        SvgCache(max_entries=0, max_bytes=1)


def test_many_readers_at_once_start_one_drawing() -> None:
    cache = SvgCache(max_entries=4, max_bytes=1000)
    drawing, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        drawing.set()
        assert release.wait(30)
        return "<svg/>"

    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(cache.get_or_draw("k", slow)))
    first.start()
    assert drawing.wait(30)
    others = [threading.Thread(target=lambda: got.append(cache.get_or_draw("k", slow))) for _ in range(7)]
    for t in others:
        t.start()
    time.sleep(0.2)  # let them reach the cache while the first still draws (faster or slower: still 1)
    release.set()
    for t in [first, *others]:
        t.join(30)
    assert got == ["<svg/>"] * 8 and len(calls) == 1
