"""What both sandbox APIs share: request counting, fault injection and the /_sandbox admin routes.

`install_sandbox(app, name)` wraps an app built by `create_app(section, scenario)`, whose
`app.state.sandbox` has `snapshot() -> dict` and `reset() -> None` (and optionally
`error_body(status, message) -> dict` to shape injected errors like the API's own errors, and
`FAULT_OPTIONS: {key: (JSON schema, default)}` with `apply_fault_options(options) -> None` for faults
only that API takes, e.g. Huntress's `rate_limit_headers`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("billing_sandbox")

ADMIN_PREFIX = "/_sandbox/"
REQUEST_LOG_SIZE = 20_000

DEFAULT_FAULTS: dict[str, Any] = {
    "latency_ms": 0,
    "status_rate": {"500": 0.0, "429": 0.0},
    "reset_rate": 0.0,
    "retry_after_s": 1,
    "seed": 0,
    "echo_credentials": False,
    "non_json_rate": 0.0,
    "error_depth": 0,
}

FAULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "latency_ms": {"type": "number", "minimum": 0, "maximum": 60_000},
        "status_rate": {
            "type": "object",
            "propertyNames": {"pattern": "^[45][0-9][0-9]$"},
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "reset_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "retry_after_s": {"type": "integer", "minimum": 0},
        "seed": {"type": "integer"},
        "echo_credentials": {"type": "boolean"},
        "non_json_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "error_depth": {"type": "integer", "minimum": 0, "maximum": 900},  # json.dumps recurses too
    },
}
_faults_validator = jsonschema.Draft202012Validator(FAULTS_SCHEMA)


class FaultsError(ValueError):
    pass


FaultOptions = dict[str, tuple[dict[str, Any], Any]]  # key → (JSON schema, default): one API's own faults


def _faults_validator_for(options: FaultOptions) -> jsonschema.protocols.Validator:
    if not options:
        return _faults_validator
    schema = {
        **FAULTS_SCHEMA,
        "properties": {**FAULTS_SCHEMA["properties"], **{k: schema for k, (schema, _) in options.items()}},
    }
    return jsonschema.Draft202012Validator(schema)


@dataclass
class Faults:
    """Injected trouble. One random draw per counted request, so a seed replays the same outcomes."""

    latency_ms: float = 0
    status_rate: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAULTS["status_rate"]))
    reset_rate: float = 0.0
    retry_after_s: int = 1
    seed: int = 0
    # Injected errors quote the request's Authorization and clientId headers in their message, as a
    # careless server, proxy or debugging gateway does: nothing public says ConnectWise or Huntress
    # do, so it is a fault, the less convenient reading, which proves the client scrubs what an API
    # writes before it stores or shows it (docs/contract.md §5).
    echo_credentials: bool = False
    # Hostile or broken answers, not API behaviour (nothing public says either API sends them; the
    # less convenient reading): `non_json_rate` of requests get a 200 whose body is no JSON, and
    # whose Content-Type, with `echo_credentials`, quotes the request's credentials; `error_depth`
    # nests each injected error's message that many lists deep, as a body built to make a client
    # that walks it recursively crash.
    non_json_rate: float = 0.0
    error_depth: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # the API's own fault keys (FAULT_OPTIONS)
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @classmethod
    def defaults(cls, options: FaultOptions | None = None) -> Faults:
        return cls(extra={k: default for k, (_, default) in (options or {}).items()})

    @classmethod
    def from_json(cls, body: Any, options: FaultOptions | None = None) -> Faults:
        """Keys left out take the defaults, so `{}` clears every fault."""
        validator = _faults_validator_for(options or {})
        errors = sorted(validator.iter_errors(body), key=jsonschema.exceptions.relevance, reverse=True)
        if errors:
            where = "".join(f"[{p!r}]" for p in errors[0].absolute_path) or "(body)"
            raise FaultsError(f"{where}: {errors[0].message}")
        extra = {k: body.get(k, default) for k, (_, default) in (options or {}).items()}
        merged = {**DEFAULT_FAULTS, **{k: v for k, v in body.items() if k not in extra}}
        merged["status_rate"] = {**DEFAULT_FAULTS["status_rate"], **merged["status_rate"]}
        total = merged["reset_rate"] + merged["non_json_rate"] + sum(merged["status_rate"].values())
        if total > 1:
            raise FaultsError(
                f"reset_rate, non_json_rate and the status rates add up to {total}, more than 1"
            )
        return cls(**merged, extra=extra)

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "status_rate": dict(self.status_rate),
            "reset_rate": self.reset_rate,
            "retry_after_s": self.retry_after_s,
            "seed": self.seed,
            "echo_credentials": self.echo_credentials,
            "non_json_rate": self.non_json_rate,
            "error_depth": self.error_depth,
            **self.extra,
        }

    def draw(self) -> str | None:
        """'reset', 'non_json', a status code as a string, or None for a normal answer."""
        roll = self.rng.random()
        edge = self.reset_rate
        if roll < edge:
            return "reset"
        edge += self.non_json_rate
        if roll < edge:
            return "non_json"
        for status in sorted(self.status_rate):
            edge += self.status_rate[status]
            if roll < edge:
                return status
        return None


@dataclass
class RequestStats:
    total: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_route_status: dict[str, Counter[str]] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    def record(self, entry: dict[str, Any]) -> None:
        route, status = entry["route"], entry["status"]
        self.total += 1
        self.by_route[route] += 1
        self.by_status[status] += 1
        self.by_route_status.setdefault(route, Counter())[status] += 1
        if entry["fault"]:
            self.faults[entry["fault"]] += 1
        self.log.append(entry)

    def to_json(self, with_log: bool, since: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total": self.total,
            "by_route": dict(self.by_route),
            "by_status": dict(self.by_status),
            "by_route_status": {route: dict(c) for route, c in self.by_route_status.items()},
            "faults_injected": dict(self.faults),
        }
        if with_log:
            out["log"] = [e for e in self.log if since is None or e["time"] >= since]
        return out


class SandboxControl:
    """Per-app admin state: the faults in force and the request counters."""

    def __init__(self, app: FastAPI, name: str) -> None:
        self.app = app
        self.name = name
        self.fault_options: FaultOptions = getattr(app.state.sandbox, "FAULT_OPTIONS", {})
        self.faults = Faults.defaults(self.fault_options)
        self.stats = RequestStats()

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        apply = getattr(self.app.state.sandbox, "apply_fault_options", None)
        if apply is not None:
            apply(dict(faults.extra))

    def route_key(self, scope: Scope) -> str:
        # Matched here rather than read back from the router, so faulted requests get their route too.
        # As in Starlette's router, a full match wins over an earlier path-only (wrong method) match.
        partial = None
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {route.path}"
            if match is Match.PARTIAL and partial is None:
                partial = route.path
        return f"{scope['method']} {partial or '(unmatched)'}"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        custom = getattr(self.app.state.sandbox, "error_body", None)
        return custom(status, message) if custom else {"code": f"HTTP{status}", "message": message}

    def reset(self) -> None:
        self.app.state.sandbox.reset()
        self.set_faults(Faults.defaults(self.fault_options))
        self.stats = RequestStats()


def install_sandbox(app: FastAPI, name: str) -> SandboxControl:
    """Add counting, fault injection and the admin routes; the wrapper sits outside every other middleware."""
    control = SandboxControl(app, name)
    app.state.sandbox_control = control
    _add_admin_routes(app, control)
    build_inner = app.build_middleware_stack
    app.build_middleware_stack = lambda: SandboxMiddleware(build_inner(), control)  # type: ignore[method-assign]
    app.middleware_stack = None
    return control


class SandboxMiddleware:
    """Pure ASGI: it must see the server's own `send` to be able to drop the connection."""

    def __init__(self, app: ASGIApp, control: SandboxControl) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(ADMIN_PREFIX):
            if not _is_loopback(scope):
                await JSONResponse({"error": "admin routes answer loopback clients only"}, 403)(
                    scope, receive, send
                )
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        control = self.control
        started, wall = time.perf_counter(), time.time()
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "route": control.route_key(scope),
            "status": None,
            "fault": None,
            "time": wall,
            "duration_ms": None,
        }
        faults = control.faults
        outcome = faults.draw()
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)

        def finish(status: str) -> None:
            # Counted when the answer starts, so a client that has it also sees it counted.
            entry["status"] = status
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            control.stats.record(entry)

        if outcome == "reset":
            entry["fault"] = "reset"
            finish("reset")
            await _drop_connection(scope, receive, send)
            return
        if outcome is not None:
            entry["fault"] = outcome
            response = (
                _non_json_response(control, scope)
                if outcome == "non_json"
                else _fault_response(control, int(outcome), scope)
            )
            finish(outcome)
            await response(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                finish(str(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)


def _echoed(scope: Scope) -> str:
    """The request's Authorization and clientId headers, quoted (the `echo_credentials` fault)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return ", ".join(
        f"{name}: {headers.get(name.lower(), '(none)')}" for name in ("Authorization", "clientId")
    )


def _non_json_response(control: SandboxControl, scope: Scope) -> Response:
    media = "text/html; charset=utf-8"
    if control.faults.echo_credentials:
        media += f'; echo="{_echoed(scope)}"'
    return Response("<html><body>Service temporarily unavailable</body></html>", 200, media_type=media)


def _fault_response(control: SandboxControl, status: int, scope: Scope) -> Response:
    message = f"injected fault: HTTP {status}"
    if control.faults.echo_credentials:
        message += "; request headers: " + _echoed(scope)
    body = control.error_body(status, message)
    if control.faults.error_depth:
        nested: Any = message
        for _ in range(control.faults.error_depth):
            nested = [nested]
        body["message"] = nested
    # Huntress's `rate_limit_headers: false` (docs/contract.md §5): no 429 carries Retry-After, injected ones neither.
    bare = control.faults.extra.get("rate_limit_headers") is False
    headers = {"Retry-After": str(control.faults.retry_after_s)} if status == 429 and not bare else None
    return JSONResponse(body, status, headers=headers)


async def _drop_connection(scope: Scope, receive: Receive, send: Send) -> None:
    """Close the TCP connection with an RST and no response bytes at all.

    ASGI has no "abort", so this reaches uvicorn's transport through its `send` (a bound method of
    the request cycle). SO_LINGER 0 turns the close into a reset, which clients report as
    "connection reset by peer" rather than a clean end of stream.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        log.warning("reset fault: no transport reachable under this server; answering 502 instead")
        await JSONResponse({"error": "connection reset not supported here"}, 502)(scope, receive, send)
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
    # Let connection_lost run: uvicorn then sees a disconnected cycle and does not try a 500.
    for _ in range(3):
        await asyncio.sleep(0)


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    host = client[0] if client else ""
    if host == "testclient":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _add_admin_routes(app: FastAPI, control: SandboxControl) -> None:
    def route(path: str, method: str) -> Callable[[Callable[[Request], Awaitable[Response]]], Any]:
        def register(endpoint: Callable[[Request], Awaitable[Response]]) -> Any:
            app.add_route(ADMIN_PREFIX + path, endpoint, methods=[method], include_in_schema=False)
            return endpoint

        return register

    @route("state", "GET")
    async def state(request: Request) -> Response:
        return JSONResponse(app.state.sandbox.snapshot())

    @route("requests", "GET")
    async def requests(request: Request) -> Response:
        params = request.query_params
        with_log = params.get("log", "0").lower() in ("1", "true", "yes")
        try:
            since = float(params["since"]) if "since" in params else None
        except ValueError:
            return JSONResponse({"error": "since must be a Unix time in seconds"}, 400)
        return JSONResponse({"server": control.name, **control.stats.to_json(with_log, since)})

    @route("faults", "GET")
    async def get_faults(request: Request) -> Response:
        return JSONResponse(control.faults.to_json())

    @route("faults", "POST")
    async def set_faults(request: Request) -> Response:
        try:
            control.set_faults(
                Faults.from_json(json.loads(await request.body() or b"null"), control.fault_options)
            )
        except (ValueError, FaultsError) as exc:
            return JSONResponse({"error": f"invalid faults: {exc}"}, 400)
        return JSONResponse(control.faults.to_json())

    @route("reset", "POST")
    async def reset(request: Request) -> Response:
        control.reset()
        return JSONResponse({"reset": True, "server": control.name})
