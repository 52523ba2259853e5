"""The alert message: plain data, one per alert, rendered per medium by `render`.

Nothing here knows a medium, a channel or Airflow; `map_text` lets the sender scrub and cut every
value before any renderer sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Message:
    """What to tell people. `links` are (label, URL or file path)."""

    subject: str
    facts: tuple[tuple[str, str], ...] = ()
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    severity: str = "info"  # info | failure

    def map_text(self, fn: Callable[[str], str]) -> Message:
        return replace(
            self,
            subject=fn(self.subject),
            facts=tuple((fn(k), fn(v)) for k, v in self.facts),
            sections=tuple((fn(h), tuple(fn(x) for x in lines)) for h, lines in self.sections),
            links=tuple((fn(k), fn(v)) for k, v in self.links),
        )
