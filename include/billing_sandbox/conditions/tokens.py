"""Tokens of the conditions grammar: kinds, keywords, the tokenizer and datetime literals."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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
