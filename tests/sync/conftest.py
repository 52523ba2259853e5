"""Fixtures of the sync tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from billing_sync import store


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    """A fresh billing database (SQLite), migrated to the newest schema."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(engine)
    yield engine
    engine.dispose()
