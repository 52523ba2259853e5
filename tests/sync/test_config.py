from __future__ import annotations

import pytest

from billing_sync.config import DEFAULT_PRODUCTS, ConfigError, Settings, load_settings


def test_defaults_when_variable_absent():
    s = load_settings(None)
    assert s == Settings()
    assert s.products == DEFAULT_PRODUCTS
    assert (s.invoice_source, s.billing_day, s.max_change_units, s.max_change_ratio) == (
        "reseller",
        1,
        10,
        0.5,
    )
    assert (s.allow_drop_to_zero, s.agreement_types, s.connectwise_concurrency, s.dry_run) == (
        False,
        (),
        4,
        False,
    )


def test_json_text_and_params_override():
    s = load_settings(
        '{"dry_run": false, "agreement_types": ["Managed Services"], "products": {"edr": "X"}}',
        {"dry_run": True},
    )
    assert s.dry_run is True
    assert s.agreement_types == ("Managed Services",)
    assert s.products == {"edr": "X"}


def test_param_none_keeps_variable_value():
    assert load_settings({"dry_run": True}, {"dry_run": None}).dry_run is True


@pytest.mark.parametrize(
    "raw, words",
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ({"nope": 1}, "unknown key"),
        ({"invoice_source": "both"}, "invoice_source must be one of"),
        ({"billing_day": 31}, "billing_day"),
        ({"billing_day": True}, "billing_day"),
        ({"max_change_units": -1}, "max_change_units"),
        ({"max_change_ratio": "0.5"}, "max_change_ratio"),
        ({"allow_drop_to_zero": "yes"}, "allow_drop_to_zero"),
        ({"agreement_types": "Managed"}, "agreement_types"),
        ({"connectwise_concurrency": 0}, "connectwise_concurrency"),
        ({"products": {"edr": ""}}, "products"),
        ({"products": {"edr": "X", "sat": "X"}}, "its own catalog identifier"),
        # ConnectWise conditions have no known escape: such values are refused, never escaped.
        ({"products": {"edr": 'HUNTRESS-"EDR"'}}, "products has a catalog identifier with a double quote"),
        ({"products": {"edr": "HUNTRESS\\EDR"}}, "products has a catalog identifier with .*backslash"),
        ({"agreement_types": ['Managed "Plus"']}, "agreement_types has a type name with a double quote"),
        ({"agreement_types": ["Managed\\Plus"]}, "agreement_types has a type name with .*backslash"),
    ],
)
def test_bad_values_are_named(raw, words):
    with pytest.raises(ConfigError, match=words):
        load_settings(raw)


def test_round_trip_through_dict():
    s = load_settings({"agreement_types": ["A"], "max_change_ratio": 1})
    assert load_settings(s.to_dict()) == s


def test_quote_refuses_what_conditions_cannot_carry():
    from billing_sync.connectwise import in_list, quote

    assert quote("O'Brien Managed") == '"O\'Brien Managed"'
    assert in_list(["A", "B"]) == '("A","B")'
    for bad in ('say "hi"', "back\\slash"):
        with pytest.raises(ValueError, match="cannot be quoted"):
            quote(bad)


# -- the README's configuration table is rendered from Settings --------------------------------------
def readme_configuration_table() -> str:
    """The `| key | meaning |` table under "## Configuration" in README.md, as written."""
    from tests.conftest import ROOT

    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    lines = section.split("\n## ", 1)[0].splitlines()
    start = lines.index("| key | meaning |")
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return "\n".join(table) + "\n"


def test_readme_configuration_table_is_the_rendered_settings():
    from billing_sync.config import markdown_table

    assert readme_configuration_table() == markdown_table(), (
        "README.md's configuration table drifted from Settings; paste `python -m billing_sync.config --markdown`"
    )


def test_every_setting_has_its_words_and_its_default_in_the_table():
    import dataclasses

    from billing_sync.config import markdown_table

    table = markdown_table()
    for f in dataclasses.fields(Settings):
        assert f.metadata["doc"].count("{default}") == 1, f.name
        assert f"`{f.name}`" in table, f.name


def test_the_table_prints_from_the_command_line():
    import subprocess
    import sys

    from billing_sync.config import markdown_table

    out = subprocess.run(
        [sys.executable, "-m", "billing_sync.config", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == markdown_table()
