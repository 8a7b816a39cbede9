"""Time-based checks are judged at the run's time (its data interval end, else logical date), not the wall
clock: a retry or a backfill of a run judges the same way whenever it runs.

The dates are chosen so that the wall clock could never give these verdicts: a run in 2020 whose data is
fresh for its own day (stale for any day since) and a run in 2099 whose data misses its own deadline
(data from 2099 is newer than any deadline the wall clock could ask for)."""

from __future__ import annotations

from datetime import UTC, datetime

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag

from airflow_opsflow.triggers.data_condition import DataConditionTrigger, poll_condition
from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "run_time.py")
BERLIN = "Europe/Berlin"


def loads(db: Database, newest: pendulum.DateTime) -> None:
    """A loads table whose newest row is ``newest``, stored as naive UTC text as most pipelines write it."""
    text = newest.in_timezone("UTC").naive().isoformat(sep=" ")
    db.execute("DROP TABLE IF EXISTS loads", "CREATE TABLE loads (loaded_at TIMESTAMP)",
               "INSERT INTO loads VALUES ('2020-01-01 00:00:00')", f"INSERT INTO loads VALUES ('{text}')")


def test_a_past_run_is_judged_on_its_own_day(db: Database) -> None:
    tuesday_7am = pendulum.datetime(2020, 12, 22, 7, tz=BERLIN)
    loads(db, pendulum.datetime(2020, 12, 22, 5, tz=BERLIN))  # Tuesday's load, in by 06:00
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id}, logical_date=tuesday_7am)
    assert run.task_states == {"check": "success", "poked": "success", "deferred": "success"}
    results = results_by_name(run.xcom("check"))
    fresh = results["loads_by_six"]
    assert fresh["status"] == "pass", fresh["message"]
    assert fresh["observed"]["deadline"] == "2020-12-22T06:00:00+01:00"  # the run's day, not today's
    recent = results["loads_recent"]
    assert recent["status"] == "pass" and recent["observed"]["age_s"] == 2 * 3600  # at the run's time


def test_a_run_misses_its_own_deadline(db: Database) -> None:
    tuesday_7am = pendulum.datetime(2099, 12, 22, 7, tz=BERLIN)
    loads(db, pendulum.datetime(2099, 12, 21, 23, tz=BERLIN))  # Monday's data only
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id}, logical_date=tuesday_7am)
    assert run.task_states == {"check": "failed", "poked": "failed", "deferred": "failed"}
    results = results_by_name(run.xcom("check", key="results"))
    late = results["loads_by_six"]
    assert late["status"] == "fail"
    assert "no data for Tue 2099-12-22 by its 06:00 Europe/Berlin deadline" in late["message"]
    assert "8h ago" in late["message"]  # measured at the run's time
    assert results["loads_recent"]["status"] == "pass"  # 8 h old at 07:00, within max_age 12h


def test_the_trigger_judges_at_the_run_time_it_was_given(sqlite_db: Database) -> None:
    loads(sqlite_db, pendulum.datetime(2020, 12, 22, 5, tz=BERLIN))
    at = datetime(2020, 12, 22, 6, 30, tzinfo=UTC)
    trigger = DataConditionTrigger(sqlite_db.conn_id, None, checks=_deadline_spec(), poll_interval=1,
                                   run_time=at.isoformat())
    _, kwargs = trigger.serialize()
    assert kwargs["run_time"] == "2020-12-22T06:30:00+00:00"
    assert DataConditionTrigger(**kwargs)._poll()[0] is True
    # The same condition judged at a later day's time does not hold: Tuesday's data is not Wednesday's.
    assert poll_condition(sqlite_db.conn_id, None, None, _deadline_spec(), None,
                          datetime(2020, 12, 23, 6, 30, tzinfo=UTC))[0] is False


def _deadline_spec() -> dict[str, object]:
    from airflow_opsflow.checks.loader import load_suite

    suite = load_suite(dags.DEADLINE_ONLY)
    return suite.model_dump(by_alias=True, exclude_none=True, mode="json")
