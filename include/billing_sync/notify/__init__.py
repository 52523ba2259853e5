"""Alerts: a task failed, or a finished run left keys for a person to review or found new organizations.

The rooms, imported one way (model ← render ← build; send knows the model only; notifier joins them):
    model     the message, plain data
    render    one renderer per medium: log text, HTML mail, Slack mrkdwn
    build     a task's failure alert and a finished run's summary, from the run's data
    send      delivery by SMTP and Slack: secrets scrubbed, each channel retried, never raising
    notifier  the Airflow notifier (`on_failure_callback`) and the run summary record_run sends

Of Airflow only `airflow.sdk.BaseNotifier` is imported at module level; hooks, providers and the
billing DB load when a message is sent. This package exposes what the DAGs import.
"""

from __future__ import annotations

from .notifier import BillingSyncNotifier, notify_run_summary

__all__ = ["BillingSyncNotifier", "notify_run_summary"]
