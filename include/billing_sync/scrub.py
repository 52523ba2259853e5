"""Masking credentials in any text the project stores, shows or sends.

Used where a text is made (an API error, from the answer of an API that may echo the request back)
and again where it leaves (alerts). Every form a credential takes on the wire is masked: as typed,
URL-quoted (upper- or lower-case escapes), HTML- and JSON-escaped (a slash as `\\/` too), base64
(Basic auth carries `login:password` and sometimes the password alone), in a URL's user-info, and
after an `Authorization` scheme word in any case. A secret of LOOSE_SECRET_LENGTH or more is matched
in any case (an API may upper-case a GUID it echoes); a shorter one only as typed, as a whole token.
Scrub first, cut after: a secret cut in half is no longer found by its value.

An API body is walked at most MAX_DEPTH levels deep (`scrub_data`, `deeper_than`): a body nested
hundreds of levels would otherwise raise RecursionError in whatever walks or prints it.

Imports nothing of ours.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 3  # shorter values would blank ordinary words; no real credential is that short
LOOSE_SECRET_LENGTH = 8  # from this length a secret is masked even inside a longer word

Scrub = Callable[[str], str]

# No answer of either API nests half as deep (a ConnectWise record's reference's `_info` is 4 levels).
MAX_DEPTH = 32
TOO_DEEP = "…(nested too deep; not read)"
_ESCAPE = re.compile(r"%[0-9A-F]{2}")

_URL_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")
# An Authorization value: the scheme word (any case), then a credential-looking run (a digit or base64 sign).
_AUTH_VALUE = re.compile(
    r"(?i)\b(basic|bearer|token|digest)\s+(?=[A-Za-z0-9+/=._~-]*[0-9+/=])[A-Za-z0-9+/=._~-]{8,}"
)
# A header or field that carries a credential, as an API echoing a request would write it:
# `Authorization: …`, `"clientId": "…"`, `password=…`.
_NAMED_VALUE = re.compile(
    r"""(?ix)
    (?P<name>\b(?:authorization|proxy-authorization|client_?id|x-api-key|api[_-]?key|api[_-]?secret
        |password|passwd|secret|token|access_token|refresh_token)\b["']?\s*[:=]\s*)
    (?P<quote>["']?)
    (?P<value>(?:basic\s+|bearer\s+)?[^\s"',;&}]+)
    """
)
# Keys of a connection's `extra` whose values are credentials or carry them (a URL with a password).
SECRET_EXTRA_KEY = re.compile(
    r"(?i)pass|secret|token|private|key$|auth|cred|client_?id|cookie|session|url|dsn"
)


def forms(secret: str) -> set[str]:
    """The ways `secret` can appear in text: as is, quoted, escaped and base64-encoded."""
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    url_b64 = base64.urlsafe_b64encode(raw).decode()
    quoted = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    quoted |= {_ESCAPE.sub(lambda m: m.group().lower(), q) for q in quoted}  # `%2f` as well as `%2F`
    as_json = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    as_json |= {j.replace("/", "\\/") for j in as_json}  # `\/`: JSON may escape a slash
    return {
        secret,
        *quoted,
        html.escape(secret),
        html.escape(secret, quote=False),
        *as_json,
        b64,
        b64.rstrip("="),
        url_b64,
        url_b64.rstrip("="),
    }


def connection_secrets(
    login: str | None, password: str | None, extra: Mapping[str, Any] | None = None
) -> list[str]:
    """The credentials one connection holds, in the forms its clients send them."""
    login, password = login or "", password or ""
    found = [login, password, *login.split("+")]  # ConnectWise login: companyId+publicKey
    if login and password:
        found.append(f"{login}:{password}")  # Basic auth's pair, base64-encoded by `forms`
    for key, value in _flat(extra or {}):
        if SECRET_EXTRA_KEY.search(key):
            found.append(value)
    for value in list(found):
        if "://" in value:  # a URL (a Slack webhook, an SQLAlchemy URL): its password and path too
            parts = urlsplit(value)
            found += [parts.password or "", parts.path.strip("/")]
    return [s for s in found if len(s) >= MIN_SECRET_LENGTH]


def secrets_of(conn: Any) -> list[str]:
    """`connection_secrets` of an Airflow connection; an extra that does not parse counts as none."""
    try:
        extra = conn.extra_dejson
    except Exception:
        extra = None
    extra = extra if isinstance(extra, dict) else None
    found = connection_secrets(conn.login, conn.password, extra)
    typed = extra or {}
    if not conn.login and typed.get("company_id") and typed.get("public_key"):
        # A `connectwise_manage` connection (conn_settings) keeps the login's parts as fields; Basic
        # auth still sends `companyId+publicKey:privateKey`.
        found += connection_secrets(f"{typed['company_id']}+{typed['public_key']}", conn.password)
    return found


def scrubber(secrets: Iterable[str]) -> Scrub:
    """A function that masks each secret, in every form, in a text.

    Secrets shorter than LOOSE_SECRET_LENGTH are masked only as typed and as whole tokens: a public
    key "pub" must not turn "public" into "***lic", nor a company id "acme" blank "Acme Corp"; a
    long secret is masked wherever it appears, in any case. Each kind is one compiled alternation,
    longest first, so a text is read once per kind however many secrets there are.
    """
    variants: set[str] = set()
    for s in secrets:
        if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH:
            variants |= forms(s)
    ordered = sorted((v for v in variants if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)
    short = _alternation([v for v in ordered if len(v) < LOOSE_SECRET_LENGTH])
    short_re = re.compile(rf"(?<![A-Za-z0-9])(?:{short})(?![A-Za-z0-9])") if short else None
    long = sorted({v.lower() for v in ordered if len(v) >= LOOSE_SECRET_LENGTH}, key=len, reverse=True)
    # Case-insensitive by matching the lower-cased text: re.IGNORECASE would make the engine try
    # every alternative at every position (a hundred times slower on a long body).
    long_re = re.compile(_alternation(long)) if long else None
    long_any_case = re.compile(_alternation(long), re.IGNORECASE) if long else None

    def scrub(text: str) -> str:
        text = str(text)
        if long_re and long_any_case:
            text = _mask_lowered(text, long_re, long_any_case)
        if short_re:
            text = short_re.sub(MASK, text)
        text = _URL_USERINFO.sub(f"{MASK}@", text)
        text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {MASK}", text)
        return _NAMED_VALUE.sub(lambda m: f"{m.group('name')}{m.group('quote')}{MASK}", text)

    return scrub


def _alternation(literals: list[str]) -> str:
    return "|".join(re.escape(v) for v in literals)


def _mask_lowered(text: str, lowered: re.Pattern[str], any_case: re.Pattern[str]) -> str:
    """MASK over each match of `lowered` (lower-case literals) in the lower-cased `text`."""
    low = text.lower()
    if len(low) != len(text):  # a letter that lower-cases to two ("İ"): positions differ, go slow
        return any_case.sub(MASK, text)
    parts: list[str] = []
    last = 0
    for m in lowered.finditer(low):
        parts += (text[last : m.start()], MASK)
        last = m.end()
    return "".join(parts) + text[last:] if parts else text


def scrub_data(value: Any, scrub: Scrub, depth: int = MAX_DEPTH) -> Any:
    """Every string in a JSON-like value (an API's error body) scrubbed, keys included; what lies
    deeper than `depth` levels is replaced by TOO_DEEP (the walk never recurses further)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping | list | tuple) and depth <= 0:
        return TOO_DEEP
    if isinstance(value, Mapping):
        return {scrub(str(k)): scrub_data(v, scrub, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(v, scrub, depth - 1) for v in value]
    return value


def deeper_than(value: Any, depth: int = MAX_DEPTH) -> bool:
    """Whether decoded JSON nests containers more than `depth` levels (walked without recursion)."""
    containers = (dict, list, tuple)  # what JSON decodes to (an ABC check is several times slower)
    todo: list[tuple[Any, int]] = [(value, 0)] if isinstance(value, containers) else []
    while todo:
        item, level = todo.pop()
        if level >= depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        todo.extend((child, level + 1) for child in children if isinstance(child, containers))
    return False


def cut(text: str, limit: int) -> str:
    """At most `limit` characters; scrub before cutting, never after."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flat(extra: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    """(key path, string value) of a connection extra, nested objects included."""
    for key, value in extra.items():
        path = f"{prefix}{key}"
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, Mapping):
            yield from _flat(value, f"{path}.")
