"""Delivery of a message: scrubbed of secrets, logged, sent by SMTP and Slack, retried; never raises.

Channels are Airflow connections, each optional (docs/operations.md):
    billing_sync_smtp   SMTP connection of the SMTP provider; extra `to` (list or "a@x, b@y"),
                        optional `cc`, `from_email`, plus the provider's own (disable_tls, ...)
    billing_sync_slack  Slack incoming-webhook connection of the Slack provider
With neither, a message is only logged. A channel that fails (the mail server down or restarting) is
tried again, ALERT_ATTEMPTS times in all over about ALERT_RETRY_WAIT_S × 3.

Before rendering, every value is scrubbed of the logins and passwords of our connections (an
exception's text can carry a URL or a header). The renderers come in as `Media`, so that delivery
knows the message model only. Hooks and providers load when a message is sent.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .. import tenants
from ..names import (
    CONNECTWISE_CONN_ID,
    DB_CONN_ID,
    HUNTRESS_CONN_ID,
    SLACK_CONN_ID,
    SMTP_CONN_ID,
)
from ..scrub import cut, scrubber, secrets_of
from .model import Message

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context

log = logging.getLogger(__name__)

# Connections whose login/password must never reach a message.
SECRET_CONN_IDS = (HUNTRESS_CONN_ID, CONNECTWISE_CONN_ID, DB_CONN_ID, SMTP_CONN_ID, SLACK_CONN_ID)
DEFAULT_FROM_EMAIL = "billing-sync@localhost"
MAX_TEXT_CHARS = 2000  # any one value of a message (an error text is the long one)
# A mail server restarting is back within seconds: the channels that failed are tried again after
# ALERT_RETRY_WAIT_S, then twice that. Longer outages are for the run's record, not the task's time.
ALERT_ATTEMPTS = 3
ALERT_RETRY_WAIT_S = 5.0
MAX_RECORDED_ERROR_CHARS = 500


@dataclass(frozen=True)
class Media:
    """How a message reads where it goes: the log, an HTML mail, a Slack text (render's functions)."""

    log: Callable[[Message], str]
    email: Callable[[Message], str]
    slack: Callable[[Message], str]


Sender = Callable[[Any, str, Message, Media, "Context"], str]


# -- secrets -------------------------------------------------------------------------------------
def connection_secrets(conn_ids: Iterable[str] = SECRET_CONN_IDS) -> list[str]:
    """The credentials of the connections that exist, in every form they travel in (scrub.py)."""
    found: list[str] = []
    for conn_id in conn_ids:
        conn = get_connection(conn_id)
        if conn is not None:
            found += secrets_of(conn)
    return found


def tenant_conn_ids() -> list[str]:
    """Every tenant's Huntress and ConnectWise connection ids: an alert of one tenant must not leak
    another's credentials either (none when the tenants file cannot be read: it is its own alert)."""
    try:
        return [c for t in tenants.configured() for c in (t.huntress_conn_id, t.connectwise_conn_id)]
    except tenants.TenantsFileError:
        return []


# -- Airflow lookups (lazy imports) ----------------------------------------------------------------
def get_connection(conn_id: str) -> Any | None:
    """The connection, or None when it is not defined (or cannot be looked up)."""
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    except Exception as exc:  # secrets backend down: a lookup problem must not stop the alert
        log.warning("could not look up connection %s: %s", conn_id, type(exc).__name__)
        return None


def _extra(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:
        return {}
    return extra if isinstance(extra, dict) else {}


# -- sending -------------------------------------------------------------------------------------
def dispatch(
    message: Message,
    media: Media,
    context: Context | None = None,
    smtp_conn_id: str = SMTP_CONN_ID,
    slack_conn_id: str = SLACK_CONN_ID,
) -> dict[str, str]:
    """Log the message and send it through every configured channel. Returns channel → outcome
    ("sent", "skipped: ...", "failed: ..."); never raises."""
    scrub = scrubber(connection_secrets((*SECRET_CONN_IDS, *tenant_conn_ids(), smtp_conn_id, slack_conn_id)))
    # Scrub, then cut: a secret cut in two is no longer found by its value.
    message = message.map_text(lambda text: cut(scrub(text), MAX_TEXT_CHARS))
    level = logging.ERROR if message.severity == "failure" else logging.WARNING
    log.log(level, "billing sync alert:\n%s", media.log(message))
    results: dict[str, str] = {}
    pending: dict[str, tuple[str, Any, Sender]] = {}
    channels: tuple[tuple[str, str, Sender], ...] = (
        ("email", smtp_conn_id, _send_email),
        ("slack", slack_conn_id, _send_slack),
    )
    for name, conn_id, send in channels:
        conn = get_connection(conn_id)
        if conn is None:
            results[name] = f"skipped: no connection {conn_id}"
        else:
            pending[name] = (conn_id, conn, send)
    # Rounds, not a loop per channel: a second channel down costs no extra wait.
    for attempt in range(1, ALERT_ATTEMPTS + 1):
        if attempt > 1:
            time.sleep(ALERT_RETRY_WAIT_S * 2 ** (attempt - 2))
        for name, (conn_id, conn, send) in list(pending.items()):
            try:
                # The task context Airflow passed (or none): what the providers' notifiers take.
                outcome = send(conn, conn_id, message, media, cast("Context", dict(context or {})))
            except Exception as exc:
                error = cut(scrub(f"{type(exc).__name__}: {exc}"), MAX_RECORDED_ERROR_CHARS)
                results[name] = f"failed after {attempt} attempt(s): {error}"
                log.warning(
                    "billing sync alert: %s channel %s, attempt %d: %s", name, conn_id, attempt, error
                )
                continue
            results[name] = outcome if attempt == 1 or outcome != "sent" else f"sent on attempt {attempt}"
            del pending[name]
        if not pending:
            break
    for name, (conn_id, _, _) in pending.items():
        log.error("billing sync alert NOT delivered through %s (%s): %s", name, conn_id, results[name])
    if all(r.startswith("skipped: no connection") for r in results.values()):
        log.info(
            "no notification connection (%s, %s) configured: the alert was only logged",
            smtp_conn_id,
            slack_conn_id,
        )
    return results


def _send_email(conn: Any, conn_id: str, message: Message, media: Media, context: Context) -> str:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    extra = _extra(conn)
    to = _addresses(extra.get("to"))
    if not to:
        log.warning("connection %s has no extra.to: no e-mail sent", conn_id)
        return "skipped: extra.to is empty"
    notifier = SmtpNotifier(
        to=to,
        cc=_addresses(extra.get("cc")) or None,
        smtp_conn_id=conn_id,
        from_email=extra.get("from_email") or DEFAULT_FROM_EMAIL,
        subject=" ".join(message.subject.split()),  # no line breaks in a header
        html_content=media.email(message),
    )
    # notify(), not __call__: __call__ renders the fields as Jinja templates, and our text holds
    # names from Huntress/ConnectWise ("{{ conn... }}" must stay text).
    notifier.notify(context)
    return "sent"


def _send_slack(conn: Any, conn_id: str, message: Message, media: Media, context: Context) -> str:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    # Typed as its base: the provider's own `notify` carries no annotations.
    notifier: BaseNotifier = SlackWebhookNotifier(
        slack_webhook_conn_id=conn_id, text=media.slack(message), timeout=30
    )
    notifier.notify(context)
    return "sent"


def _addresses(value: Any) -> list[str]:
    if isinstance(value, str):
        return [a for a in re.split(r"\s*[,;]\s*", value.strip()) if a]
    if isinstance(value, list | tuple):
        return [str(a).strip() for a in value if str(a).strip()]
    return []
