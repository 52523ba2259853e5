"""The `billing_sync_db` connection in each form an operator may write → a SQLAlchemy URL."""

from __future__ import annotations

import json

import pytest

from billing_sync import runtime


@pytest.mark.parametrize(
    "conn, url",
    [
        ("sqlite:////var/lib/billing/billing.db", "sqlite:////var/lib/billing/billing.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        (
            "postgresql://billing:p%40ss@db.internal:5432/billing",
            "postgresql://billing:p%40ss@db.internal:5432/billing",
        ),
        ("postgres://billing:pw@db:5432/billing", "postgresql://billing:pw@db:5432/billing"),
        (
            json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:////x/y.db"}}),
            "sqlite:////x/y.db",
        ),
    ],
)
def test_connection_forms(monkeypatch, conn, url):
    monkeypatch.setenv("AIRFLOW_CONN_BILLING_SYNC_DB", conn)
    assert runtime.database_url() == url


def test_default_is_sqlite_in_airflow_home(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_BILLING_SYNC_DB", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert runtime.database_url() == f"sqlite:///{tmp_path / 'billing_sync.db'}"
