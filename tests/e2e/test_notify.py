"""Alerts through real channels on loopback: an SMTP server (aiosmtpd) and a stand-in Slack webhook.

The DAG tests run the real DAG with dag.test(): one fails for real (ConnectWise answers 401 to a
wrong private key), one quarantines keys. The others call the notifier directly with a task-like
context, which is exactly what Airflow's task runner does on failure.
"""

from __future__ import annotations

import copy
import email
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message as MailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from billing_sandbox.generate import generate
from billing_sync import notify
from billing_sync.names import DAG_ID, REASON_HELP
from billing_sync.notify import build, render, send

BILLING_DATE = "2026-11-01"
SLACK_TOKEN = "T0000SECRET/B0000SECRET/slacktokensecret"
SMTP_PASSWORD = "smtp-pass-never-shown"


@pytest.fixture(autouse=True)
def quick_alert_retries(monkeypatch):
    """A channel that fails is still tried send.ALERT_ATTEMPTS times; only the waits are short."""
    monkeypatch.setattr(send, "ALERT_RETRY_WAIT_S", 0.05)


# -- local channels ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[MailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def body_of(mail: MailMessage) -> str:
    parts = [p.get_payload(decode=True) for p in mail.walk() if p.get_content_type() == "text/html"]
    return b"".join(parts).decode("utf-8")


@pytest.fixture
def inbox() -> Iterator[_Inbox]:
    box = _Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class _Webhook(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert_connections(monkeypatch, inbox, slack, tmp_path) -> None:
    """Both channels configured, plus a private billing DB and report folder."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": inbox.port,
                "login": "",
                "password": SMTP_PASSWORD,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "timeout": 10,
                    "retry_limit": 0,
                    "from_email": "airflow@msp.example",
                    "to": ["billing@msp.example", "ops@msp.example"],
                },
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_SLACK",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"http://127.0.0.1:{slack.server_port}/services",
                "password": SLACK_TOKEN,
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_DB",
        json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{tmp_path / 'billing.db'}"}}
        ),
    )
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))


def task_context(exc: BaseException, task_id: str = "extract_connectwise") -> dict[str, Any]:
    """What the task runner hands on_failure_callback, as far as the notifier reads it."""
    run_id = f"manual__{BILLING_DATE}T00:00:00+00:00"
    ti = SimpleNamespace(dag_id=DAG_ID, task_id=task_id, run_id=run_id, try_number=3, map_index=-1)
    return {
        "ti": ti,
        "run_id": run_id,
        "exception": exc,
        "logical_date": datetime.fromisoformat(BILLING_DATE).replace(tzinfo=UTC),
    }


# -- the notifier against the channels -------------------------------------------------------------
def test_failure_alert_reaches_mail_and_slack_without_secrets(alert_connections, monkeypatch, inbox, slack):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUNTRESS_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": "http://127.0.0.1:9",
                "login": "hk_live_key",
                "password": "hs_live_secret",
            }
        ),
    )
    error = RuntimeError(
        "Huntress GET /v1/organizations was refused: HTTP 401 at https://hk_live_key:hs_live_secret@h.example/x"
        f" (secret hs_live_secret, token {SLACK_TOKEN}) " + "{{ 4096*4099 }} <!channel> <b>bold</b>"
    )
    notifier = notify.BillingSyncNotifier()
    notifier(task_context(error))

    assert notifier.results == {"email": "sent", "slack": "sent"}
    [mail] = inbox.messages
    assert "extract_connectwise" in mail["Subject"] and BILLING_DATE in mail["Subject"]
    assert mail["To"] == "billing@msp.example, ops@msp.example"
    body = body_of(mail)
    assert BILLING_DATE in body and "extract_connectwise" in body and "HTTP 401" in body
    # Evaluated it would read 16789504, a number no path or id of this message holds (7*7 was 49,
    # which a pytest temporary folder like pytest-49 can hold).
    assert "{{ 4096*4099 }}" in body and "16789504" not in body, "exception text is data, never a template"
    assert "&lt;b&gt;bold&lt;/b&gt;" in body
    assert f"/dags/{DAG_ID}/runs/manual__2026-11-01T00%3A00%3A00%2B00%3A00" in body
    assert "/billing-review/runs/manual__2026-11-01T00%3A00%3A00%2B00%3A00/report" in body
    [(path, posted)] = slack.posts
    assert path == f"/services/{SLACK_TOKEN}"
    assert "&lt;!channel&gt;" in posted["text"] and BILLING_DATE in posted["text"]
    for secret in ("hk_live_key", "hs_live_secret", SLACK_TOKEN, "slacktokensecret", SMTP_PASSWORD):
        assert secret not in body and secret not in mail["Subject"] and secret not in posted["text"]


def test_a_long_error_is_scrubbed_before_it_is_cut(alert_connections, monkeypatch, inbox, slack):
    """A secret straddling the cut, an extra named like a header, a lower-case scheme word."""
    password = "hsLongSecret-0042-abcdef"
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUNTRESS_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": "http://127.0.0.1:9",
                "login": "hkLongKey",
                "password": password,
                "extra": {
                    "Authorization": "Token tok-extra-7788",
                    "sqlalchemy_url": "postgresql://u:dbpw-5150@h/db",
                },
            }
        ),
    )
    pad = "x" * (send.MAX_TEXT_CHARS - len("RuntimeError: ") - 10)
    error = RuntimeError(
        f"{pad}{password} then tok-extra-7788, dbpw-5150, authorization: basic dW5rbm93bjpzZWNyZXQx"
    )
    notifier = notify.BillingSyncNotifier()
    notifier(task_context(error))

    assert notifier.results == {"email": "sent", "slack": "sent"}
    body, text = body_of(inbox.messages[0]), slack.posts[0][1]["text"]
    for leaked in (password[:10], "tok-extra-7788", "dbpw-5150", "dW5rbm93bjpzZWNyZXQx"):
        assert leaked not in body and leaked not in text, leaked
    assert "xxxxxxxxxx***" in body, "the error is kept up to the secret, which is masked"


def test_without_connections_a_failure_is_only_logged(monkeypatch, caplog):
    for name in ("AIRFLOW_CONN_BILLING_SYNC_SMTP", "AIRFLOW_CONN_BILLING_SYNC_SLACK"):
        monkeypatch.delenv(name, raising=False)
    notifier = notify.BillingSyncNotifier()
    with caplog.at_level(logging.INFO, logger="billing_sync.notify"):
        notifier(task_context(RuntimeError("boom")))  # must not raise
    assert all(r.startswith("skipped: no connection") for r in notifier.results.values())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Billing sync FAILED: task extract_connectwise, billing date 2026-11-01" in logged
    assert "only logged" in logged


def test_a_broken_channel_does_not_raise(alert_connections, monkeypatch, inbox, slack):
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_SLACK",
        json.dumps(
            {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{_free_port()}", "password": SLACK_TOKEN}
        ),
    )
    notifier = notify.BillingSyncNotifier()
    notifier(task_context(RuntimeError("boom")))
    assert notifier.results["email"] == "sent"
    assert notifier.results["slack"].startswith(f"failed after {send.ALERT_ATTEMPTS} attempt(s): ")
    assert SLACK_TOKEN not in notifier.results["slack"]


def test_summary_only_when_something_needs_review():
    ref = {"run_id": "r1", "billing_date": BILLING_DATE, "invoice_id": 5001, "mode": "push"}
    clean = {
        "counts": {"updated": 3, "quarantined": 0, "total": 3},
        "checks": {"mismatches": []},
        "mode": "push",
    }
    assert build.summary_message(ref, clean) is None
    held = {**clean, "mode": "report_only", "counts": {"planned": 2, "quarantined": 0, "total": 2}}
    assert "held" in build.summary_message(ref, held).subject
    msg = build.summary_message(
        ref,
        {**clean, "counts": {"quarantined": 2, "invalid_usage": 2, "total": 5}, "report": "/r/report.html"},
    )
    text = render.render_text(msg)
    assert "2 key(s) need review" in msg.subject and "invalid_usage: 2" in text
    assert REASON_HELP["invalid_usage"] in text and "/r/report.html" in text


# -- the real DAG --------------------------------------------------------------------------------
@pytest.fixture
def fast_retries(monkeypatch):
    """Retries still happen; only the 2-minute wait between them is skipped."""
    from airflow.models.taskinstance import TaskInstance

    monkeypatch.setattr(TaskInstance, "next_retry_datetime", lambda self: self.end_date)


@pytest.mark.e2e
def test_failed_task_mails_billing_date_and_task(
    alert_connections, fast_retries, sandbox_factory, run_dag, inbox, slack
):
    scenario = generate(6, 3)
    cw, hunt = scenario["connectwise"], scenario["huntress"]
    cw.update(public_key="cw-public-7c1d", private_key="cw-private-REAL-9f3a")  # distinctive, findable
    hunt["api_secret"] = "hs-secret-5e2b"
    sb = sandbox_factory(scenario)
    sb.scenario = copy.deepcopy(scenario)
    sb.scenario["connectwise"]["private_key"] = "wrong-private-key-4711"  # the sandbox answers 401

    dr = run_dag(sb, BILLING_DATE)

    assert dr.state == "failed"
    [mail] = inbox.messages  # once, after the last retry; upstream_failed tasks never ran
    body = body_of(mail)
    assert "extract_connectwise" in mail["Subject"] and BILLING_DATE in mail["Subject"]
    assert "HTTP 401" in body and BILLING_DATE in body
    assert f"/dags/{DAG_ID}/runs/" in body and "/billing-review/runs/" in body
    for secret in (
        "wrong-private-key-4711",
        "cw-private-REAL-9f3a",
        "cw-public-7c1d",
        "hs-secret-5e2b",
        SMTP_PASSWORD,
        SLACK_TOKEN,
    ):
        assert secret not in body and secret not in slack.posts[0][1]["text"]
    assert len(slack.posts) == 1


def test_failed_run_is_closed_as_failed(
    alert_connections, fast_retries, sandbox_factory, run_dag, tmp_path: Path
):
    """A run that fails for good must not stay "running" in billing_runs."""
    scenario = generate(6, 3)
    sb = sandbox_factory(scenario)
    sb.scenario = copy.deepcopy(scenario)
    sb.scenario["connectwise"]["private_key"] = "wrong-private-key-4711"

    assert run_dag(sb, BILLING_DATE).state == "failed"
    with sa.create_engine(f"sqlite:///{tmp_path / 'billing.db'}").connect() as c:
        run = c.execute(sa.text("select status, finished_at, checks from billing_runs")).mappings().one()
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert json.loads(run["checks"]) == {"failed_task": "extract_connectwise"}


@pytest.mark.e2e
def test_run_with_quarantine_sends_summary_with_reasons_and_report(
    alert_connections, sandbox_factory, run_dag, inbox, slack, tmp_path: Path
):
    sb = sandbox_factory(generate(20, 7))
    dr = run_dag(sb, BILLING_DATE)
    assert dr.state == "success"

    with sa.create_engine(f"sqlite:///{tmp_path / 'billing.db'}").connect() as c:
        run = c.execute(sa.text("select counts, report_path from billing_runs")).mappings().one()
    counts = json.loads(run["counts"])
    assert counts["quarantined"] > 0, "the scenario must quarantine keys"
    reasons = {code: n for code, n in counts.items() if code in REASON_HELP and n}

    [mail] = inbox.messages
    body = body_of(mail)
    assert (
        BILLING_DATE in mail["Subject"] and f"{counts['quarantined']} key(s) need review" in mail["Subject"]
    )
    for code, n in reasons.items():
        assert f"{code}: {n}" in body
    page = Path(run["report_path"]) / "report.html"
    assert page.is_file() and str(page) in body
    assert "/billing-review/runs/" in body and "/report" in body
    assert f"/dags/{DAG_ID}/runs/" in body
    [(_, posted)] = slack.posts
    assert all(f"{code}: {n}" in posted["text"] for code, n in reasons.items())
    assert "Needs review: quarantine" in page.read_text(encoding="utf-8")
