from __future__ import annotations

import pytest

from billing_sync.config import DEFAULT_PRODUCTS, Settings, load_settings
from billing_sync.errors import ConfigError


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
    from billing_sync.config import markdown_table

    table = markdown_table()
    for name, info in Settings.model_fields.items():
        assert str(info.description).count("{default}") == 1, name
        assert f"`{name}`" in table, name


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


# -- the model: bounds, list products, powers (issue 21 §1) -----------------------------------------
@pytest.mark.parametrize(
    "key, low, high",
    [("billing_day", 1, 28), ("connectwise_concurrency", 1, 32), ("max_change_units", 0, None)],
)
def test_bounds_are_inclusive_and_named(key, low, high):
    assert getattr(load_settings({key: low}), key) == low
    with pytest.raises(ConfigError, match=rf"huntress_cw_billing_config\.{key} must be .*\(got {low - 1}\)"):
        load_settings({key: low - 1})
    if high is not None:
        assert getattr(load_settings({key: high}), key) == high
        with pytest.raises(ConfigError, match=f"{key} must be an integer from {low} to {high}"):
            load_settings({key: high + 1})


def test_lax_conversions_are_refused():
    # The Variable is JSON an operator wrote: "4" or 1 for true is a mistake, not a value.
    for raw in ({"connectwise_concurrency": "4"}, {"dry_run": 1}, {"max_change_ratio": True}):
        with pytest.raises(ConfigError, match=next(iter(raw))):
            load_settings(raw)
    assert load_settings({"max_change_ratio": 1}).max_change_ratio == 1.0
    # Python's json takes Infinity and NaN; neither is a ratio (nor JSON the run could record).
    for text in ('{"max_change_ratio": Infinity}', '{"max_change_ratio": NaN}'):
        with pytest.raises(ConfigError, match="max_change_ratio must be a non-negative number"):
            load_settings(text)


def test_every_bad_key_is_named_in_one_message():
    with pytest.raises(ConfigError) as caught:
        load_settings({"billing_day": 0, "dry_run": "no", "zzz": 1})
    text = str(caught.value)
    assert "unknown key(s) ['zzz']" in text
    assert "billing_day must be an integer from 1 to 28" in text
    assert "dry_run must be true or false" in text


def test_direct_construction_validates_and_the_model_is_frozen():
    with pytest.raises(ConfigError, match="billing_day"):
        Settings(billing_day=29)
    s = Settings(agreement_types=("A",))
    with pytest.raises(Exception, match="frozen"):
        s.dry_run = True  # type: ignore[misc]


def test_a_long_bad_value_is_shortened_in_the_message():
    with pytest.raises(ConfigError) as caught:
        load_settings({"invoice_source": "x" * 500})
    assert len(str(caught.value)) < 200


def test_products_take_a_list_of_catalog_identifiers():
    s = load_settings({"products": {"edr": ["HUNTRESS-EDR", "HUNTRESS-EDR-INFO"], "sat": "HUNTRESS-SAT"}})
    assert s.catalog_items == {"edr": ("HUNTRESS-EDR", "HUNTRESS-EDR-INFO"), "sat": ("HUNTRESS-SAT",)}
    assert s.to_dict()["products"] == {"edr": ["HUNTRESS-EDR", "HUNTRESS-EDR-INFO"], "sat": "HUNTRESS-SAT"}
    assert load_settings(s.to_dict()) == s
    assert Settings().catalog_items == {p: (i,) for p, i in DEFAULT_PRODUCTS.items()}


@pytest.mark.parametrize(
    "products, words",
    [
        ({"edr": []}, "non-empty list"),
        ({"edr": ["A", ""]}, "none empty"),
        ({"edr": ["A", 3]}, "catalog identifiers"),
        ({"edr": ["A", "A"]}, "lists a catalog identifier twice for edr"),
        ({"edr": ["A", "B"], "sat": "B"}, r"its own catalog identifier \(edr, sat share one\)"),
        ({"edr": ["A", 'B"']}, "double quote"),
        ({"": "A"}, "product names"),
        (["edr"], "must map Huntress product names"),
    ],
)
def test_bad_list_products_are_named(products, words):
    with pytest.raises(ConfigError, match=rf"huntress_cw_billing_config\.products .*{words}"):
        load_settings({"products": products})


def test_powers_map_areas_to_roles():
    assert Settings().powers == {}
    s = load_settings({"powers": {"settings": [" Billing Admin "], "quarantine": ["Op", "Desk"]}})
    assert s.powers == {"settings": ("Billing Admin",), "quarantine": ("Op", "Desk")}
    assert s.to_dict()["powers"] == {"settings": ["Billing Admin"], "quarantine": ["Op", "Desk"]}
    assert load_settings(s.to_dict()) == s


@pytest.mark.parametrize(
    "powers, words",
    [
        ({"admin": ["Op"]}, r"unknown area\(s\) \['admin'\]; the areas are read, quarantine, mappings"),
        ({"apply": "Op"}, "apply must be a list of Airflow role names"),
        ({"apply": [""]}, "none empty"),
        ({"apply": []}, "apply must name at least one role"),
        (["read"], "must map areas"),
    ],
)
def test_bad_powers_are_named(powers, words):
    with pytest.raises(ConfigError, match=rf"huntress_cw_billing_config\.powers .*{words}"):
        load_settings({"powers": powers})


def test_the_table_names_the_new_fields():
    from billing_sync.config import markdown_table

    table = markdown_table()
    assert "| `powers` |" in table and "[`{}`]" in table
    assert "or a list of them" in table


def test_the_error_carries_each_bad_key_for_a_form():
    from billing_sync.config import SettingsError

    with pytest.raises(SettingsError) as caught:
        load_settings({"billing_day": 0, "products": {"edr": ""}, "zzz": 1})
    assert set(caught.value.problems) == {"", "billing_day", "products"}
    assert caught.value.problems["billing_day"] == "must be an integer from 1 to 28"


def test_the_json_form_is_typed_with_every_field_of_the_model():
    """`SettingsDict` (what a run reference and billing_runs.settings carry) names exactly the
    model's fields, so mypy checks each reader of the JSON form against the settings there are."""
    from billing_sync.config import SettingsDict

    assert list(SettingsDict.__annotations__) == list(Settings.model_fields)
    assert set(Settings().to_dict()) == set(SettingsDict.__annotations__)
