"""Private PostgreSQL and Redis servers that a test may stop and restart.

The shared servers (PostgreSQL on 5432, Redis on 6379) serve other tests running in parallel and
other people: a fault test never touches them. It starts its own: a PostgreSQL cluster made by
`initdb` in a temporary folder (as the `postgres` OS user when the test runs as root, since initdb
refuses root) and a `redis-server` without persistence, each on a free loopback port, and restarts
those. A missing binary skips the test, unless REQUIRE_POSTGRES=1 / REQUIRE_REDIS=1 (CI) make it a
failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str, required_env: str) -> None:
    if os.environ.get(required_env) == "1":
        pytest.fail(f"{required_env}=1 but {what}")
    pytest.skip(what)


# -- PostgreSQL ---------------------------------------------------------------------------------
class PrivatePostgres:
    """A PostgreSQL cluster of its own: `url` (psycopg2 form, database `postgres`, trust auth)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="billing-private-pg-"))  # not pytest's 0700 tmp_path
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.restarts = 0
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.root, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {args[:2]} failed: {done.stdout}{done.stderr}\n{tail}")

    def init(self) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        # The socket in our folder, not /var/run/postgresql (the shared server's); no fsync: a
        # restart loses no committed row either way (the OS keeps the written pages).
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate`: every server process quits at once, as in a crash; WAL recovery on start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate", down_s: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        _missing("no PostgreSQL server binaries (initdb, pg_ctl) for a private cluster", "REQUIRE_POSTGRES")
    assert bindir is not None
    pg = PrivatePostgres(bindir)
    try:
        pg.init().start()
        yield pg
    finally:
        pg.remove()


# -- Redis --------------------------------------------------------------------------------------
class PrivateRedis:
    """A redis-server of its own, as the CI's: no RDB snapshot, no append-only file. A restart
    therefore loses every key, queued Celery messages included: the worst a broker restart does."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="billing-private-redis-"))
        self.port = free_port()
        self.restarts = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        cmd = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        cmd += ["--dir", str(self.root)]
        with (self.root / "redis.log").open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: {(self.root / 'redis.log').read_text()[-2000:]}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis-server closes its clients and exits, saving nothing
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("no redis-server binary for a private Redis", "REQUIRE_REDIS")
    assert binary is not None
    server = PrivateRedis(binary)
    try:
        server.start()
        yield server
    finally:
        server.remove()
