"""Fixtures of the ConnectWise sandbox tests: one sandbox process per test module, clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox.connectwise import client, scenario


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(scenario(), tmp_path_factory.mktemp("cw"))
    yield sb
    assert sb.stop() == 0


@pytest.fixture
def cw(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with client(sandbox.connectwise_url) as c:
        yield c


@pytest.fixture
def fwd(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with client(sandbox.connectwise_url, **{"pagination-type": "forward-only"}) as c:
        yield c


@pytest.fixture
def writes(sandbox: Sandbox, cw: httpx.Client) -> Iterator[httpx.Client]:
    """A client for tests that write: the scenario's data is restored afterwards."""
    yield cw
    httpx.post(sandbox.connectwise_url + "/_sandbox/reset").raise_for_status()
