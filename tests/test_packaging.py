"""Packaging: the production install (`pip install .`, docs/deployment.md) is billing_sync alone; the
sandbox is a distribution of its own (include/billing_sandbox/pyproject.toml) that only the dev
install adds (the Makefile's install step: `uv pip install --no-deps -e . -e ./include/billing_sandbox`).

The wheels are built with pip, as a deployment would, from a clean copy of the project: setuptools
puts whatever an old build/ folder holds into a wheel, so building in the work tree could hide or
fake what the configuration says. The build backend (setuptools>=68) comes from the package index,
as for every pip install here.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import billing_sandbox

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ROOT / "include"
SANDBOX = INCLUDE / "billing_sandbox"
SYNC = INCLUDE / "billing_sync"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


def _sources(package_dir: Path, top: str) -> set[str]:
    """The wheel paths of a package folder's modules, e.g. billing_sync/store/runs.py."""
    return {
        f"{top}/{path.relative_to(package_dir).as_posix()}"
        for path in package_dir.rglob("*.py")
        if "__pycache__" not in path.parts and "build" not in path.relative_to(package_dir).parts
    }


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """{"production": names in the root project's wheel, "sandbox": names in the sandbox's wheel}."""
    src = tmp_path_factory.mktemp("project")
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copytree(INCLUDE, src / "include", ignore=SKIP)  # the sandbox too: the filter must skip it
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist)]
    result = subprocess.run(
        [*command, str(src), str(src / "include" / "billing_sandbox")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    names: dict[str, set[str]] = {}
    for wheel in dist.glob("*.whl"):
        kind = "sandbox" if wheel.name.startswith("huntress_cw_billing_sandbox-") else "production"
        with zipfile.ZipFile(wheel) as zf:
            names[kind] = set(zf.namelist())
    assert set(names) == {"production", "sandbox"}, sorted(p.name for p in dist.iterdir())
    return names


def test_production_wheel_holds_billing_sync_and_nothing_of_the_sandbox(wheels: dict[str, set[str]]) -> None:
    names = wheels["production"]
    assert {n.split("/")[0] for n in names} == {"billing_sync", "huntress_cw_billing-0.1.0.dist-info"}
    assert not [n for n in names if "billing_sandbox" in n]
    assert _sources(SYNC, "billing_sync") <= names
    # package data (pyproject.toml's [tool.setuptools.package-data]) ships too
    data = {n for n in names if n.startswith("billing_sync/") and not n.endswith(".py")}
    assert any(n.startswith("billing_sync/review/templates/") and n.endswith(".html") for n in data)
    assert {f"billing_sync/{p.relative_to(SYNC).as_posix()}" for p in SYNC.glob("*.json")} <= data


def test_sandbox_is_a_distribution_of_its_own(wheels: dict[str, set[str]]) -> None:
    names = wheels["sandbox"]
    assert {n.split("/")[0] for n in names} == {
        "billing_sandbox",
        "huntress_cw_billing_sandbox-0.1.0.dist-info",
    }
    # every module (a subpackage left out of its `packages` list would be missing) and the schema
    assert _sources(SANDBOX, "billing_sandbox") <= names
    assert "billing_sandbox/scenario.schema.json" in names
    assert not [n for n in names if n.startswith("billing_sync")]


def test_dev_install_has_both_distributions_editable() -> None:
    """What `make install` leaves: both distributions installed, the sandbox served from the work tree."""
    assert importlib.metadata.distribution("huntress-cw-billing").version == "0.1.0"
    assert importlib.metadata.distribution("huntress-cw-billing-sandbox").version == "0.1.0"
    assert Path(billing_sandbox.__file__).resolve().parent == SANDBOX
