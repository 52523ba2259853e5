"""What both API clients share: sessions from HttpHook, rate limiting, retries, JSON decoding.

Retry policy: 429, 5xx, dropped connections, timeouts and 2xx bodies that are not JSON are retried
with exponential backoff (honouring `Retry-After` when the server sends it); any other 4xx fails at
once. With a rate limiter and `RetryPolicy.max_rate_limit_wait` set (Huntress), a 429 instead means
"the window is full now": the limiter waits until the oldest request start it knows leaves the
window, however many 429s that takes, until the waits for one request add up past the bound.
An API may name more transient statuses (`retry_status`: ConnectWise adds its 409). Every error
message names the API and the endpoint, never the credentials: requests carries them in headers.
Every ApiError made here is made by `_error`, which scrubs its message and body of the
connection's credentials (an API may echo the request back, in a body or a header such as
`Content-Type`), and `request`/`link` scrub whatever ApiError leaves them once more, so a new raise
cannot forget. A retried problem is scrubbed before it is logged.

Credentials go only to the configured site: a URL an API hands back (a paging `Link`) is never sent
as it came; `link` keeps its path (which must lie under the base URL's path) and query, refusing
anything ambiguous (links.py), and `url` joins that to the configured base URL. Redirects are never
followed (requests would carry the `clientId` header, which it does not know for a credential, to
any host). A body larger than `max_body_bytes`, or JSON nested deeper than scrub.MAX_DEPTH, is an
ApiError, never a crash; an error body is kept to that depth.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import requests

from .errors import CREDENTIAL_STATUSES, ApiError, CredentialsError
from .links import origin, relative_link
from .scrub import MAX_DEPTH, Scrub, cut, deeper_than, scrub_data, scrubber

if TYPE_CHECKING:  # the counts' plain form is a run result's; only its type is needed here
    from . import results

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# The largest answer read: a ConnectWise page of 1,000 additions is about 0.5 MB, a Huntress page
# of 500 organizations less; far beyond that is a broken or hostile server, not data.
MAX_BODY_BYTES = 64 * 1024 * 1024


class _Start(NamedTuple):
    """One request start the limiter counts: on its own clock, and as wall-clock seconds."""

    mono: float
    wall: float


class SlidingWindowLimiter:
    """At most `limit` request starts in any rolling `window` seconds (thread-safe).

    Huntress counts requests on a sliding 60 s window; a small `margin` keeps network jitter from
    pushing request 61 into the server's window.

    The window is per account, and each task builds its own limiter: `seed` hands it the starts
    earlier tasks left (wall-clock seconds, which other processes and machines share), and `starts`
    reads its own back for the next one. A start keeps the wall-clock stamp it came with, so what
    was seeded reads back unchanged and a store can merge by value.
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        margin: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.limit, self.window, self.margin = limit, window, margin
        self._starts: deque[_Start] = deque()
        self._lock = threading.Lock()
        self._clock, self._sleep, self._wall_clock = clock, sleep, wall_clock

    @property
    def span(self) -> float:
        """How long a start counts: the window and the margin."""
        return self.window + self.margin

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._expire()
                if len(self._starts) < self.limit:
                    self._starts.append(self._now(now))
                    return
                wait = self._starts[0].mono + self.span - now
            self._sleep(max(wait, 0.01))

    def rate_limited(self) -> float:
        """The server refused a request with 429: take its window as full now.

        A real Huntress 429 may carry neither `Retry-After` nor the call-limit headers, so the only
        safe reading is that the window holds `limit` starts. Starts we did not make are stamped now
        (the safe guess), so the next slot opens when the oldest start we know leaves the window,
        or after a full window when we know none. Returns that wait in seconds.
        """
        with self._lock:
            now = self._expire()
            self._starts.extend([self._now(now)] * max(self.limit - len(self._starts), 0))
            return max(self._starts[0].mono + self.span - now, 0.0)

    def observe(self, server_limit: int, remaining: int) -> None:
        """Count requests the server reports beyond ours: the window is per account, so another task
        of the run (the invoice sensor) or another tool spent them, and they fill our window too."""
        if server_limit != self.limit:
            return  # the server enforces another limit: its count says nothing about ours
        with self._lock:
            now = self._expire()
            foreign = self.limit - remaining - len(self._starts)
            # When they were made is unknown; stamped now, they leave our window last (the safe guess).
            self._starts.extend([self._now(now)] * max(foreign, 0))

    def seed(self, stamps: Iterable[float]) -> None:
        """Count request starts made elsewhere (wall-clock seconds), e.g. by the account's earlier
        tasks. A stamp already counted is not counted again, so seeding twice changes nothing; one
        in the future (another machine's clock ahead of ours) counts from now."""
        with self._lock:
            now, wall = self._clock(), self._wall_clock()
            known = Counter(s.wall for s in self._starts)
            for stamp, count in Counter(stamps).items():
                # mono = now_mono - (now_wall - stamp): the start's age is the same on both clocks.
                mono = now - max(wall - stamp, 0.0)
                self._starts.extend([_Start(mono, stamp)] * max(count - known[stamp], 0))
            self._starts = deque(sorted(self._starts, key=lambda s: s.mono))
            self._expire()

    def starts(self) -> list[float]:
        """The starts still in the window, as wall-clock seconds, oldest first (seeded ones too)."""
        with self._lock:
            self._expire()
            return [s.wall for s in self._starts]

    def _now(self, mono: float) -> _Start:
        return _Start(mono, self._wall_clock())

    def _expire(self) -> float:
        """Drop starts older than the window (caller holds the lock); returns the time now."""
        now = self._clock()
        while self._starts and now - self._starts[0].mono >= self.span:
            self._starts.popleft()
        return now


@dataclass
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 60.0
    # With a limiter: the most a single request waits out 429s in total before it fails; None = a 429
    # is retried like a 5xx (exponential backoff, counted in `attempts`).
    max_rate_limit_wait: float | None = None

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay * 4)
        backoff = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        return backoff * (0.5 + random.random() / 2)  # jitter keeps parallel workers from syncing up


@dataclass
class RequestStats:
    """Requests made, by method and endpoint template, plus retries: for logs and benchmarks."""

    by_endpoint: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, key: str) -> None:
        with self.lock:
            self.by_endpoint[key] += 1

    def retried(self, problem: str) -> None:
        with self.lock:
            self.retries[problem] += 1

    @property
    def total(self) -> int:
        return sum(self.by_endpoint.values())

    def as_dict(self) -> results.RequestStats:
        return {"total": self.total, "by_endpoint": dict(self.by_endpoint), "retries": dict(self.retries)}


@dataclass(frozen=True)
class ApiResponse:
    """A final 2xx answer: the response and its decoded JSON body (None for a 204 or a DELETE).

    The body is `object`: JSON of any shape, which each caller checks before it trusts it.
    """

    response: requests.Response
    payload: object


class _Retryable(NamedTuple):
    """An attempt that is to be retried: the problem, the server's Retry-After, the answer if any."""

    problem: str
    retry_after: float | None
    response: requests.Response | None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


class ApiSession:
    """A requests session per thread, built from an Airflow HTTP connection through HttpHook."""

    def __init__(
        self,
        api: str,
        session_factory: Callable[[], requests.Session],
        base_url: str,
        retry: RetryPolicy | None = None,
        limiter: SlidingWindowLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_response: Callable[[requests.Response], None] | None = None,
        retry_status: frozenset[int] = RETRYABLE_STATUS,
        secrets: Iterable[str] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self.api = api
        self.scrub: Scrub = scrubber(secrets)  # for every text an answer puts into an error
        self.max_body_bytes = max_body_bytes
        self.retry_status = retry_status
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter
        self.stats = RequestStats()
        self._factory = session_factory
        self._local = threading.local()
        self._sleep = sleep
        self._on_response = on_response  # sees each answer that is retried or returned (limit headers)

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self._factory()
        return s

    def url(self, path: str) -> str:
        """The URL of a path under the base URL: ours, or what `link` kept of one an API handed
        back. Joined to the base URL, whose authority the path cannot change; never a URL itself."""
        if _SCHEME.match(path):
            raise self._error(f"{self.api}: {cut(repr(path), 200)} is a URL, not a path; not sent")
        return f"{self.base_url}/{path.lstrip('/')}"

    def link(self, href: object) -> str:
        """What may be followed of a URL the API handed back (a paging link): its path under the
        base URL's path and its query, for `request`; anything else is refused (links.py), unsent."""
        try:
            return relative_link(href, self.base_url)
        except ValueError as why:
            shown = cut(self.scrub(repr(href)), 200) if isinstance(href, str) else type(href).__name__
            raise self._error(
                f"{self.api}: a link the API handed back was refused, as {why}; not followed, "
                f"nothing sent (the configured site is {_origin(self.base_url)}; the link: {shown})"
            ) from None

    def _error(
        self, message: str, *, status: int | None = None, body: Any = None, kind: type[ApiError] = ApiError
    ) -> ApiError:
        """The one way this class makes an ApiError: message and body scrubbed of the credentials."""
        return kind(self.scrub(message), status=status, body=scrub_data(body, self.scrub))

    @contextmanager
    def _scrubbing(self) -> Iterator[None]:
        """Scrub any ApiError that leaves, however it was made (idempotent on one made by `_error`)."""
        try:
            yield
        except ApiError as exc:
            exc.args = tuple(self.scrub(str(a)) for a in exc.args)
            exc.body = scrub_data(exc.body, self.scrub)
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        label: str,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        attempts: int | None = None,
    ) -> ApiResponse:
        """Send with retries; return the final 2xx response with its JSON decoded (`ApiResponse`).

        `attempts` caps the tries of this one request below the policy's: a write that must not be
        sent twice blindly (a POST that creates) passes 1 and settles a failure itself, by reading.
        """
        with self._scrubbing():
            return self._request(method, path, label, params, json_body, headers, attempts)

    def _request(
        self,
        method: str,
        path: str,
        label: str,
        params: Mapping[str, str | int] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        attempts: int | None,
    ) -> ApiResponse:
        url = self.url(path)
        limit = self.retry.attempts if attempts is None else max(1, min(attempts, self.retry.attempts))
        what = f"{self.api} {method} {label}"
        attempt, rate_wait = 0, 0.0
        while True:
            if self.limiter:
                self.limiter.acquire()
            self.stats.add(f"{method} {label}")
            outcome = self._attempt(method, url, what, params, json_body, headers)
            resp = outcome.response
            if resp is not None and self._on_response:
                self._on_response(resp)
            if isinstance(outcome, ApiResponse):
                return outcome
            problem, retry_after = outcome.problem, outcome.retry_after
            self.stats.retried(problem)
            if resp is not None and resp.status_code == 429 and self._waits_out_429s():
                rate_wait += self._wait_out_429(what, retry_after, rate_wait)
                continue
            attempt += 1
            if attempt >= limit:
                status = resp.status_code if resp is not None else None
                raise self._error(f"{what} failed after {attempt} attempts: {problem}", status=status)
            wait = self.retry.delay(attempt, retry_after)
            log.warning("%s: %s; retry %d/%d in %.1fs", what, problem, attempt, limit - 1, wait)
            self._sleep(wait)

    def _waits_out_429s(self) -> bool:
        return self.limiter is not None and self.retry.max_rate_limit_wait is not None

    def _wait_out_429(self, what: str, retry_after: float | None, waited: float) -> float:
        """Wait for the rate-limit window after a 429; returns the wait. Fails past the bound.

        A positive `Retry-After` is the server's own word and is slept as given; without one (or
        with 0, which would retry at once and could spin) the limiter takes the window as full and
        its next `acquire` waits for a slot.
        """
        assert self.limiter is not None and self.retry.max_rate_limit_wait is not None
        retry_after = retry_after or None
        wait = retry_after if retry_after is not None else self.limiter.rate_limited()
        bound = self.retry.max_rate_limit_wait
        if waited + wait > bound:
            raise self._error(
                f"{what} is still rate limited (HTTP 429) after waiting {waited:.0f}s for the "
                f"rate-limit window; another {wait:.0f}s would pass max_rate_limit_wait_s={bound:g}",
                status=429,
            )
        log.warning(
            "%s: HTTP 429; waiting %.1fs for the rate-limit window (%.0fs so far)", what, wait, waited
        )
        if retry_after is not None:
            self._sleep(retry_after)
        return wait

    def _read_body(self, resp: requests.Response, what: str) -> None:
        """Read the (streamed) body into the response, refusing one past `max_body_bytes`."""
        declared = resp.headers.get("Content-Length", "")
        too_big = declared.isdigit() and int(declared) > self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        if not too_big:
            for chunk in resp.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                too_big = size > self.max_body_bytes
                if too_big:
                    break
                chunks.append(chunk)
        if too_big:
            resp.close()
            raise self._error(
                f"{what} answered more than {self.max_body_bytes:,} bytes; not read",
                status=resp.status_code,
            )
        resp._content = b"".join(chunks)  # what `resp.content` and `resp.json()` read from here on

    def _attempt(
        self,
        method: str,
        url: str,
        what: str,
        params: Mapping[str, str | int] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
    ) -> ApiResponse | _Retryable:
        """One try → the final answer, or the retryable problem (Retry-After seconds, response)."""
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers=headers,
                timeout=self.retry.timeout,
                allow_redirects=False,
                stream=True,
            )
            self._read_body(resp, what)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            # A body cut off mid-transfer surfaces as ChunkedEncodingError, which is no ConnectionError.
            return _Retryable(f"connection error ({type(exc).__name__})", None, None)
        if resp.status_code in self.retry_status:
            return _Retryable(
                f"HTTP {resp.status_code}", parse_retry_after(resp.headers.get("Retry-After")), resp
            )
        if 300 <= resp.status_code < 400:
            where = _origin(resp.headers.get("Location") or url)
            raise self._error(f"{what} answered HTTP {resp.status_code}, a redirect to {where}; not followed")
        if resp.status_code >= 400:  # 401/403: the credentials are refused, which no retry changes
            body = scrub_data(_safe_json(resp), self.scrub)  # kept MAX_DEPTH deep: safe to print
            raise self._error(
                f"{what} was refused: HTTP {resp.status_code}{_message(body)}",
                status=resp.status_code,
                body=body,
                kind=CredentialsError if resp.status_code in CREDENTIAL_STATUSES else ApiError,
            )
        if resp.status_code == 204 or method == "DELETE":
            return ApiResponse(resp, None)
        try:
            payload: object = resp.json()
        except RecursionError:
            raise self._error(f"{what} answered JSON nested too deeply to read") from None
        except (ValueError, json.JSONDecodeError):
            kind = (
                "an empty body"
                if not resp.content
                else f"a non-JSON body ({cut(resp.headers.get('Content-Type', 'no content type'), 100)})"
            )
            # Scrubbed here: the problem is logged at each retry and ends in the final error.
            return _Retryable(self.scrub(f"HTTP {resp.status_code} with {kind}"), None, resp)
        if _nests(resp.content) and deeper_than(payload, MAX_DEPTH):
            # Whatever reads the answer (frames, the push, repr in a message) recurses: refuse it here.
            raise self._error(f"{what} answered JSON nested deeper than {MAX_DEPTH} levels; not read")
        return ApiResponse(resp, payload)


def check_objects(items: list[Any], what: str) -> None:
    """Every record of a list answer must be a JSON object; name the first that is not."""
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ApiError(f"{what}: item {i} is {type(item).__name__}, not an object")


def _safe_json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, RecursionError):
        return None


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _origin(url: str) -> str:
    """scheme://host:port as urlsplit reads it, for messages only (never to decide where to send)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def _nests(content: bytes) -> bool:
    """Whether a body has enough brackets to nest past MAX_DEPTH (C-speed counts: most do not)."""
    return content.count(b"[") + content.count(b"{") > MAX_DEPTH


def _message(body: Any) -> str:
    """The API's own error message, shortened; both APIs put it under `message` or `error`. The body
    is one `scrub_data` kept MAX_DEPTH deep, so printing it cannot recurse without end."""
    if isinstance(body, Mapping):
        msg = body.get("message") or body.get("error") or body.get("errors")
        if msg:
            return f" ({cut(str(msg), 300)})"
    return ""


def hook_session_factory(
    conn_id: str,
    drop_headers: tuple[str, ...] = (),
    headers: Mapping[str, str] | None = None,
    hook: Any = None,
) -> tuple[Callable[[], requests.Session], str, Any]:
    """(factory of authenticated sessions, base URL, the Airflow connection) for an HTTP connection.

    HttpHook (or `hook`, one of its subclasses for `conn_id`: billing_sync.hooks) resolves the
    connection (any secrets backend), the base URL and Basic auth. It also copies every key of the
    connection's `extra` into the headers; keys that are settings, not headers, are dropped again here.
    """
    if hook is None:
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method="GET", http_conn_id=conn_id)
    conn = hook.get_connection(conn_id)

    def factory() -> requests.Session:
        s: requests.Session = hook.get_conn(headers=dict(headers or {}))
        for h in drop_headers:
            s.headers.pop(h, None)
        return s

    factory()  # sets hook.base_url and fails early on a broken connection
    return factory, hook.base_url, conn
