"""An engine on each billing database the `db_url` fixture gives (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from billing_sync import store


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = store.make_engine(db_url)
    yield eng
    eng.dispose()
