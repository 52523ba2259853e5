"""Drawn charts by what they show (`charts.history_chart`, `charts.run_chart`; the review app keeps one).

A chart is a pure function of its key (`charts.chart_key`: a hash of the data it draws and of the
versions of the libraries that draw it), so a hit is never stale: data that changed is a key not seen
yet. What is bounded is the size: at most `max_entries` charts and `max_bytes` of SVG text, the least
recently used dropped first.

Thread-safe, and a drawing is done once however many requests ask for it at the same moment: the
API server answers pages from a thread pool, and a burst of readers on a page whose data just changed
must not start one renderer each. A failed drawing is not cached (the next view tries again).

Imports nothing of ours.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable


class SvgCache:
    """Key → SVG text, LRU-bounded by count and by size."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a chart cache holds at least one chart")
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._drawing: dict[str, threading.Lock] = {}  # a lock per key being drawn

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def get(self, key: str) -> str | None:
        with self._lock:
            svg = self._items.get(key)
            if svg is not None:
                self._items.move_to_end(key)
            return svg

    def get_or_draw(self, key: str, draw: Callable[[], str]) -> str:
        """The cached SVG of `key`, else `draw()` (once, whoever else waits for the same key) kept."""
        svg = self.get(key)
        if svg is not None:
            return svg
        with self._lock:
            drawing = self._drawing.setdefault(key, threading.Lock())
        with drawing:
            try:
                svg = self.get(key)  # drawn by the request we waited for
                if svg is None:
                    svg = draw()
                    self._put(key, svg)
                return svg
            finally:
                with self._lock:
                    if self._drawing.get(key) is drawing:
                        del self._drawing[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _put(self, key: str, svg: str) -> None:
        size = len(svg.encode())
        if size > self.max_bytes:
            return  # larger than the whole cache: drawn each time rather than emptying it for one chart
        with self._lock:
            if key in self._items:
                return
            self._items[key] = svg
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.encode())
