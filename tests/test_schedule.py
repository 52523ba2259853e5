"""The schedule on any date: which billing date the scheduler runs first, with the clock moved.

What a user who unpauses the DAG sees (README "What a run does"): the run of the latest billing
day that has passed, at once (Airflow's `catchup=False` keeps the newest missed tick), then one
run on each billing day. The invoice sensor makes the first run wait when that invoice is not out
yet. Older billing dates run only when asked for (trigger or backfill).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from tests.conftest import ROOT
from tests.e2e.conftest import DAG_ID

# (the clock, the billing day in the Variable, the billing date of the first run)
CLOCKS = [
    ("2026-12-01T00:00:00", 1, "2026-12-01"),  # a billing day, at its tick
    ("2026-12-01T05:59:00", 1, "2026-12-01"),  # a billing day, before the invoice is out
    ("2026-12-15T12:00:00", 1, "2026-12-01"),  # mid-month
    ("2027-02-28T23:59:59", 1, "2027-02-01"),  # the last second before a tick
    ("2028-02-29T08:00:00", 1, "2028-02-01"),  # a leap day
    ("2026-12-14T23:00:00", 15, "2026-11-15"),  # the eve of a mid-month billing day
    ("2026-12-15T00:00:30", 15, "2026-12-15"),  # that billing day, just after its tick
]


def _dag(monkeypatch, billing_day: int):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", f'{{"billing_day": {billing_day}}}')
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    # What the scheduler holds: the serialized DAG, with Airflow's core timetable.
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(bag.dags[DAG_ID]))


def _next(dag, last):
    from airflow.timetables.base import TimeRestriction

    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup)
    return dag.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)


@pytest.mark.parametrize(("now", "billing_day", "first"), CLOCKS, ids=[c[0] for c in CLOCKS])
def test_first_run_is_the_latest_billing_day_that_has_passed(monkeypatch, now, billing_day, first):
    dag = _dag(monkeypatch, billing_day)
    with time_machine.travel(datetime.fromisoformat(now).replace(tzinfo=UTC), tick=False):
        info = _next(dag, None)
        assert info.logical_date.date() == date.fromisoformat(first)
        assert info.logical_date.time().isoformat() == "00:00:00"  # midnight UTC: logical date = billing date
        assert info.run_after <= datetime.fromisoformat(now).replace(tzinfo=UTC)  # due at once
        # After it, the next run is the following month's billing day, in the future.
        following = _next(dag, info.data_interval)
        assert following.logical_date.day == billing_day
        assert following.logical_date > info.logical_date
        assert (following.logical_date.year * 12 + following.logical_date.month) - (
            info.logical_date.year * 12 + info.logical_date.month
        ) == 1
