"""Fixtures of the Huntress sandbox tests: the rich scenario's sandbox (one per test module), a client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import API_KEY, API_SECRET
from tests.sandbox.huntress import rich_scenario


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(rich_scenario(), tmp_path_factory.mktemp("huntress"))
    yield sb
    sb.stop()


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client
