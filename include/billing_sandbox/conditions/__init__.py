"""ConnectWise Manage `conditions` expressions: tokenizer, recursive-descent parser, evaluator.

Grammar (keywords case-insensitive; `and` binds tighter than `or`):

    expression := term ( OR term )*
    term       := factor ( AND factor )*
    factor     := "(" expression ")" | comparison
    comparison := FIELD op value | FIELD list_op "(" value ( "," value )* ")"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | LIKE | NOT LIKE | CONTAINS | NOT CONTAINS
    list_op    := IN | NOT IN
    value      := STRING | NUMBER | DATETIME | TRUE | FALSE | NULL

FIELD is a path of names joined by `/` (`company/id`). STRING is double- or single-quoted, with no
escapes: a backslash inside a string is refused (nothing public shows ConnectWise accepting
backslash escapes, so the stricter reading; text holding both quote characters cannot be written).
DATETIME is ISO 8601 in square brackets (`[2026-01-01T00:00:00Z]`; a bare date means midnight UTC;
no offset means UTC).

`compile_condition` checks every field against a `Schema` and every value against the field's
kind, then returns a predicate over API-shaped dict records. Text comparisons fold case, as the
SQL Server collation behind ConnectWise does. A NULL record value satisfies nothing except
`= null` (SQL three-valued logic, unknown counts as false), so `x != 5` skips records whose x is
null. A path through an array (`types/id`) matches when any element matches.
"""

from .compile import Schema, compile_condition
from .parse import And, Comparison, Node, Or, parse
from .tokens import (
    BOOL,
    DATETIME,
    KINDS,
    NUMBER,
    STRING,
    ConditionError,
    Predicate,
    Token,
    canonical_datetime,
    tokenize,
)

__all__ = [
    "BOOL",
    "DATETIME",
    "KINDS",
    "NUMBER",
    "STRING",
    "And",
    "Comparison",
    "ConditionError",
    "Node",
    "Or",
    "Predicate",
    "Schema",
    "Token",
    "canonical_datetime",
    "compile_condition",
    "parse",
    "tokenize",
]
