"""Stand-in reviewers of three roles for TestClient tests: headers name the user (`X-User`,
`X-User-Id`) and the role (`X-Role: editor` acts on runs, `mapper` also changes who pays; none: a
viewer), and `roles_site` serves the review app on tests/helpers/review_app.py's DB with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from billing_sync import store
from billing_sync.config import AreaName
from billing_sync.review.app import create_app
from billing_sync.review.powers import EVERY_AREA
from billing_sync.review.security import ReviewAuth, Reviewer
from tests.helpers.review_app import fill

EDITOR = {"X-User": "Erin Editor", "X-User-Id": "11", "X-Role": "editor"}
MAPPER = {"X-User": "Max Mapper", "X-User-Id": "12", "X-Role": "mapper"}
VIEWER = {"X-User": "Vic Viewer", "X-User-Id": "13"}


def reviewer(request: Request) -> Reviewer:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(401, "Not authenticated")
    return Reviewer(user, request.headers.get("x-user-id") or user)


def reader(request: Request) -> Reviewer:
    return reviewer(request)


def editor(request: Request) -> Reviewer:  # acts on runs: editors and mappers
    if request.headers.get("x-role") not in ("editor", "mapper"):
        raise HTTPException(403, "Forbidden")
    return reviewer(request)


def mapper(request: Request) -> Reviewer:  # may also change who pays
    if request.headers.get("x-role") != "mapper":
        raise HTTPException(403, "Forbidden")
    return reviewer(request)


def stand_in_powers(maps: bool, acts: bool) -> frozenset[AreaName]:
    """A stand-in's areas: a mapper holds every one, an editor decides rows and applies."""
    if maps:
        return EVERY_AREA
    return frozenset({"read", "quarantine", "apply"} if acts else {"read"})


def powered_reader(request: Request) -> Reviewer:
    """What `security.airflow_auth()`'s reader computes, from the stand-in's role header."""
    found = reviewer(request)
    role = request.headers.get("x-role")
    return Reviewer(found.name, found.user_id, powers=stand_in_powers(role == "mapper", role == "editor"))


class Client:
    def __init__(self, client: TestClient, sub: FastAPI, engine: object) -> None:
        self.client, self.sub, self.engine = client, sub, engine

    def token(self, headers: dict[str, str]) -> str:
        html = self.client.get("/billing-review/quarantine", headers=headers).text
        return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)

    def post(self, path: str, data: dict[str, str], headers: dict[str, str]):  # noqa: ANN201
        form = {**data, "csrf_token": self.token(headers)}
        return self.client.post(f"/billing-review{path}", data=form, headers=headers, follow_redirects=False)


@contextmanager
def roles_site(tmp_path: Path) -> Iterator[Client]:
    """The app on `review_app.fill`'s DB with the three stand-in roles, mounted at /billing-review."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    fill(engine, tmp_path / "reports")
    auth = ReviewAuth(reader=reader, editor=editor, mapper=mapper)
    sub = create_app(engine=engine, auth=auth, csrf_secret=b"k", reports_root=tmp_path / "reports")
    root = FastAPI()
    root.mount("/billing-review", sub)
    with TestClient(root) as client:
        yield Client(client, sub, engine)
    engine.dispose()
