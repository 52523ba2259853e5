"""Packaging: the production install (`pip install .`, docs/deployment.md) is billing_sync alone; the
sandbox is a distribution of its own (include/billing_sandbox/pyproject.toml) that only the dev
install adds (the Makefile's install step: `uv pip install --no-deps -e . -e ./include/billing_sandbox`).

The wheels are built with pip, as a deployment would, from a clean copy of the project: setuptools
puts whatever an old build/ folder holds into a wheel, so building in the work tree could hide or
fake what the configuration says. The build backend (setuptools>=68) comes from the package index,
as for every pip install here.

The production wheel is a working DAG package (issue 22 §1): it declares its runtime dependencies,
carries the DAG files (`huntress-cw-billing-dags` copies them into a dags folder) and the provider
entry point, and a fresh venv with only the wheel and what it requires parses the DAG.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import billing_sandbox

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ROOT / "include"
SANDBOX = INCLUDE / "billing_sandbox"
SYNC = INCLUDE / "billing_sync"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
PROJECT_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in")


def _sources(package_dir: Path, top: str) -> set[str]:
    """The wheel paths of a package folder's modules, e.g. billing_sync/store/runs.py."""
    return {
        f"{top}/{path.relative_to(package_dir).as_posix()}"
        for path in package_dir.rglob("*.py")
        if "__pycache__" not in path.parts and "build" not in path.relative_to(package_dir).parts
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the two wheels are built into (see `wheels`)."""
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> dict[str, set[str]]:
    """{"production": names in the root project's wheel, "sandbox": names in the sandbox's wheel}."""
    src = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, src)
    shutil.copytree(INCLUDE, src / "include", ignore=SKIP)  # the sandbox too: the filter must skip it
    shutil.copytree(ROOT / "dags", src / "dags", ignore=SKIP)  # setup.py puts them into the wheel
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


# -- issue 22 §1: the wheel is a working DAG package -------------------------------------------------

DAG_ID = "huntress_connectwise_billing_sync"
LOCK = ROOT / "requirements.lock"
UV = Path(sys.executable).with_name("uv")


def test_production_wheel_carries_the_dag_files_and_the_provider(wheels: dict[str, set[str]]) -> None:
    names = wheels["production"]
    assert {f"billing_sync/dags/{p.name}" for p in (ROOT / "dags").glob("*.py")} <= names
    assert "huntress_cw_billing-0.1.0.dist-info/entry_points.txt" in names


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _lines(path: Path) -> list[str]:
    return [
        line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()
    ]


def test_runtime_dependencies_are_declared_and_the_lock_satisfies_each() -> None:
    """Every runtime requirement (requirements.txt) is a dependency, as a range the lock's pin lies
    in; the dev-only sandbox never is one."""
    from packaging.requirements import Requirement

    declared = [
        Requirement(r)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    by_name = {_name(r.name): r for r in declared}
    assert {_name(line) for line in _lines(ROOT / "requirements.txt")} <= set(by_name)
    assert not [name for name in by_name if "sandbox" in name]
    locked = {_name(line): line.split("==", 1)[1] for line in _lines(LOCK) if "==" in line}
    outside = {
        name: locked.get(name)
        for name, r in by_name.items()
        if name not in locked or locked[name] not in r.specifier
    }
    assert not outside, f"the lock pins these outside the declared ranges (or not at all): {outside}"


def _clean_env(home: Path) -> dict[str, str]:
    """A process environment that knows nothing of the work tree, the dev venv or the test's Airflow."""
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "UV_CACHE_DIR"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _json_lines(stdout: str) -> list[dict[str, str]]:
    """The JSON list an `airflow ... -o json` prints, among the log lines it may print too."""
    return [row for line in stdout.splitlines() if line.startswith("[") for row in json.loads(line)]


def test_the_wheel_installs_into_a_fresh_venv_and_its_dag_parses(
    wheels: dict[str, set[str]], dist: Path, tmp_path: Path
) -> None:
    """`pip install` of the wheel alone, as a deployment would, then Airflow there finds the DAG.

    The fresh venv gets the wheel and what its metadata requires, resolved by uv under
    requirements.lock as constraints (the lock stands for the deployment's Airflow constraints:
    the wheel's ranges must admit it). uv installs from its cache (`--offline`: seconds, no
    network); only where the cache lacks a locked wheel does it ask the package index."""
    wheel = next(dist.glob("huntress_cw_billing-*.whl"))
    venv, home = tmp_path / "venv", tmp_path / "home"
    env = _clean_env(home)
    _run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], env, tmp_path)
    install = [str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-c", str(LOCK)]
    done = subprocess.run([*install, "--offline", str(wheel)], env=env, capture_output=True, text=True)
    if done.returncode != 0:  # a cold cache: the same resolution from the index
        _run([*install, str(wheel)], env, tmp_path)
    bin_ = venv / "bin"
    where = _run(
        [str(bin_ / "python"), "-c", "import billing_sync; print(billing_sync.__file__)"], env, tmp_path
    )
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the work tree's
    sandbox = subprocess.run(
        [str(bin_ / "python"), "-c", "import billing_sandbox"], env=env, capture_output=True
    )
    assert sandbox.returncode != 0  # the dev-only sandbox did not come along

    copied = _run([str(bin_ / "huntress-cw-billing-dags")], env, tmp_path)  # to [core] dags_folder
    assert f"{home / 'dags' / DAG_ID}.py" in copied.split()
    _run([str(bin_ / "airflow"), "db", "migrate"], env, tmp_path)
    listed = _json_lines(
        _run([str(bin_ / "airflow"), "dags", "list", "--local", "-o", "json"], env, tmp_path)
    )
    dags = {d["dag_id"]: d["fileloc"] for d in listed}
    assert dags.get(DAG_ID) == str(home / "dags" / f"{DAG_ID}.py"), listed
    hooks = _json_lines(_run([str(bin_ / "airflow"), "providers", "hooks", "-o", "json"], env, tmp_path))
    types = {h["connection_type"]: h["class"] for h in hooks}
    assert types.get("huntress") == "billing_sync.hooks.HuntressHook", types
    assert types.get("connectwise_manage") == "billing_sync.hooks.ConnectWiseHook", types
