"""A paging link the API hands back never sends the credentials anywhere but the configured site.

The ConnectWise sandbox's `next_link` fault (an attacker-controlled answer) serves known
parser-differential forms of a link to "elsewhere": recorders listening on 127.0.0.2 and on another
port of 127.0.0.1, which count every TCP connection they accept. Each form must be refused with a
clear ApiError before anything is sent, and the recorders must accept nothing. Honest links (the
real one, a relative one, an explicit same-origin one) keep working.

Forms a header cannot carry (CR, LF, non-ASCII) are checked on `ApiSession.link` directly.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from billing_sync.connectwise import ConnectWiseClient
from billing_sync.errors import ApiError
from billing_sync.http import ApiSession
from tests.helpers.sandbox_setup import small_scenario
from tests.proof.helpers import set_faults

COMPANIES = 1200  # two pages of 1,000: the first one carries a rel="next" link

# `<R>`/`<R2>`: the recorders' ports (filled here); `{host}`, `{port}`, `{path}`, `{query}`: the real
# next link's parts (filled by the sandbox). Each would reach a recorder, or another host, if followed.
HOSTILE_LINKS = [
    "http://127.0.0.2:<R>\\@{host}:{port}{path}?{query}",  # backslash before @: urlsplit and urllib3 disagree
    "http://127.0.0.2:<R>\\\\@{host}:{port}{path}?{query}",
    "http://127.0.0.2:<R>\\{path}?{query}",
    "http://{host}:{port}@127.0.0.2:<R>{path}?{query}",  # userinfo that looks like the site
    "http://127.0.0.2:<R>@{host}:{port}{path}?{query}",
    "http://user:pass@{host}:{port}{path}?{query}",  # userinfo on the site itself
    "http://127.0.0.2:<R>\t@{host}:{port}{path}?{query}",  # tabs: urllib strips them
    "http://127.0.0.\t2:<R>{path}?{query}",
    "http://{host}:{port}\t{path}?{query}",
    "http://127.0.0.2:<R> @{host}:{port}{path}?{query}",
    " http://127.0.0.2:<R>{path}?{query}",
    "http:\\\\127.0.0.2:<R>{path}?{query}",  # backslashes for slashes
    "http:/\\127.0.0.2:<R>{path}?{query}",
    "\\\\127.0.0.2:<R>{path}?{query}",
    "/\\127.0.0.2:<R>{path}?{query}",
    "//127.0.0.2:<R>{path}?{query}",  # authority-relative
    "///127.0.0.2:<R>{path}?{query}",
    "http:127.0.0.2:<R>{path}?{query}",
    "http:/127.0.0.2:<R>{path}?{query}",
    "http://127.0.0.2:<R>%2f@{host}:{port}{path}?{query}",  # percent-encoded delimiters in the authority
    "http://{host}:{port}%2f@127.0.0.2:<R>{path}?{query}",
    "http://127.0.0.2:<R>%5c@{host}:{port}{path}?{query}",
    "http://127.0.0.2:<R>%40{host}:{port}{path}?{query}",
    "http://127.0.0.2%3a<R>{path}?{query}",
    "http://127.0.0.2:<R>#@{host}:{port}{path}?{query}",  # fragment and query before the @
    "http://127.0.0.2:<R>?@{host}:{port}{path}",
    "http://127.0.0.2:<R>/{path}?{query}",  # plainly elsewhere
    "http://127.0.0.1:<R2>{path}?{query}",  # the same host, another port
    "http://{host}:<R2>{path}?{query}",
    "http://{host}{path}?{query}",  # the default port
    "https://{host}:{port}{path}?{query}",  # another scheme
    "ftp://{host}:{port}{path}?{query}",
    "HTTP://127.0.0.2:<R>{path}?{query}",  # upper/mixed-case scheme
    "HtTp://127.0.0.2:<R>{path}?{query}",
    "http://localhost:{port}{path}?{query}",  # another name for the site is another host
    "http://0x7f000002:<R>{path}?{query}",  # numeric spellings of 127.0.0.2
    "http://2130706434:<R>{path}?{query}",
    "http://127.2:<R>{path}?{query}",
    "http://0177.0.0.2:<R>{path}?{query}",
    "http://[::ffff:127.0.0.2]:<R>{path}?{query}",  # IPv6 brackets, matched and not
    "http://[127.0.0.2:<R>]{path}?{query}",
    "http://[::ffff:127.0.0.2:<R>{path}?{query}",
    "http://127.0.0.2]:<R>{path}?{query}",
    "http://{host}:{port}:<R>{path}?{query}",  # two ports
    "http://{host}:0{port}{path}?{query}",  # the same port, spelled another way
    "http://{host}:+{port}{path}?{query}",
    "http://{host}.:{port}{path}?{query}",  # a trailing dot
    "{path}/../../../../x?{query}",  # leaving the API's path
    "{path}/%2e%2e/%2E%2E/x?{query}",
    "/other{path}?{query}",
    "http://{host}:{port}/elsewhere?{query}",
    "{path}?{query}#frag@127.0.0.2:<R>",
    "javascript:alert(1)",
    "data:text/plain,x",
    "next?{query}",  # relative to a directory nobody named
    "",
]

# Forms no HTTP header carries (CR and LF end a header line; a header is Latin-1), but a JSON body
# can: checked on the parser itself.
DIRECT_LINKS = [
    "http://127.0.0.2:9\r\n@127.0.0.1:8000/v4_6_release/apis/3.0/x",
    "http://127.0.0.2:9\n@127.0.0.1:8000/v4_6_release/apis/3.0/x",
    "http://127.0.0.1:8000\r/v4_6_release/apis/3.0/x",
    "http://127.0.0.1:8000/v4_6_release/apis/3.0/x\nHost: 127.0.0.2",
    "http://127.0.0.1:8000/v4_6_release/apis/3.0/x\x00",
    "http://127.0.0.1:8000/v4_6_release/apis/3.0/x\x7f",
    "http://127\u30020\u30020\u30022:9/v4_6_release/apis/3.0/x",  # ideographic full stops (IDNA dots)
    "http://127.0.0.1:8000\uff0f@127.0.0.2:9/v4_6_release/apis/3.0/x",  # fullwidth solidus
    "http://127.0.0.1:8000/v4_6_release/apis/3.0/x\u2028",
    "http://\u0031\u0032\u0037.0.0.1:\u0668\u0660\u0660\u0660/v4_6_release/apis/3.0/x",  # Arabic-Indic digits
]

HONEST_LINKS = [None, "{path}?{query}", "{scheme}://{host}:{port}{path}?{query}"]


class Recorder:
    """A loopback listener that counts the TCP connections it accepts (and answers `[]` to any
    request, so a client that was fooled succeeds quietly rather than failing loudly)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLink: \r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\n[]"
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def recorders() -> Iterator[tuple[Recorder, Recorder]]:
    elsewhere, other_port = Recorder("127.0.0.2"), Recorder("127.0.0.1")
    yield elsewhere, other_port
    elsewhere.close()
    other_port.close()


def test_no_hostile_paging_link_sends_anything(sandbox_factory, monkeypatch, recorders):
    elsewhere, other_port = recorders
    data = small_scenario(companies=COMPANIES)
    sb = sandbox_factory(data)
    for key, value in sb.connections(connectwise_extra={"max_retries": 1}).items():
        monkeypatch.setenv(key, value)
    cw = data["connectwise"]
    secrets = [
        cw["private_key"],
        cw["client_id"],
        base64.b64encode(f"{cw['company_id']}+{cw['public_key']}:{cw['private_key']}".encode()).decode(),
    ]
    client = ConnectWiseClient.from_connection()

    outcomes: dict[str, str] = {}
    for form in HOSTILE_LINKS:
        link = form.replace("<R>", str(elsewhere.port)).replace("<R2>", str(other_port.port))
        set_faults(sb.connectwise_url, next_link=link)
        try:
            client.companies()
            outcomes[form] = "followed"
        except ApiError as exc:
            text = str(exc)
            leaked = [s for s in secrets if s in text]
            fine = text.startswith("ConnectWise") and "refused" in text and "nothing sent" in text
            outcomes[form] = "refused" if fine and not leaked else f"wrong error: {text[:200]!r}"
        except Exception as exc:  # noqa: BLE001 (a crash is an outcome to report with the others)
            outcomes[form] = f"crashed: {type(exc).__name__}"
    not_refused = {form: what for form, what in outcomes.items() if what != "refused"}
    reached = elsewhere.accepted + other_port.accepted
    print(f"\n{len(HOSTILE_LINKS)} links tried, {reached} requests reached the recorder")
    assert reached == 0, f"credentials sent elsewhere: {elsewhere.received[:300]!r}; {not_refused}"
    assert not_refused == {}

    for honest in HONEST_LINKS:
        set_faults(sb.connectwise_url, next_link=honest)
        assert len(client.companies()) == COMPANIES, f"the honest link {honest!r} is followed"
    assert elsewhere.accepted + other_port.accepted == 0


def test_what_no_header_can_carry_is_refused_by_the_parser_too():
    api = ApiSession("ConnectWise", requests.Session, "http://127.0.0.1:8000/v4_6_release/apis/3.0")
    for link in DIRECT_LINKS:
        with pytest.raises(ApiError, match="refused"):
            api.link(link)
    assert api.link("http://127.0.0.1:8000/v4_6_release/apis/3.0/x?page=2") == "x?page=2"
    print(f"\n{len(DIRECT_LINKS)} more links refused by the parser itself")


def test_only_the_path_under_the_base_and_the_query_are_kept():
    api = ApiSession("ConnectWise", requests.Session, "https://Api-NA.example.net/v4_6_release/apis/3.0/")
    base = "https://api-na.example.net:443/v4_6_release/apis/3.0"
    assert api.link(f"{base}/company/companies?pageId=5&pageSize=1000") == (
        "company/companies?pageId=5&pageSize=1000"
    )
    assert api.link("HTTPS://API-NA.EXAMPLE.NET/v4_6_release/apis/3.0/a/b") == "a/b"
    assert api.link("/v4_6_release/apis/3.0/a?conditions=name%20like%20%22x%25%22") == (
        "a?conditions=name%20like%20%22x%25%22"
    )
    # Scheme, host and port come from the configuration alone, as configured.
    assert api.url(api.link(f"{base}/a?b=1")) == "https://Api-NA.example.net/v4_6_release/apis/3.0/a?b=1"
    for outside in ("/v4_6_release/apis/3.01/a", "/v4_6_release/apis/a", "/V4_6_release/apis/3.0/a"):
        with pytest.raises(ApiError, match="refused"):
            api.link(outside)
    with pytest.raises(ApiError, match="not a path"):
        api.url("https://api-na.example.net/v4_6_release/apis/3.0/a")  # links go through link()
