"""A stand-in for Airflow's REST API: a real HTTP server on the loopback that keeps DAGs (paused or
not), their runs and task instances, and every request it was sent (the `airflow` fixture of
tests/ui/conftest.py serves one per test)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.review_roles import MAPPER

TOKEN = {**MAPPER, "Authorization": "Bearer alices-airflow-token"}


@dataclass
class Airflow:
    """DAGs (paused or not), their runs (`runs[dag][run_id]` = the run) and task instances
    (`tasks[run_id]`); POST .../dagRuns answers `status` (a new run is queued); every request kept."""

    url: str = ""
    status: int = 200
    paused: dict[str, bool] = field(default_factory=dict)
    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method]


@contextmanager
def serve_airflow() -> Iterator[Airflow]:
    fake = Airflow()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _record(self) -> tuple[list[str], dict[str, list[str]], Any]:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            parts = urlsplit(self.path)
            fake.requests.append(
                {"method": self.command, "path": parts.path, "query": parts.query,
                 "authorization": self.headers.get("authorization"), "json": body}
            )  # fmt: skip
            return [unquote(p) for p in parts.path.split("/")[4:]], parse_qs(parts.query), body

        def _answer(self, code: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            (dag, *_), _, body = self._record()
            if fake.status != 200:
                self._answer(fake.status, {"detail": "Forbidden"})
                return
            run = {**body, "dag_id": dag, "state": "queued"}
            fake.runs.setdefault(dag, {})[body["dag_run_id"]] = run
            self._answer(200, run)

        def do_PATCH(self) -> None:  # noqa: N802
            (dag, *_), query, body = self._record()
            if fake.status != 200:
                self._answer(fake.status, {"detail": "Forbidden"})
                return
            assert query == {"update_mask": ["is_paused"]}
            fake.paused[dag] = body["is_paused"]
            self._answer(200, {"dag_id": dag, "is_paused": fake.paused[dag]})

        def do_GET(self) -> None:  # noqa: N802
            path, query, _ = self._record()
            dag, runs = path[0], fake.runs.get(path[0], {})
            if len(path) == 1:
                self._answer(200, {"dag_id": dag, "is_paused": fake.paused.get(dag, False)})
            elif len(path) == 2:
                states = query.get("state")
                found = [r for r in runs.values() if not states or r["state"] in states]
                self._answer(200, {"dag_runs": found[::-1], "total_entries": len(found)})
            elif path[2] not in runs:
                self._answer(404, {"detail": "not found"})
            elif len(path) == 3:
                self._answer(200, runs[path[2]])
            else:
                self._answer(200, {"task_instances": fake.tasks.get(path[2], [])})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits out serve_forever's poll: at the default 0.5 s, half a second a test.
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
