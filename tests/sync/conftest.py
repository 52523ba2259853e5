"""Fixtures of the sync tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from billing_sync import store
from tests.helpers.scripted_server import Answer, Server


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    """A fresh billing database (SQLite), migrated to the newest schema."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def servers() -> Iterator[Callable[[Answer], Server]]:
    """Scripted loopback servers (tests/helpers/scripted_server.py), closed after the test."""
    started: list[Server] = []

    def start(answer: Answer) -> Server:
        started.append(Server(answer))
        return started[-1]

    yield start
    for s in started:
        s.close()
