"""A real HTTP server on loopback in front of a sandbox API that spoils chosen responses.

The sandbox serves well-formed answers (its fault injection covers statuses, latency and dropped
connections). Protocol-level bad input — HTML or an empty body with 200, truncated JSON, a body
cut off mid-transfer, a JSON shape the API does not document — comes from here: each `Rule`
matches a method and a path and rewrites the upstream answer. Everything else passes through.
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

# Response headers the proxy recomputes (or that belong to one hop only).
_DROP_RESPONSE = {
    "content-length",
    "transfer-encoding",
    "connection",
    "content-encoding",
    "date",
    "server",
    "keep-alive",
}
_DROP_REQUEST = {"host", "content-length", "connection", "accept-encoding", "keep-alive"}

Transform = Callable[[Any], Any]


@dataclass
class Rule:
    """Spoil answers to `method` requests whose path matches `path` (a regex, searched).

    action: "html" | "empty" | "truncate" (valid prefix of the JSON, honest Content-Length) |
    "short_read" (Content-Length of the whole body, half of it sent, connection closed) |
    "status:<code>" (answered by the proxy; the API never sees the request) | a function JSON → JSON
    applied to the upstream answer.
    """

    method: str
    path: str
    action: str | Transform
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.search(self.path, path) is not None


@dataclass
class CorruptingProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _client: httpx.Client | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CorruptingProxy:
        self._client = httpx.Client(timeout=60)
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._client is not None:
            self._client.close()

    def set(self, *rules: Rule) -> list[Rule]:
        self.rules = list(rules)
        return self.rules

    def rule_for(self, method: str, path: str) -> Rule | None:
        return next((r for r in self.rules if r.matches(method, path)), None)


class _Handler(BaseHTTPRequestHandler):
    owner: CorruptingProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # keep test output to what the sync logs

    def do_GET(self) -> None:
        try:
            self._forward()
        except Exception:  # a broken rule must be visible in the test output, not just a dropped connection
            traceback.print_exc()
            raise

    do_PATCH = do_POST = do_PUT = do_DELETE = do_GET

    def _forward(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP_REQUEST}
        rule = owner.rule_for(self.command, self.path.split("?", 1)[0])
        if rule is not None and isinstance(rule.action, str) and rule.action.startswith("status:"):
            rule.hits += 1  # refused on the way: the API never sees the request
            code = int(rule.action.split(":", 1)[1])
            self._send(
                code, {"Content-Type": "application/json"}, json.dumps({"message": "refused"}).encode()
            )
            return
        upstream = owner._client.request(
            self.command, owner.upstream + self.path, content=body, headers=headers
        )
        out_headers = {
            k: v.replace(owner.upstream, owner.url)
            for k, v in upstream.headers.items()
            if k.lower() not in _DROP_RESPONSE
        }
        status, payload = upstream.status_code, upstream.content
        if rule is None:
            self._send(status, out_headers, payload)
            return
        rule.hits += 1
        self._spoil(rule, status, out_headers, payload)

    def _spoil(self, rule: Rule, status: int, headers: dict[str, str], payload: bytes) -> None:
        action = rule.action
        if callable(action):
            self._send(status, headers, json.dumps(action(json.loads(payload))).encode())
        elif action == "html":
            html = b"<html><body><h1>502 Bad Gateway</h1><p>upstream maintenance</p></body></html>"
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            self._send(200, {**headers, "Content-Type": "text/html; charset=utf-8"}, html)
        elif action == "empty":
            self._send(200, headers, b"")
        elif action == "truncate":
            self._send(200, headers, payload[: max(len(payload) // 2, 1)])
        elif action == "short_read":
            self._send(200, headers, payload[: len(payload) // 2], declared=len(payload))
            self.close_connection = True
        else:
            raise ValueError(f"unknown proxy action {action!r}")

    def _send(
        self, status: int, headers: dict[str, str], payload: bytes, declared: int | None = None
    ) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload) if declared is None else declared))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
