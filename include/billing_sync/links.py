"""Which part of a URL an API hands back (a paging `Link`) the client may use: its path and query.

The credentials ride on every request, so where a request goes must never depend on how one parser
or another reads a link. `requests`/urllib3 and `urllib.parse` disagree on `\\`, on `@`, on tabs and
line breaks (urllib removes them), on percent-escapes in the authority and on unbalanced brackets;
comparing their opinions of a link's origin is what let `http://127.0.0.2:P\\@127.0.0.1:Q/next`
through. So no link is ever sent as it came: `relative_link` keeps only its path and query, which the
client joins to the configured base URL (scheme, host and port come from the configuration alone).

The link must be plain and unambiguous, or it is refused (ValueError naming why):
- printable ASCII of RFC 3986's URI characters only: no `\\`, no `@` (user-info) anywhere, no
  whitespace or control character, no non-ASCII (IDNA dots and fullwidth slashes), no fragment;
  every `%` starts a two-digit escape;
- either an absolute `http(s)` URL whose scheme, host and port are the base URL's (scheme and host in
  any case; the port as plain digits, or left out for the scheme's default), or a path from the root
  (`/...`, not `//...`); nothing else (no `//host`, no `http:host`, no path relative to a directory);
- the path stays under the base URL's path (the stricter reading: a ConnectWise page links to its
  own list under `/{codebase}/apis/3.0`), compared exactly, with no `.`/`..` segment (escaped ones
  included), no empty segment, and no escaped `/` or `\\` in a segment.

Imports nothing of ours.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MAX_LINK_LENGTH = 8192

# RFC 3986's unreserved and reserved characters and `%`, less `@` (user-info), `#` (a fragment,
# which no server reads) and nothing else: `\`, `"`, `<`, `>`, `^`, `` ` ``, `{`, `|`, `}`,
# whitespace, controls and non-ASCII are outside the set already.
_NOT_LINK_CHAR = re.compile(r"[^A-Za-z0-9\-._~:/?\[\]!$&'()*+,;=%]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?]*)(?P<rest>.*)", re.S)
_AUTHORITY = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[1-9][0-9]{0,4}))?")
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL as urlsplit reads it, lower-cased, the port made explicit: for
    naming a site in a message or comparing configured URLs, never for deciding where to send."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None  # a port that is no number: an origin nothing else shares
    return scheme, (parts.hostname or "").lower(), port


def relative_link(link: object, base_url: str) -> str:
    """The part of `link` under `base_url`'s path, with its query ("company/companies?pageId=5"),
    for the client to join to the base URL; ValueError (why) when the link is not plainly that."""
    if not isinstance(link, str):
        raise ValueError(f"it is {type(link).__name__}, not text")
    if not link:
        raise ValueError("it is empty")
    if len(link) > MAX_LINK_LENGTH:
        raise ValueError(f"it is longer than {MAX_LINK_LENGTH} characters")
    bad = _NOT_LINK_CHAR.search(link)
    if bad is not None:
        raise ValueError(f"it carries {bad.group()!r}{_NAMES.get(bad.group(), '')}")
    if _BAD_ESCAPE.search(link):
        raise ValueError("it carries a % that starts no two-digit escape")
    scheme, host, port = origin(base_url)
    absolute = _ABSOLUTE.fullmatch(link)
    if absolute:
        _same_origin(absolute["scheme"], absolute["authority"], (scheme, host, port))
        rest = absolute["rest"]
    elif link.startswith("/") and not link.startswith("//"):
        rest = link
    else:
        raise ValueError("it is neither an absolute http(s) URL nor a path from the root")
    path, _, query = rest.partition("?")
    if "[" in rest or "]" in rest:
        raise ValueError("it carries a bracket outside the host")
    relative = _under(path, urlsplit(base_url).path.rstrip("/")) + (f"?{query}" if query else "")
    if not relative:
        raise ValueError("it names the configured site itself, no page of it")
    return relative


_NAMES = {
    "\\": " (a backslash, which some parsers read as /)",
    "@": " (user-info: what precedes it is not the host)",
    "#": " (a fragment)",
    "\t": " (a tab, which urllib removes)",
    "\r": " (a line break, which urllib removes)",
    "\n": " (a line break, which urllib removes)",
}


def _same_origin(scheme: str, authority: str, base: tuple[str, str, int | None]) -> None:
    parts = _AUTHORITY.fullmatch(authority)
    if parts is None:
        raise ValueError("its host and port are not a plain host[:port]")
    port = int(parts["port"]) if parts["port"] else DEFAULT_PORTS.get(scheme.lower())
    host = parts["host"].lower()
    host = host[1:-1] if host.startswith("[") else host  # urlsplit gives an IPv6 host without them
    if (scheme.lower(), host, port) != base:
        raise ValueError("it leads to another scheme, host or port than the configured site")


def _under(path: str, base_path: str) -> str:
    """`path` relative to `base_path` (no leading /); ValueError when it leaves it or is ambiguous."""
    if path != base_path and not path.startswith(base_path + "/"):
        raise ValueError(f"its path is not under the configured {base_path or '/'}")
    rest = path[len(base_path) :].lstrip("/") if path != base_path else ""
    for segment in rest.split("/") if rest else ():
        plain = unquote(segment)
        if plain in ("", ".", "..") or "/" in plain or "\\" in plain:
            raise ValueError("its path has an empty, dot or escaped-slash segment")
    if "//" in path:
        raise ValueError("its path has an empty segment")
    return rest
