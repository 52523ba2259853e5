"""tests/helpers/slow_first.py: the slow tests head worksteal's blocks, each file of them in one piece."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.helpers import slow_first

TESTS = Path("/repo/tests")


@dataclass(frozen=True)
class FakeItem:
    nodeid: str

    @property
    def path(self) -> Path:
        return Path("/repo") / self.nodeid.split("::", 1)[0]


def items(*ids: str) -> list[FakeItem]:
    return [FakeItem(f"tests/{i}") for i in ids]


def test_blocks_are_cut_as_worksteal_deals_them() -> None:
    assert slow_first.block_sizes(1847, 3) == [615, 616, 616]
    assert sum(slow_first.block_sizes(10, 4)) == 10


def test_each_block_starts_with_its_share_of_the_slow_ones(monkeypatch) -> None:
    monkeypatch.setattr(
        slow_first, "SLOW", {"a.py::big": 100, "b.py": 60, "c.py::mid": 50, "d.py::small": 10}
    )
    quick = [f"q.py::t{k}" for k in range(8)]
    given = items(*quick[:4], "a.py::big", "b.py::one", "b.py::two", "c.py::mid", "d.py::small", *quick[4:])
    ordered = [i.nodeid.removeprefix("tests/") for i in slow_first.order(given, TESTS, 3)]
    blocks = [ordered[:4], ordered[4:8], ordered[8:]]
    assert [b[0] for b in blocks] == ["a.py::big", "b.py::one", "c.py::mid"]
    assert blocks[1][:2] == ["b.py::one", "b.py::two"]  # a file named in SLOW moves whole
    assert blocks[2][:2] == ["c.py::mid", "d.py::small"]  # to the block with the least slow time
    assert [t for t in ordered if t.startswith("q.py")] == quick  # the rest keep their order
    assert sorted(ordered) == sorted(i.nodeid.removeprefix("tests/") for i in given)


def test_nothing_moves_outside_xdist_or_with_one_worker() -> None:
    given = items("q.py::a", "e2e/test_celery.py::x", "q.py::b", "q.py::c")
    assert slow_first.order(given, TESTS, 0) == given
    assert slow_first.order(given, TESTS, 1) == given
