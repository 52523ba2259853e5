"""The review app on a small billing DB for TestClient tests: the DB `fill` writes (three organizations,
four companies, two quarantine rows, a report directory with files a route must refuse), auth
replaced by headers (`X-User` reads, `X-Role: editor` decides), and `App` to drive it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from httpx import CookieConflict
from sqlalchemy.engine import Engine

from billing_sync import frames, store
from billing_sync.review.app import create_app
from billing_sync.review.security import CSRF_COOKIE, ReviewAuth, Reviewer

RUN = "manual__2026-11-01T00:00:00+00:00"
DAY = "2026-11-01"
EVIL = '<script>alert("x")</script>'
ALICE = {"X-User": "alice", "X-Role": "editor"}


def reader(request: Request) -> Reviewer:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(401, "Not authenticated")
    return Reviewer(user, user)


def editor(request: Request) -> Reviewer:
    reviewer = reader(request)
    if request.headers.get("x-role") != "editor":
        raise HTTPException(403, "Forbidden")
    return reviewer


@dataclass
class App:
    client: TestClient
    engine: object
    report_dir: Path
    _tokens: dict[tuple[tuple[tuple[str, str], ...], str], str] = field(default_factory=dict, repr=False)

    def get(self, path: str, **kw):
        return self.client.get(f"/billing-review{path}", headers=kw.pop("headers", ALICE), **kw)

    def post(self, path: str, data: dict, headers: dict | None = None, token: bool = True):
        if token:
            data = {**data, "csrf_token": self.token(headers or ALICE)}
        return self.client.post(
            f"/billing-review{path}", data=data, headers=headers or ALICE, follow_redirects=False
        )

    def token(self, headers: dict) -> str:
        # A token is a function of who asks (the headers, for the stand-in auth) and this browser's
        # nonce cookie (review.security.Csrf): the page is rendered once per pair, not before every post.
        who = tuple(sorted(headers.items()))
        nonce = self._nonce()
        if nonce is not None and (who, nonce) in self._tokens:
            return self._tokens[(who, nonce)]
        html = self.get("/quarantine", headers=headers).text
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)
        nonce = self._nonce()  # the page sets it when the browser had none
        if nonce is not None:
            self._tokens[(who, nonce)] = found
        return found

    def _nonce(self) -> str | None:
        try:
            return self.client.cookies.get(CSRF_COOKIE)
        except CookieConflict:  # one per path: which one a post sends is not ours to guess
            return None


def fill(engine, reports: Path) -> Path:
    store.start_run(engine, RUN, DAY, 5001, "push", {"dry_run": False}, tenant="default")
    orgs = [
        {"id": 1, "name": "Acme", "key": "acme"},
        {"id": 2, "name": EVIL, "key": "evil"},
        {"id": 3, "name": "Twin", "key": "twin"},
    ]
    companies = [
        {"id": 10, "identifier": "acme", "name": "Acme Corp"},
        {"id": 20, "identifier": "x", "name": "Twin"},
        {"id": 21, "identifier": "y", "name": "twin"},
        {"id": 30, "identifier": "z", "name": f"Co {EVIL}"},
    ]
    store.write_frame(engine, RUN, "organizations", frames.organizations_frame(orgs), tenant="default")
    store.write_frame(engine, RUN, "companies", frames.companies_frame(companies), tenant="default")
    store.upsert_quarantine(
        engine,
        RUN,
        DAY,
        [
            {
                "sync_key": "organization:2:edr",
                "reason_code": "unmapped_organization",
                "huntress_organization_id": 2,
                "huntress_organization_name": EVIL,
                "product": "edr",
                "detail": f"no rule maps {EVIL}",
                "payload": {},
            },
            {
                "sync_key": "company:10:sat",
                "reason_code": "change_exceeds_limit",
                "cw_company_id": 10,
                "product": "sat",
                "detail": "40 → 4",
                "payload": {"old": 40},
            },
        ],
        tenant="default",
    )
    directory = reports / DAY / "run"
    directory.mkdir(parents=True)
    (directory / "report.html").write_text("<h1>Report</h1>")
    (directory / "outcomes.csv").write_text("sync_key,outcome\n")
    (directory / ".hidden.csv").write_text("x")
    (directory / "binary.exe").write_text("x")
    (reports.parent / "secret.txt").write_text("outside the reports root")
    (directory / "escape.txt").symlink_to(reports.parent / "secret.txt")
    store.finish_run(
        engine,
        RUN,
        "success",
        {"updated": 3, "quarantined": 2, "total": 5},
        {"mismatches": []},
        str(directory),
        tenant="default",
    )
    return directory


STAND_IN = ReviewAuth(reader=reader, editor=editor, login_url=lambda nxt: f"/auth/login?next={quote(nxt)}")


@contextmanager
def mounted(engine: Engine, reports: Path, report_dir: Path, auth: ReviewAuth = STAND_IN) -> Iterator[App]:
    """The app on `engine`, mounted at /billing-review as the plugin mounts it; the engine is
    disposed after."""
    root = FastAPI()
    root.mount(
        "/billing-review",
        create_app(engine=engine, auth=auth, csrf_secret=b"test-secret", reports_root=reports),
    )
    with TestClient(root) as client:
        yield App(client, engine, report_dir)
    engine.dispose()


@contextmanager
def review_app(tmp_path: Path) -> Iterator[App]:
    """The app on a billing DB `fill` filled under `tmp_path`, mounted at /billing-review, auth by header."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    directory = fill(engine, tmp_path / "reports")
    with mounted(engine, tmp_path / "reports", directory) as app:
        yield app
