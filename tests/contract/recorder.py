"""Records every answer the sandbox gives our clients (at the client, in the test only), and judges
each one: validated against its operation's definition, or exempt for a stated reason.

Both clients speak through `requests` (HttpHook sessions), so wrapping `requests.Session.send` sees
exactly what they received, from every thread. The body is read in the wrapper; requests then hands
the client's streamed read the same bytes.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.contract.definitions import (
    CW_API_ROOT,
    Operation,
    Problem,
    Template,
    check,
    compile_template,
    operation,
    undeclared,
)

# Answers no vendored definition covers, by operation, with the reason (specs/README.md).
EXEMPT_OPERATIONS: dict[tuple[str, str, str], str] = {
    ("connectwise", "GET", "/login/companyinfo/{companyId}"): (
        "outside apis/3.0 and in no definition (specs/README.md); public clients read only its Codebase"
    ),
    ("connectwise", "GET", "/system/mySecurity"): (
        "the vendored 2026.4 cut lacks the system/mySecurity path and its schema; public clients "
        "generated from the full definition call it (docs/sandbox.md, ConnectWise security roles)"
    ),
}
# Whose error bodies no definition describes: its status is still checked against the operation.
HUNTRESS_ERROR_BODY = (
    "Huntress documents no error body: a 4xx's schema is the operation's own entity (e.g. 403 of "
    "/v1/accounts/{account_id}/organizations is `Organization`, whose required fields no error has) "
    "or none; the sandbox's {status, error} is unconfirmed (docs/sandbox.md, Spec quirks)"
)
# Not bodies, and in no definition (specs/README.md): never validated, listed so none is forgotten.
UNCOVERED_HEADERS = ("ConnectWise Link (paging)", "Huntress x-huntress-api-call-*")


@dataclass(frozen=True)
class Answer:
    method: str
    url: str
    status: int
    body: bytes


@dataclass
class Verdicts:
    validated: Counter[tuple[Operation, int]] = field(default_factory=Counter)
    exempt: Counter[tuple[str, str]] = field(default_factory=Counter)  # (what, reason)
    problems: list[tuple[Problem, str, Any]] = field(default_factory=list)  # (problem, url, body)
    unjudged: list[Answer] = field(default_factory=list)

    def summary(self) -> str:
        ops = {op for op, _ in self.validated}
        lines = [
            f"contract: {sum(self.validated.values())} answers of {len(ops)} operations validated, "
            f"{sum(self.exempt.values())} exempt, {len(self.problems)} problems"
        ]
        lines += [
            f"  {n:4d} × {op} → {status}" for (op, status), n in sorted(self.validated.items(), key=str)
        ]
        lines += [f"  {n:4d} × exempt {what}: {why}" for (what, why), n in sorted(self.exempt.items())]
        return "\n".join(lines)


class Recorder:
    """`install(monkeypatch)`, drive the clients, then `judge(huntress_url, connectwise_url)`."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = requests.Session.send
        answers, lock = self.answers, self._lock

        def send(
            session: requests.Session, request: requests.PreparedRequest, **kw: Any
        ) -> requests.Response:
            response = original(session, request, **kw)
            body = response.content  # read once; the client's iter_content replays these bytes
            with lock:
                answers.append(Answer(str(request.method), str(request.url), response.status_code, body))
            return response

        monkeypatch.setattr(requests.Session, "send", send)

    def judge(self, huntress_url: str, connectwise_url: str, verdicts: Verdicts | None = None) -> Verdicts:
        verdicts = verdicts or Verdicts()
        with self._lock:
            answers = list(self.answers)
        for answer in answers:
            _judge(answer, huntress_url.rstrip("/"), connectwise_url.rstrip("/"), verdicts)
        return verdicts


_EXEMPT: dict[tuple[str, str], list[Template]] = {}
for _api, _method, _template in EXEMPT_OPERATIONS:
    _EXEMPT.setdefault((_api, _method), []).append(compile_template(_template))


def _judge(answer: Answer, huntress_url: str, connectwise_url: str, verdicts: Verdicts) -> None:
    path = urlsplit(answer.url).path
    if answer.url.startswith(huntress_url + "/"):
        api, path = "huntress", path[len(urlsplit(huntress_url).path) :]
    elif answer.url.startswith(connectwise_url + "/"):
        api = "connectwise"
        path = path.split(CW_API_ROOT, 1)[1] if CW_API_ROOT in path else path
    else:
        verdicts.unjudged.append(answer)  # not the sandbox: the test fails on it
        return
    for template in _EXEMPT.get((api, answer.method), []):
        if template.pattern.fullmatch(path):
            key = (api, answer.method, template.template)
            verdicts.exempt[(f"{api} {answer.method} {template.template}", EXEMPT_OPERATIONS[key])] += 1
            return
    op = operation(api, answer.method, path)
    if op is None:
        verdicts.unjudged.append(answer)
        return
    if api == "huntress" and answer.status >= 400:
        problem = undeclared(op, answer.status)  # the status only: is it declared for the operation?
        verdicts.problems += [] if problem is None else [(problem, answer.url, None)]
        verdicts.exempt[(f"{op} → {answer.status} body", HUNTRESS_ERROR_BODY)] += 1
        return
    try:
        body = json.loads(answer.body) if answer.body else None
    except ValueError:
        verdicts.problems.append((Problem(op, answer.status, "$", "body is not JSON"), answer.url, None))
        return
    verdicts.problems += [(p, answer.url, body) for p in check(op, answer.status, body)]
    verdicts.validated[(op, answer.status)] += 1
