"""The ConnectWise conditions parser and evaluator, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from billing_sandbox.conditions import (
    BOOL,
    DATETIME,
    NUMBER,
    STRING,
    And,
    Comparison,
    ConditionError,
    Or,
    Schema,
    canonical_datetime,
    compile_condition,
    parse,
    tokenize,
)

SCHEMA = Schema(
    {
        "id": NUMBER,
        "name": STRING,
        "identifier": STRING,
        "quantity": NUMBER,
        "price": NUMBER,
        "activeFlag": BOOL,
        "startDate": DATETIME,
        "cancelledDate": DATETIME,
        "company/id": NUMBER,
        "company/name": STRING,
        "company/site/name": STRING,
        "types/id": NUMBER,
        "types/name": STRING,
    },
    lists={"types"},
)

RECORDS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "Acme Corp",
        "identifier": "HUNTRESS-EDR",
        "quantity": 38,
        "price": 5.5,
        "activeFlag": True,
        "startDate": "2025-01-01T00:00:00Z",
        "company": {"id": 250, "name": "Acme", "site": {"name": "Main"}},
        "types": [{"id": 1, "name": "Client"}, {"id": 4, "name": "Partner"}],
    },
    {
        "id": 2,
        "name": 'O\'Brien "Quoted" Ltd',
        "identifier": "HUNTRESS_ITDR",
        "quantity": 0,
        "price": 2,
        "activeFlag": False,
        "startDate": "2026-06-15T12:30:00Z",
        "cancelledDate": "2026-07-01T00:00:00Z",
        "company": {"id": 251, "name": "Brien"},
        "types": [{"id": 2, "name": "Prospect"}],
    },
    {
        "id": 3,
        "name": "100% Managed (EU)",
        "identifier": "huntress-sat",
        "quantity": 12.5,
        "activeFlag": True,
        "company": {"id": 250, "name": "Acme"},
        "types": [],
    },
    {"id": 4, "name": "café", "identifier": "OTHER", "quantity": None, "company": None},
]


def ids(condition: str) -> list[int]:
    predicate = compile_condition(condition, SCHEMA)
    assert predicate is not None
    return [r["id"] for r in RECORDS if predicate(r)]


# -- tokens and syntax ------------------------------------------------------------------------


def test_tokenize_kinds_and_positions() -> None:
    tokens = tokenize('company/id >= 250 AND name like "A%" or d = [2026-01-01]')
    assert [(t.kind, t.value, t.pos) for t in tokens] == [
        ("word", "company/id", 1),
        ("op", ">=", 12),
        ("number", 250, 15),
        ("word", "AND", 19),
        ("word", "name", 23),
        ("word", "like", 28),
        ("string", "A%", 33),
        ("word", "or", 38),
        ("word", "d", 41),
        ("op", "=", 43),
        ("datetime", "2026-01-01T00:00:00Z", 45),
        ("end", None, 57),
    ]


def test_strings_take_the_other_quote_but_no_backslash_escapes() -> None:
    assert tokenize("'a \"b\" c'")[0].value == 'a "b" c'
    assert tokenize('"it\'s"')[0].value == "it's"
    # Nothing public shows ConnectWise accepting backslash escapes: the sandbox refuses them.
    for text, position in ((r'"say \"hi\""', 6), (r"'O\'Brien'", 3), (r'"a\\b"', 3), (r'"C:\temp"', 4)):
        with pytest.raises(ConditionError, match="Backslash escapes are not supported") as caught:
            tokenize(text)
        assert caught.value.position == position


def test_numbers() -> None:
    values = [t.value for t in tokenize("1 -2 3.5 -0.25 1e3 .5")[:-1]]
    assert values == [1, -2, 3.5, -0.25, 1000.0, 0.5]
    assert isinstance(values[0], int)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01", "2026-01-01T00:00:00Z"),
        ("2026-01-01T05:00:00+05:00", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00.123Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01 08:30:00", "2026-01-01T08:30:00Z"),
    ],
)
def test_canonical_datetime(raw: str, expected: str) -> None:
    assert canonical_datetime(raw) == expected


def test_and_binds_tighter_than_or() -> None:
    tree = parse("id = 1 or id = 2 and name = 'x'")
    assert isinstance(tree, Or)
    assert isinstance(tree.items[0], Comparison)
    assert isinstance(tree.items[1], And)
    assert [c.field for c in tree.items[1].items] == ["id", "name"]


def test_parentheses_override_precedence() -> None:
    tree = parse("(id = 1 or id = 2) and name = 'x'")
    assert isinstance(tree, And)
    assert isinstance(tree.items[0], Or)


def test_keywords_are_case_insensitive() -> None:
    tree = parse('a NOT LIKE "x" And b In (1, 2) OR c Not Contains "y" AND d = TRUE or e = NULL')
    ops = [c.op for part in tree.items for c in (part.items if isinstance(part, And) else [part])]
    assert ops == ["not like", "in", "not contains", "=", "="]


def test_chains_flatten() -> None:
    tree = parse("id = 1 and id = 2 and id = 3")
    assert isinstance(tree, And) and len(tree.items) == 3


# -- evaluation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("id = 1", [1]),
        ("id != 1", [2, 3, 4]),
        ("quantity < 12.5", [2]),
        ("quantity <= 12.5", [2, 3]),
        ("quantity > 0", [1, 3]),
        ("quantity >= 0", [1, 2, 3]),
        ("quantity != 38", [2, 3]),  # null quantity (id 4) matches nothing but `= null`
        ("quantity = null", [4]),
        ("quantity != null", [1, 2, 3]),
        ("price = 2", [2]),
        ('quantity = "38"', [1]),  # numeric text against a number field, as SQL Server converts
        ('name = "acme corp"', [1]),  # text compares case-insensitively
        ('name != "ACME CORP"', [2, 3, 4]),
        ("name = 'CAFÉ'", [4]),
        ('name < "B"', [3, 1]),
        ('name like "acme%"', [1]),
        ('name like "%corp"', [1]),
        ('name like "%BRIEN%"', [2]),
        ('name like "Acme Corp"', [1]),
        ('name like "100% Managed (EU)"', [3]),  # regex characters are literal
        ('identifier like "HUNTRESS_%"', [2]),  # `_` is not a wildcard
        ('identifier like "huntress-%"', [1, 3]),
        ('name not like "%corp"', [2, 3, 4]),
        ('name contains "QUOTED"', [2]),
        ('name not contains "e"', [4]),  # "café": é is not e
        ('name not contains "CORP"', [2, 3, 4]),
        ('identifier in ("huntress-edr", "OTHER")', [1, 4]),
        ('identifier not in ("huntress-edr", "OTHER")', [2, 3]),
        ("id in (1, 3)", [1, 3]),
        ("id not in (1, 3)", [2, 4]),
        ("activeFlag = true", [1, 3]),
        ("activeFlag = false", [2]),
        ("activeFlag != true", [2]),
        ("activeFlag = null", [4]),
        ("startDate = [2025-01-01T00:00:00Z]", [1]),
        ("startDate > [2025-01-01]", [2]),
        ("startDate < [2026-06-15T14:30:00+02:00]", [1]),
        ("startDate <= [2026-06-15T14:30:00+02:00]", [1, 2]),
        ("startDate >= [2025-01-01T00:00:00Z]", [1, 2]),
        ("cancelledDate = null", [1, 3, 4]),
        ("cancelledDate = null or cancelledDate > [2026-06-30]", [1, 2, 3, 4]),
        ("startDate in ([2025-01-01], [2030-01-01])", [1]),
        ("company/id = 250", [1, 3]),
        ('company/name = "acme" and quantity > 20', [1]),
        ("company/id = null", [4]),
        ('company/site/name = "main"', [1]),
        ("company/site/name = null", [2, 3, 4]),
        ("types/id = 4", [1]),
        ('types/name in ("prospect", "partner")', [1, 2]),
        ("types/id = null", [3, 4]),
        ("types/id != 1", [1, 2]),  # any element that is not 1
        ("id = 1 or id = 2 and quantity > 0", [1]),
        ("(id = 1 or id = 2) and quantity >= 0", [1, 2]),
        (
            "id = 1 OR (id = 2 AND quantity = 0) OR (id = 3 and (quantity > 100 or activeFlag = true))",
            [1, 2, 3],
        ),
        ("((id = 4))", [4]),
        ('Company/ID = 251 and NAME like "o\'%"', [2]),  # field names are case-insensitive
        ('name like "O\'Brien %"', [2]),
        ("name contains '\"Quoted\"'", [2]),
        ("quantity > -1 and quantity < 1e2", [1, 2, 3]),
    ],
)
def test_evaluation(condition: str, expected: list[int]) -> None:
    assert sorted(ids(condition)) == sorted(expected)


def test_blank_condition_is_no_filter() -> None:
    assert compile_condition(None, SCHEMA) is None
    assert compile_condition("   ", SCHEMA) is None


def test_records_of_the_wrong_type_never_match() -> None:
    predicate = compile_condition("quantity > 1", SCHEMA)
    assert predicate is not None
    assert predicate({"quantity": "40"}) is False
    assert predicate({}) is False


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "message", "position"),
    [
        ("", "Empty condition", 1),
        ('name = "abc', "Unterminated string", 8),
        ("(id = 1", "Missing ')'", 8),
        ("id = 1)", "Unbalanced ')'", 7),
        ("id = 1 id = 2", "Expected 'and', 'or' or end of input, found 'id'", 8),
        ("id 1", "Expected an operator", 4),
        ("id", "Expected an operator", 3),
        ("id <> 1", "Unknown operator '<>'", 4),
        ("id == 1", "Unknown operator '=='", 4),
        ("id ! 1", "Unknown operator '!'", 4),
        ("id not = 1", "Expected like, contains or in after 'not'", 8),
        ("id =", "Expected a value after '=', found end of input", 5),
        ("name = abc", "found 'abc' (quote text values)", 8),
        ("id in 1", "Expected '(' after 'in'", 7),
        ("id in ()", "Empty list after 'in'", 8),
        ("id in (1 2)", "Expected ',' or ')'", 10),
        ("id in (1, null)", "null is not allowed", 7),
        ("id = (1)", "A list of values is only allowed after in", 6),
        ("startDate > [2026-13-01]", "Invalid date [2026-13-01]", 13),
        ("startDate > [2026-01-01", "Unterminated date", 13),
        ("id = 12abc", "Invalid number '12abc'", 6),
        ("id = 1 and", "Expected a field name, found end of input", 11),
        ("and id = 1", "Expected a field name, found 'and'", 1),
        ("company/ = 1", "Incomplete field path 'company/'", 1),
        ("id = 1 # x", "Unexpected character '#'", 8),
        (r'name = "O\"Brien"', "Backslash escapes are not supported", 10),
        ("nosuch = 1", "Unknown field 'nosuch'", 1),
        ("company/nosuch = 1", "Unknown field 'company/nosuch'", 1),
        ("company = 250", "Field 'company' is an object", 1),
        ("quantity < null", "null can only be compared with = or !=", 12),
        ('quantity like "1%"', "Operator 'like' applies to text fields only; 'quantity' is a number", 1),
        ('activeFlag contains "t"', "applies to text fields only", 1),
        ("name like 5", "Operator 'like' needs a quoted text value", 11),
        ("activeFlag > true", "Operator '>' does not apply to true/false field 'activeFlag'", 1),
        ("activeFlag = 1", "Field 'activeFlag' is true/false; 1 is not", 14),
        ('quantity = "many"', "Field 'quantity' is a number; \"many\" is not", 12),
        ("name = 5", "Field 'name' is text; 5 must be in quotes", 8),
        ("name = true", "Field 'name' is text; true must be in quotes", 8),
        ('startDate > "2026-01-01"', "Field 'startDate' is a date; write the value in square brackets", 13),
        ("id = [2026-01-01]", "Field 'id' is a number; [2026-01-01T00:00:00Z] is not", 6),
    ],
)
def test_malformed_conditions_name_the_problem_and_where(condition: str, message: str, position: int) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(condition, SCHEMA) if condition else parse(condition)
    assert message in caught.value.detail
    assert caught.value.position == position
    assert str(caught.value).endswith(f"at position {position}.")


def test_schema_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError):
        Schema({"x": "decimal"})


def test_compiled_predicate_is_fast_over_20k_records() -> None:
    predicate = compile_condition(
        'product/identifier in ("HUNTRESS-EDR", "HUNTRESS-ITDR") and (cancelledDate = null or '
        "cancelledDate > [2026-11-01]) and quantity >= 0",
        Schema(
            {"product/identifier": STRING, "cancelledDate": DATETIME, "quantity": NUMBER},
        ),
    )
    assert predicate is not None
    records = [
        {
            "product": {"identifier": ("HUNTRESS-EDR", "HUNTRESS-SAT", "huntress-itdr")[i % 3]},
            "quantity": i % 40,
            **({"cancelledDate": "2026-10-01T00:00:00Z"} if i % 5 == 0 else {}),
        }
        for i in range(20_000)
    ]
    matched = sum(1 for r in records if predicate(r))
    assert matched == sum(1 for i in range(20_000) if i % 3 != 1 and i % 5 != 0)
