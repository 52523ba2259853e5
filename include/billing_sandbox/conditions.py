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

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

NUMBER, STRING, BOOL, DATETIME = "number", "string", "bool", "datetime"
KINDS = frozenset({NUMBER, STRING, BOOL, DATETIME})

KEYWORDS = frozenset({"and", "or", "not", "like", "contains", "in", "true", "false", "null"})
NEGATABLE = frozenset({"like", "contains", "in"})
ORDER_OPS = frozenset({"<", "<=", ">", ">="})


class ConditionError(ValueError):
    """A condition that cannot be parsed or does not fit the resource; `position` is 1-based."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.detail = message
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}.")


# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "(" ")" "," "op" "string" "number" "datetime" "word" "end"
    value: Any
    pos: int  # 1-based column of the token's first character
    text: str


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"\s+")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i = _SPACE.match(text, i).end()
        elif ch in "(),":
            tokens.append(Token(ch, ch, i + 1, ch))
            i += 1
        elif ch in "=!<>":
            i = _operator(text, i, tokens)
        elif ch in "\"'":
            i = _string(text, i, tokens)
        elif ch == "[":
            i = _datetime(text, i, tokens)
        elif ch.isdigit() or (ch in "-." and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
            i = _number(text, i, tokens)
        elif ch.isalpha() or ch == "_":
            m = _WORD.match(text, i)
            if m.end() < n and text[m.end()] == "/":
                raise ConditionError(f"Incomplete field path '{text[i : m.end() + 1]}'", i + 1)
            tokens.append(Token("word", m.group(), i + 1, m.group()))
            i = m.end()
        else:
            raise ConditionError(f"Unexpected character '{ch}'", i + 1)
    tokens.append(Token("end", None, n + 1, "end of input"))
    return tokens


def _operator(text: str, i: int, tokens: list[Token]) -> int:
    two = text[i : i + 2]
    if two in ("!=", "<=", ">="):
        tokens.append(Token("op", two, i + 1, two))
        return i + 2
    if two == "<>":
        raise ConditionError("Unknown operator '<>' (use !=)", i + 1)
    if two == "==":
        raise ConditionError("Unknown operator '==' (use =)", i + 1)
    if text[i] == "!":
        raise ConditionError("Unknown operator '!' (use != or not)", i + 1)
    tokens.append(Token("op", text[i], i + 1, text[i]))
    return i + 1


def _string(text: str, i: int, tokens: list[Token]) -> int:
    quote, start, j = text[i], i, i + 1
    out: list[str] = []
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            # No backslash escapes: nothing public shows ConnectWise accepting them (reference,
            # "Errors": an identifier holding a quote is to be refused up front, not escaped).
            raise ConditionError("Backslash escapes are not supported in strings", j + 1)
        if ch == quote:
            tokens.append(Token("string", "".join(out), start + 1, text[start : j + 1]))
            return j + 1
        out.append(ch)
        j += 1
    raise ConditionError(f"Unterminated string starting with {quote}", start + 1)


def _datetime(text: str, i: int, tokens: list[Token]) -> int:
    end = text.find("]", i + 1)
    if end < 0:
        raise ConditionError("Unterminated date: missing ']'", i + 1)
    raw = text[i + 1 : end].strip()
    try:
        value = canonical_datetime(raw)
    except ValueError:
        raise ConditionError(
            f"Invalid date [{raw}] (expected ISO 8601 such as [2026-01-01T00:00:00Z])", i + 1
        ) from None
    tokens.append(Token("datetime", value, i + 1, text[i : end + 1]))
    return end + 1


def _number(text: str, i: int, tokens: list[Token]) -> int:
    m = _NUMBER.match(text, i)
    if m is None:
        raise ConditionError(f"Invalid number starting with '{text[i]}'", i + 1)
    end = m.end()
    if end < len(text) and (text[end].isalnum() or text[end] in "_./"):
        bad = re.match(r"[^\s(),=!<>]+", text[i:]).group()
        raise ConditionError(f"Invalid number '{bad}'", i + 1)
    raw = m.group()
    value: int | float = int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)
    tokens.append(Token("number", value, i + 1, raw))
    return end


def canonical_datetime(raw: str) -> str:
    """ISO 8601 text → `YYYY-MM-DDTHH:MM:SSZ` in UTC (the one form records hold and compare by)."""
    raw = raw.strip()
    if not raw:
        raise ValueError("empty date")
    if len(raw) == 10:
        d = date.fromisoformat(raw)
        return f"{d.isoformat()}T00:00:00Z"
    dt = datetime.fromisoformat(raw)
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# AST and parser


@dataclass(frozen=True, slots=True)
class Comparison:
    field: str
    op: str  # "=", "!=", "<", "<=", ">", ">=", "like", "not like", "contains", "not contains", "in", "not in"
    value: Any  # scalar (None for null), or a tuple of scalars for in / not in
    value_kind: str | tuple[str, ...]  # token kind(s) of the value(s): string number datetime bool null
    pos: int
    value_pos: int


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = Comparison | And | Or


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.value.lower() == word

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ConditionError("Empty condition", 1)
        node = self.expression()
        tok = self.peek()
        if tok.kind == ")":
            raise ConditionError("Unbalanced ')'", tok.pos)
        if tok.kind != "end":
            raise ConditionError(f"Expected 'and', 'or' or end of input, found {_show(tok)}", tok.pos)
        return node

    def expression(self) -> Node:
        items = [self.term()]
        while self.keyword("or"):
            self.next()
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def term(self) -> Node:
        items = [self.factor()]
        while self.keyword("and"):
            self.next()
            items.append(self.factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def factor(self) -> Node:
        tok = self.peek()
        if tok.kind == "(":
            self.next()
            node = self.expression()
            close = self.peek()
            if close.kind != ")":
                raise ConditionError(
                    f"Missing ')' to close '(' at position {tok.pos}; found {_show(close)}", close.pos
                )
            self.next()
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        tok = self.next()
        if tok.kind != "word" or tok.value.lower() in KEYWORDS:
            raise ConditionError(f"Expected a field name, found {_show(tok)}", tok.pos)
        op = self.operator(tok)
        value_tok = self.peek()
        if op in ("in", "not in"):
            values, kinds = self.value_list(op)
            return Comparison(tok.value, op, values, kinds, tok.pos, value_tok.pos)
        value, kind = self.value(op)
        return Comparison(tok.value, op, value, kind, tok.pos, value_tok.pos)

    def operator(self, field: Token) -> str:
        tok = self.next()
        if tok.kind == "op":
            return tok.value
        word = tok.value.lower() if tok.kind == "word" else None
        if word in NEGATABLE:
            return word
        if word == "not":
            after = self.next()
            if after.kind == "word" and after.value.lower() in NEGATABLE:
                return f"not {after.value.lower()}"
            raise ConditionError(
                f"Expected like, contains or in after 'not', found {_show(after)}", after.pos
            )
        raise ConditionError(
            f"Expected an operator (= != < <= > >= like contains in not) after field '{field.value}', "
            f"found {_show(tok)}",
            tok.pos,
        )

    def value(self, op: str) -> tuple[Any, str]:
        tok = self.next()
        if tok.kind in ("string", "number", "datetime"):
            return tok.value, tok.kind
        if tok.kind == "word":
            word = tok.value.lower()
            if word in ("true", "false"):
                return word == "true", "bool"
            if word == "null":
                return None, "null"
            raise ConditionError(
                f"Expected a value after '{op}', found '{tok.value}' (quote text values)", tok.pos
            )
        if tok.kind == "(":
            raise ConditionError(
                f"A list of values is only allowed after in / not in, not after '{op}'", tok.pos
            )
        raise ConditionError(f"Expected a value after '{op}', found {_show(tok)}", tok.pos)

    def value_list(self, op: str) -> tuple[tuple[Any, ...], tuple[str, ...]]:
        tok = self.next()
        if tok.kind != "(":
            raise ConditionError(f"Expected '(' after '{op}', found {_show(tok)}", tok.pos)
        if self.peek().kind == ")":
            raise ConditionError(f"Empty list after '{op}'", self.peek().pos)
        values, kinds = [], []
        while True:
            value, kind = self.value(op)
            values.append(value)
            kinds.append(kind)
            sep = self.next()
            if sep.kind == ")":
                return tuple(values), tuple(kinds)
            if sep.kind != ",":
                raise ConditionError(
                    f"Expected ',' or ')' in the list after '{op}', found {_show(sep)}", sep.pos
                )


def _show(tok: Token) -> str:
    return "end of input" if tok.kind == "end" else f"'{tok.text}'"


def parse(text: str) -> Node:
    """Parse condition text into an AST (syntax only; fields are not checked)."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------
# Schema and compilation


class Schema:
    """The filterable fields of one resource: path → kind, and the paths that are arrays.

    Field names match case-insensitively (ConnectWise accepts `Company/ID`); `objects` are the
    path prefixes that hold objects, so `company = 5` can be told apart from an unknown field.
    """

    def __init__(self, fields: Mapping[str, str], lists: Iterable[str] = ()) -> None:
        bad = {k: v for k, v in fields.items() if v not in KINDS}
        if bad:
            raise ValueError(f"unknown kinds: {bad}")
        self.fields = dict(fields)
        self.lists = frozenset(lists)
        self._lookup = {path.lower(): path for path in self.fields}
        self.objects = {
            "/".join(path.split("/")[:i]).lower()
            for path in self.fields
            for i in range(1, path.count("/") + 1)
        }

    def resolve(self, name: str) -> str | None:
        return self._lookup.get(name.lower())

    def is_object(self, name: str) -> bool:
        return name.lower() in self.objects

    def kind(self, path: str) -> str:
        return self.fields[path]


def compile_condition(text: str | None, schema: Schema) -> Predicate | None:
    """Parse and check `text`; None for an absent or blank condition (no filter)."""
    if text is None or not text.strip():
        return None
    return _compile(parse(text), schema)


def _compile(node: Node, schema: Schema) -> Predicate:
    if isinstance(node, Comparison):
        return _compile_comparison(node, schema)
    preds = [_compile(item, schema) for item in node.items]
    return _all(preds) if isinstance(node, And) else _any(preds)


def _all(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda r: a(r) and b(r)
    return lambda r: all(p(r) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda r: a(r) or b(r)
    return lambda r: any(p(r) for p in preds)


def _compile_comparison(node: Comparison, schema: Schema) -> Predicate:
    path = schema.resolve(node.field)
    if path is None:
        if schema.is_object(node.field):
            raise ConditionError(
                f"Field '{node.field}' is an object; compare one of its fields (e.g. {node.field}/id)",
                node.pos,
            )
        raise ConditionError(f"Unknown field '{node.field}'", node.pos)
    kind = schema.kind(path)
    test = _value_test(node, path, kind)
    getter, multi = _getter(path, schema.lists)
    if multi:
        # An empty array has no element to match; it only satisfies `= null`.
        when_empty = node.op == "=" and node.value is None
        return lambda r: any(test(v) for v in vs) if (vs := getter(r)) else when_empty
    return lambda r: test(getter(r))


def _getter(path: str, lists: frozenset[str]) -> tuple[Callable[[Mapping[str, Any]], Any], bool]:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    if not any(p in lists for p in prefixes):
        return _plain_getter(parts), False
    list_at = {i for i, p in enumerate(prefixes) if p in lists}

    def multi(record: Mapping[str, Any]) -> list[Any]:
        current: list[Any] = [record]
        for i, key in enumerate(parts):
            nxt: list[Any] = []
            for item in current:
                value = item.get(key) if isinstance(item, Mapping) else None
                if i in list_at and isinstance(value, list):
                    nxt.extend(value)
                elif value is not None or i == len(parts) - 1:
                    nxt.append(value)
            current = nxt
        return current

    return multi, True


def _plain_getter(parts: list[str]) -> Callable[[Mapping[str, Any]], Any]:
    if len(parts) == 1:
        key = parts[0]
        return lambda r: r.get(key)
    if len(parts) == 2:
        a, b = parts

        def two(r: Mapping[str, Any]) -> Any:
            v = r.get(a)
            return v.get(b) if isinstance(v, Mapping) else None

        return two

    def deep(r: Mapping[str, Any]) -> Any:
        v: Any = r
        for key in parts:
            if not isinstance(v, Mapping):
                return None
            v = v.get(key)
        return v

    return deep


def _value_test(node: Comparison, path: str, kind: str) -> Callable[[Any], bool]:
    op = node.op
    if op in ("in", "not in"):
        values = frozenset(
            _coerce(v, k, node, path, kind) for v, k in zip(node.value, node.value_kind, strict=True)
        )
        if kind == STRING:
            return (
                (lambda v: isinstance(v, str) and v.casefold() in values)
                if op == "in"
                else (lambda v: isinstance(v, str) and v.casefold() not in values)
            )
        return (
            (lambda v: v is not None and v in values)
            if op == "in"
            else (lambda v: v is not None and v not in values)
        )
    if node.value is None:
        if op not in ("=", "!="):
            raise ConditionError(f"null can only be compared with = or !=, not '{op}'", node.value_pos)
        return (lambda v: v is None) if op == "=" else (lambda v: v is not None)
    if op in ("like", "not like", "contains", "not contains"):
        return _text_test(node, path, kind)
    if kind == BOOL and op in ORDER_OPS:
        raise ConditionError(f"Operator '{op}' does not apply to true/false field '{path}'", node.pos)
    value = _coerce(node.value, node.value_kind, node, path, kind)
    return _ordered_test(op, value, kind == STRING)


def _ordered_test(op: str, value: Any, fold: bool) -> Callable[[Any], bool]:
    # Only same-type record values compare; anything else (null included) is "unknown" → false.
    typ = str if fold else type(value) if isinstance(value, bool | str) else (int, float)
    norm = (lambda v: v.casefold()) if fold else (lambda v: v)
    if op == "=":
        return lambda v: isinstance(v, typ) and norm(v) == value
    if op == "!=":
        return lambda v: isinstance(v, typ) and norm(v) != value
    if op == "<":
        return lambda v: isinstance(v, typ) and norm(v) < value
    if op == "<=":
        return lambda v: isinstance(v, typ) and norm(v) <= value
    if op == ">":
        return lambda v: isinstance(v, typ) and norm(v) > value
    return lambda v: isinstance(v, typ) and norm(v) >= value


def _text_test(node: Comparison, path: str, kind: str) -> Callable[[Any], bool]:
    word = node.op.removeprefix("not ")
    if kind != STRING:
        raise ConditionError(
            f"Operator '{word}' applies to text fields only; '{path}' is {_article(kind)}", node.pos
        )
    if node.value_kind != "string":
        raise ConditionError(f"Operator '{word}' needs a quoted text value", node.value_pos)
    negate = node.op.startswith("not ")
    if word == "contains":
        needle = node.value.casefold()
        match: Callable[[str], bool] = lambda v: needle in v.casefold()  # noqa: E731
    else:
        # `%` is the only wildcard: SQL's `_` and `[...]` would make identifiers like
        # HUNTRESS_EDR match loosely, and the sync never means that.
        regex = re.compile(
            ".*".join(re.escape(part) for part in node.value.split("%")), re.IGNORECASE | re.DOTALL
        )
        match = lambda v: regex.fullmatch(v) is not None  # noqa: E731
    if negate:
        return lambda v: isinstance(v, str) and not match(v)
    return lambda v: isinstance(v, str) and match(v)


def _coerce(value: Any, value_kind: str, node: Comparison, path: str, kind: str) -> Any:
    """The condition value in the form record values of `kind` compare against."""
    if value_kind == "null":
        raise ConditionError(f"null is not allowed in the list after '{node.op}'", node.value_pos)
    if kind == NUMBER:
        if value_kind == "number":
            return value
        if value_kind == "string":
            # SQL Server converts numeric text implicitly; clients do send `id = "250"`.
            try:
                return int(value) if re.fullmatch(r"\s*-?\d+\s*", value) else float(value)
            except ValueError:
                pass
        raise ConditionError(
            f"Field '{path}' is a number; {_describe(value, value_kind)} is not", node.value_pos
        )
    if kind == STRING:
        if value_kind == "string":
            return value.casefold()
        raise ConditionError(
            f"Field '{path}' is text; {_describe(value, value_kind)} must be in quotes", node.value_pos
        )
    if kind == BOOL:
        if value_kind == "bool":
            return value
        raise ConditionError(
            f"Field '{path}' is true/false; {_describe(value, value_kind)} is not", node.value_pos
        )
    if value_kind == "datetime":
        return value
    raise ConditionError(
        f"Field '{path}' is a date; write the value in square brackets, e.g. [2026-01-01T00:00:00Z]",
        node.value_pos,
    )


def _describe(value: Any, value_kind: str) -> str:
    if value_kind == "string":
        return f'"{value}"'
    if value_kind == "bool":
        return "true" if value else "false"
    if value_kind == "datetime":
        return f"[{value}]"
    return str(value)


def _article(kind: str) -> str:
    return {NUMBER: "a number", BOOL: "a true/false field", DATETIME: "a date"}.get(kind, kind)
