"""Serve the Huntress and ConnectWise sandbox apps, each on its own port, in one process and one loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import uvicorn
from fastapi import FastAPI

from billing_sandbox.common import install_sandbox

log = logging.getLogger("billing_sandbox")

STARTUP_TIMEOUT_S = 30
GRACEFUL_SHUTDOWN_S = 3


def build_apps(scenario: dict[str, Any]) -> dict[str, FastAPI]:
    """Both apps, keyed by name, each with the shared admin routes, counters and faults installed."""
    from billing_sandbox import connectwise, huntress

    apps = {
        "huntress": huntress.create_app(scenario["huntress"], scenario),
        "connectwise": connectwise.create_app(scenario["connectwise"], scenario),
    }
    for name, app in apps.items():
        install_sandbox(app, name)
    return apps


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runner owns SIGINT/SIGTERM: one signal stops both servers, and uvicorn must not
        # re-raise it afterwards (that would turn a clean stop into death by signal, not exit 0).
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    apps: dict[str, FastAPI],
    sockets: dict[str, socket.socket],
    out: TextIO = sys.stdout,
    access_log: bool = False,
) -> int:
    """Run until SIGINT/SIGTERM; print the one JSON line of URLs once every server accepts connections."""
    loop = asyncio.get_running_loop()
    servers = {
        name: _Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=access_log,
                lifespan="off",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        for name, app in apps.items()
    }

    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        for server in servers.values():
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(s.serve(sockets=[sockets[n]])) for n, s in servers.items()]
    if not await _started(servers, tasks):
        stop_requested = stopping.is_set()  # a signal during startup is a clean stop, not a failure
        stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        if stop_requested:
            return 0
        log.error("the sandbox servers did not start")
        return 1
    host = sockets["huntress"].getsockname()[0]
    line = {f"{name}_url": url(host, sockets[name]) for name in ("huntress", "connectwise")}
    out.write(json.dumps(line) + "\n")
    out.flush()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        log.error("server failed: %r", failure)
    return 1 if failures else 0


async def _started(servers: dict[str, _Server], tasks: list[asyncio.Task[None]]) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while not all(s.started for s in servers.values()):
        if any(t.done() for t in tasks) or loop.time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def run(
    scenario: dict[str, Any],
    host: str = "127.0.0.1",
    huntress_port: int = 0,
    connectwise_port: int = 0,
    access_log: bool = False,
) -> int:
    """Blocking entry point of `python -m billing_sandbox`; returns the process exit code."""
    apps = build_apps(scenario)
    try:
        sockets = {"huntress": bind(host, huntress_port), "connectwise": bind(host, connectwise_port)}
    except OSError as exc:
        print(f"billing_sandbox: cannot listen on {host}: {exc}", file=sys.stderr)
        return 1
    # uvloop when installed, as uvicorn itself would pick (log_config=None: uvicorn must not touch logging).
    loop_factory = uvicorn.Config(apps["huntress"], log_config=None).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(apps, sockets, access_log=access_log))
