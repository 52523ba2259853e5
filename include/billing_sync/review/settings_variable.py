"""Reads and writes a tenant's settings Variable through Airflow's Variable model.

The API server's backends decide where it is: secrets backends, environment, metadata database.

Runs read the Variable through the same chain, where a secrets backend or an ``AIRFLOW_VAR_*``
environment variable answers before the metadata database. A value written to the database under
such a Variable would never be read, so the page writes only a Variable that lives in the database
(or does not exist yet), and says where the other one lives.

A save is compare-and-set: the page carries the fingerprint of the value it showed, and `save`
writes only while the database still holds that value (the row locked on PostgreSQL, SQLite's
writes serialized), recording the decision inside the same transaction, so a change is never made
unrecorded and two people never overwrite each other's edit unseen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ABSENT = "\x00absent"  # what a missing Variable is fingerprinted as (no text is exactly this)
STALE = "settings changed meanwhile; review again"


class StaleSettings(Exception):
    """The Variable no longer holds the value the page showed."""


class ReadOnlyVariable(Exception):
    """The Variable lives outside the metadata database: the page cannot change what runs read."""


@dataclass(frozen=True)
class Stored:
    key: str
    text: str | None  # None: no such Variable (every setting at its default)
    outside: str | None  # the backend holding it instead of the metadata database, if any

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.text)

    @property
    def where(self) -> str:
        """How the page says where the Variable is: "held in …", or "not set yet: every key at its default"."""
        if self.outside:
            return f"held in {self.outside}"
        return "held in Airflow's metadata database" if self.text is not None else "not set yet"


def fingerprint(text: str | None) -> str:
    return hashlib.sha256((ABSENT if text is None else text).encode("utf-8")).hexdigest()


def read(key: str) -> Stored:
    """The Variable as runs read it, and which backend other than the database holds it."""
    from airflow.models.variable import Variable

    text = Variable.get(key, default_var=None)
    return Stored(key, None if text is None else str(text), _outside_database(key))


def _outside_database(key: str) -> str | None:
    from airflow.configuration import ensure_secrets_loaded
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    from airflow.secrets.metastore import MetastoreBackend

    for backend in ensure_secrets_loaded():
        if isinstance(backend, MetastoreBackend):
            continue
        try:
            found = backend.get_variable(key)
        except Exception:  # an unreachable backend: Airflow's own reads skip it the same way
            continue
        if found is not None:
            if isinstance(backend, EnvironmentVariablesBackend):
                return f"the environment variable AIRFLOW_VAR_{key.upper()}"
            return f"the secrets backend {type(backend).__name__}"
    return None


def save(key: str, seen: str, text: str, record: Callable[[], Any]) -> None:
    """Write `text` to the Variable if it still holds what was seen (`seen`: its fingerprint),
    calling `record` (the decision) before the write commits; StaleSettings otherwise."""
    import sqlalchemy as sa
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    outside = _outside_database(key)
    if outside:
        raise ReadOnlyVariable(outside)
    with create_session() as session:
        row = session.scalar(sa.select(Variable).where(Variable.key == key).with_for_update())
        if fingerprint(None if row is None else row.val) != seen:
            raise StaleSettings(STALE)
        description = None if row is None else row.description  # kept: set() would clear it
        Variable.set(key, text, description=description, session=session)
        record()  # a failure here rolls the write back
