"""Fixtures of the generator tests: the demo-sized scenario and what the reference matcher makes of it."""

from __future__ import annotations

import pytest

from billing_sandbox import generate as gen
from tests.sandbox.generate import reconcile

# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def demo_like() -> dict:
    return gen.generate(40, 42)


@pytest.fixture(scope="module")
def demo_result(demo_like: dict) -> dict:
    return reconcile(demo_like)
