"""The tenants file (docs/contract.md §1 Tenants): what it gives, and what it refuses with the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing_sync import tenants
from billing_sync.tenants import Tenant, TenantsFileError


def entry(tenant_id: str, **over: object) -> dict[str, object]:
    return {
        "id": tenant_id,
        "huntress_conn_id": f"huntress_{tenant_id}",
        "connectwise_conn_id": f"connectwise_{tenant_id}",
        "variable": f"huntress_cw_billing_config_{tenant_id}",
        "billing_day": 1,
        **over,
    }


def write(tmp_path: Path, entries: list[object]) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": entries}, indent=2), encoding="utf-8")
    return path


def test_without_a_file_there_is_the_default_tenant_exactly_as_before(monkeypatch) -> None:
    monkeypatch.delenv(tenants.TENANTS_FILE_ENV, raising=False)
    [only] = tenants.configured()
    assert only == tenants.DEFAULT
    assert (only.id, only.dag_id, only.variable) == (
        "default",
        "huntress_connectwise_billing_sync",
        "huntress_cw_billing_config",
    )
    assert (only.huntress_conn_id, only.connectwise_conn_id) == ("huntress_default", "connectwise_default")
    assert only.billing_day is None and only.huntress_pool is None  # the Variable's day, the default pool
    assert tenants.entry_problems() == []


def test_each_entry_is_a_tenant_with_its_dag_connections_variable_day_and_pool(tmp_path, monkeypatch) -> None:
    path = write(
        tmp_path, [entry("north"), entry("south", billing_day=15, huntress_conn_id="huntress_north")]
    )
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(path))
    north, south = tenants.configured()
    assert north == Tenant(
        "north", "huntress_north", "connectwise_north", "huntress_cw_billing_config_north", 1
    )
    assert (north.dag_id, south.dag_id) == (
        "huntress_connectwise_billing_sync__north",
        "huntress_connectwise_billing_sync__south",
    )
    assert south.billing_day == 15
    # One Huntress account (one connection), one pool: its 60 requests a minute are shared.
    assert north.huntress_pool == south.huntress_pool == "huntress__huntress_north"
    assert (north.line, south.line) == (3, 10)
    assert tenants.by_id("south") is not None and tenants.by_id("default") == tenants.DEFAULT
    with pytest.raises(KeyError, match="east"):
        tenants.by_id("east")
    assert [tenants.of_dag(t.dag_id) for t in (north, south, tenants.DEFAULT)] == [
        "north",
        "south",
        "default",
    ]
    assert [tenants.dag_id_of(t) for t in ("south", "gone", "default")] == [
        south.dag_id,
        "huntress_connectwise_billing_sync__gone",  # removed from the file: its history keeps its DAG
        "huntress_connectwise_billing_sync",
    ]


def test_a_tenant_of_the_file_may_be_called_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(write(tmp_path, [entry("default")])))
    [only] = tenants.configured()
    assert only.dag_id == tenants.dag_id_of("default") == "huntress_connectwise_billing_sync__default"
    assert tenants.of_dag(only.dag_id) == "default" and only.huntress_pool == "huntress__huntress_default"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry("North"), "id 'North' must be lowercase letters, digits and _"),
        (entry("a-b"), "id 'a-b' must be lowercase"),
        (entry("west", colour="red"), "unknown key(s) 'colour'"),
        ({"id": "west", "billing_day": 1}, "missing 'huntress_conn_id', 'connectwise_conn_id', 'variable'"),
        (entry("west", billing_day=29), "billing_day 29 must be a whole number from 1 to 28"),
        (entry("west", billing_day=True), "billing_day True"),
        (entry("west", billing_day="1"), "billing_day '1'"),
        (entry("west", variable="has space"), "variable 'has space' must be"),
        (entry("west", huntress_conn_id=7), "huntress_conn_id 7 must be"),
        (["west"], "expected an object, got list"),
    ],
)
def test_a_broken_entry_is_named_by_its_line_and_hides_no_other(tmp_path, bad, message) -> None:
    path = write(tmp_path, [entry("north"), bad, entry("south")])
    loaded = tenants.load(path)
    assert [t.id for t in loaded.tenants] == ["north", "south"]
    [problem] = loaded.problems
    assert problem.startswith(f"{path}, line 10: tenant #2: ")
    assert message in problem


def test_a_repeated_id_is_refused_naming_both_lines(tmp_path) -> None:
    path = write(tmp_path, [entry("north"), entry("north", billing_day=2)])
    loaded = tenants.load(path)
    assert [(t.id, t.billing_day) for t in loaded.tenants] == [("north", 1)]
    assert loaded.problems == [f"{path}, line 10: tenant id 'north' repeats the tenant on line 3"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"tenants": [\n  {"id": "north",}\n]}', "line 2: not JSON"),
        ('{"tenant": []}', 'line 1: expected {"tenants": [...]}'),
        ('{"tenants": [], "x": 1}', "line 1: unknown key(s) 'x'"),
        ("[]", 'line 1: expected {"tenants": [...]}'),
    ],
)
def test_a_file_broken_as_a_whole_is_one_error_with_its_line(tmp_path, monkeypatch, text, message) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TenantsFileError, match="line") as raised:
        tenants.load(path)
    assert message in str(raised.value)
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(path))
    with pytest.raises(TenantsFileError):
        tenants.configured()
    assert tenants.entry_problems() == []  # reported once, by the DAG file, not twice


def test_a_missing_file_is_an_error_not_the_single_tenant_form(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(tmp_path / "nowhere.json"))
    with pytest.raises(TenantsFileError, match="cannot read the tenants file"):
        tenants.configured()


def test_lines_are_found_in_any_layout(tmp_path) -> None:
    """Whitespace around the colon, strings holding brackets and `"tenants"`, entries on one line."""
    text = (
        '{\n  "tenants"\n  :\n  [\n'
        '    {"id": "a", "huntress_conn_id": "h", "connectwise_conn_id": "c", "variable": "v", "billing_day": 1},'
        ' {"id": "b", "huntress_conn_id": "h", "connectwise_conn_id": "c", "variable": "v", "billing_day": 2,'
        ' "note": "]}\\"tenants\\": ["},\n'
        '    {"id": "c", "huntress_conn_id": "h", "connectwise_conn_id": "c", "variable": "v", "billing_day": 3}\n'
        "  ]\n}"
    )
    path = tmp_path / "tenants.json"
    path.write_text(text, encoding="utf-8")
    loaded = tenants.load(path)
    assert [(t.id, t.line) for t in loaded.tenants] == [("a", 5), ("c", 6)]
    assert loaded.problems == [
        f"{path}, line 5: tenant #2: unknown key(s) 'note'; allowed: {', '.join(tenants.KEYS)}"
    ]
