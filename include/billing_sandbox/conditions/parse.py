"""The conditions AST and its recursive-descent parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .tokens import KEYWORDS, NEGATABLE, ConditionError, Token, tokenize


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
