"""The package's errors: one base, two kinds.

    BillingSyncError
    ├── PermanentError      retrying cannot help: the task fails at once, without retries
    │   ├── ConfigError             the Variable / params are unusable (config.py)
    │   ├── NoInvoiceError          no invoice will ever bill the billing date (steps.find_invoice)
    │   │   └── InvoiceChoiceError  the invoices cannot decide: a pinned one does not stand, or two
    │   │                           stand for one date (huntress.select_invoice)
    │   └── CredentialsError        the API refused the connection's credentials (also an ApiError)
    └── TransientError      may pass: the task retries
        └── ApiError                an API answered in a way the sync cannot use (http.py, clients)
            └── CredentialsError    401/403, ConnectWise's 404 to the first request, an unknown
                                    company, a malformed connection

A `CredentialsError` is an `ApiError` (whoever handles API failures, such as the push recording
`push_rejected`, still handles it) and a `PermanentError`; when it reaches a task, permanent wins
(`is_permanent`). The DAG turns a PermanentError into an immediate task failure in one place
(`failing_fast`, wrapped around every task body).

Imports nothing of ours (and nothing of Airflow until a permanent error is raised in a task).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class BillingSyncError(Exception):
    """Base of every error the sync raises on purpose."""


class PermanentError(BillingSyncError):
    """Retrying cannot help (configuration, the invoice choice, refused credentials): fail now."""


class TransientError(BillingSyncError):
    """May pass on a later attempt (a network failure, a server error, a bad answer): retry."""


class ConfigError(PermanentError, ValueError):
    """The configuration is unusable; the message says which key and why."""


class NoInvoiceError(PermanentError, RuntimeError):
    """No invoice will ever bill this billing date (newer ones already exist, the pinned one does not
    stand, or two stand for it): the sensor fails for good instead of poking again."""


class InvoiceChoiceError(NoInvoiceError, ValueError):
    """No invoice can bill the date, and waiting will not change that (the sensor fails for good)."""


class ApiError(TransientError, RuntimeError):
    """An API answered in a way the sync cannot use. `status` is None for transport failures."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class CredentialsError(ApiError, PermanentError):
    """The API will not take the connection as it is: credentials refused (401/403; ConnectWise's 404
    to the first authenticated request; an unknown company id) or the connection is malformed."""


# HTTP statuses that mean "these credentials are refused", on either API.
CREDENTIAL_STATUSES = frozenset({401, 403})


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentError)


@contextmanager
def failing_fast() -> Iterator[None]:
    """Around a task body: a PermanentError becomes Airflow's AirflowFailException (fail now, no
    retries), chained to the original, whose text it carries; everything else passes unchanged."""
    try:
        yield
    except PermanentError as exc:
        from airflow.sdk.exceptions import AirflowFailException  # loaded only on this path

        raise AirflowFailException(str(exc)) from exc


def unwrap(exc: BaseException | str | None) -> BaseException | str | None:
    """The error a person should read: a BillingSyncError that `failing_fast` wrapped, else `exc` (an
    Airflow context may carry the error as text)."""
    cause = getattr(exc, "__cause__", None)
    return cause if isinstance(cause, BillingSyncError) else exc
