"""The mail server is down when an alert is due.

Decision (the issue leaves it open): both. The alert is retried in the task (send.ALERT_ATTEMPTS
tries, waits doubling from send.ALERT_RETRY_WAIT_S: a mail server restarting is back within
them); one still undelivered is logged as an error and reported on the billing run
(`billing_runs.checks["alerts"]`). Neither changes the run's outcome.

The mail server is real (aiosmtpd on loopback); "down" is its port with nothing listening, as after
the process died. The retry waits are shortened: the number of attempts is the product's.
"""

from __future__ import annotations

import email
import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from billing_sandbox.generate import generate
from billing_sync import notify, steps, store
from billing_sync.names import DAG_ID
from billing_sync.notify import send
from tests.helpers.oracle import expected_state
from tests.proof.conftest import task_states
from tests.proof.helpers import BILLING_DATE, cw_quantities, db_connection_env
from tests.proof.servers import free_port

SMTP_PASSWORD = "smtp-pw-7731-never-shown"
TENANT = store.DEFAULT_TENANT


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class Recorder(logging.Handler):
    """The alert log lines, however the task runner routes its logs; `on_record` runs for each."""

    def __init__(self, on_record=None) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def lines(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def alert_log() -> Iterator[Recorder]:
    recorder = Recorder()
    logger = logging.getLogger(notify.__name__)  # the package's: its modules' records reach it
    logger.addHandler(recorder)
    yield recorder
    logger.removeHandler(recorder)


@pytest.fixture
def mail_down(monkeypatch) -> int:
    """The SMTP connection names a loopback port nothing listens on (the only channel); its port."""
    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_BILLING_SYNC_SMTP", smtp_connection(port))
    monkeypatch.delenv("AIRFLOW_CONN_BILLING_SYNC_SLACK", raising=False)
    monkeypatch.setattr(send, "ALERT_RETRY_WAIT_S", 0.05)
    return port


def smtp_connection(port: int) -> str:
    extra = {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 0}
    extra.update(from_email="airflow@msp.example", to=["billing@msp.example"])
    return json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "password": SMTP_PASSWORD, "extra": extra}
    )


def test_mail_down_for_the_run_summary_changes_nothing_and_is_reported_on_the_run(
    sandbox_factory, dag_runner, mail_down, alert_log, tmp_path
):
    """The real DAG, a run that quarantines keys (a summary is due), the mail server down throughout."""
    scenario = generate(20, 7)
    sb = sandbox_factory(scenario)
    db = f"sqlite:///{tmp_path / 'billing.db'}"

    dr = dag_runner(sb, BILLING_DATE, db_url=db)

    assert dr.state == "success", task_states(dr)
    assert task_states(dr)["record_run"] == ("success", 1), "the undelivered alert failed no task"
    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    assert cw_quantities(sb.connectwise_url) == want
    eng = store.make_engine(db)
    [run] = store.list_runs(eng, tenant=TENANT)
    assert run["status"] == "success" and run["counts"]["quarantined"] > 0, "a summary was due"
    assert run["checks"]["products"] and "money" in run["checks"], "the run's own checks are kept"
    sent = run["checks"]["alerts"]["email"]
    assert sent.startswith(f"failed after {send.ALERT_ATTEMPTS} attempt(s): ConnectionRefusedError"), sent
    warned = [x for x in alert_log.lines(logging.WARNING) if "channel billing_sync_smtp, attempt" in x]
    assert len(warned) == send.ALERT_ATTEMPTS, alert_log.lines(logging.WARNING)
    [error] = [x for x in alert_log.lines(logging.ERROR) if "NOT delivered" in x]
    assert "through email (billing_sync_smtp)" in error
    assert SMTP_PASSWORD not in json.dumps(run["checks"]) + error
    eng.dispose()


def test_mail_server_back_while_the_alert_is_retried_delivers_it_once(
    mail_down, monkeypatch, tmp_path, alert_log
):
    """The server comes up right after the first attempt failed (started by that attempt's log line,
    so no timing decides it): the second attempt delivers, once; nothing is reported on the run."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=mail_down)

    up: list[bool] = []

    def come_back(record: logging.LogRecord) -> None:
        if "attempt 1:" in record.getMessage() and not up:
            controller.start()
            up.append(True)

    alert_log.on_record = come_back
    db = closed_run(monkeypatch, tmp_path, "success")
    try:
        ref = {"run_id": "r-mail", "billing_date": BILLING_DATE, "invoice_id": 5001, "mode": "push"}
        result = {"counts": {"quarantined": 2, "invalid_usage": 2, "total": 5}, "checks": {}, "mode": "push"}
        results = notify.notify_run_summary(ref, result, {})
    finally:
        if up:
            controller.stop()
    assert results == {"email": "sent on attempt 2", "slack": "skipped: no connection billing_sync_slack"}
    [mail] = inbox.messages
    assert "2 key(s) need review" in mail["Subject"]
    assert "alerts" not in store.get_run(store.make_engine(db), "r-mail", tenant=TENANT)["checks"]


def test_mail_down_when_a_task_fails_for_good_is_reported_on_the_failed_run(
    mail_down, monkeypatch, tmp_path, alert_log
):
    """The failure callback's order: the run is closed as failed, then the alert; it cannot go out."""
    db = closed_run(monkeypatch, tmp_path, None)
    steps.mark_run_failed("r-mail", "extract_connectwise", TENANT)
    ti = SimpleNamespace(
        dag_id=DAG_ID, task_id="extract_connectwise", run_id="r-mail", try_number=3, map_index=-1
    )
    context: dict[str, Any] = {
        "ti": ti,
        "run_id": "r-mail",
        "exception": RuntimeError("ConnectWise answered 503"),
        "logical_date": datetime.fromisoformat(BILLING_DATE).replace(tzinfo=UTC),
    }
    notifier = notify.BillingSyncNotifier()
    notifier(context)  # must not raise

    assert notifier.results["email"].startswith(f"failed after {send.ALERT_ATTEMPTS} attempt(s)")
    run = store.get_run(store.make_engine(db), "r-mail", tenant=TENANT)
    assert run["status"] == "failed"
    assert run["checks"] == {"failed_task": "extract_connectwise", "alerts": notifier.results}
    assert len([x for x in alert_log.lines(logging.ERROR) if "NOT delivered through email" in x]) == 1


def closed_run(monkeypatch, tmp_path, status: str | None) -> str:
    """A billing DB holding run `r-mail`: closed with `status`, or left running (None)."""
    db = f"sqlite:///{tmp_path / 'billing.db'}"
    for k, v in db_connection_env(db).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    eng = store.engine_for(db)
    store.start_run(eng, "r-mail", date.fromisoformat(BILLING_DATE), 5001, "push", {}, tenant=TENANT)
    if status:
        store.finish_run(eng, "r-mail", status, {"quarantined": 2}, {"mismatches": []}, tenant=TENANT)
    eng.dispose()
    return db
