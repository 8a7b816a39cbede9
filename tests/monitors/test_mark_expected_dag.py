"""A person marks a flagged metric point expected with the CLI, between real DAG runs: the mark is kept with
who and when, the incident closes, and the task's next run posts the resolution in the alert's thread once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.incidents.lifecycle import fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo
from airflow_opsflow.monitors.metric import Series
from airflow_opsflow.monitors.repo import MetricRepo
from airflow_opsflow.state.store import StateStore
from tests.conftest import ROOT, Database
from tests.helpers import DAGS, load_module, results_by_name, state_on
from tests.monitors.orders import DROP_DAY, START, create_orders

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
dags = load_module(DAGS / "monitors.py")
PREFIX = "fbk_"
CHECK = ["--dag", "test_monitors", "--task", "daily_orders", "--check", "orders_per_day"]
KEY = "test_monitors/daily_orders/orders_per_day"


@pytest.fixture
def orders(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    state_on(db, monkeypatch, PREFIX)  # a fresh state store: no history, incidents or marks of other tests
    table = create_orders(db)
    yield table
    db.execute(f"DROP TABLE {table}")


@pytest.fixture
def state(db: Database, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StateStore]:
    """The state store the DAG and the CLI use, opened by the test to read it back."""
    if db.dialect == "sqlite":
        store = StateStore(lambda: sqlite3.connect(tmp_path / "ops.db"), "sqlite")
    else:
        import psycopg2

        uri = request.getfixturevalue("pg_uri")
        store = StateStore(lambda: psycopg2.connect(uri), "postgres", prefix=PREFIX)
    yield store
    store.close()


def on_day(day: float) -> pendulum.DateTime:
    return pendulum.instance((START + timedelta(days=day)).replace(tzinfo=UTC))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as people run it, with the test's Airflow settings and connections (its environment)."""
    return subprocess.run([sys.executable, "-m", "airflow_opsflow.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), cwd=ROOT, timeout=120, check=False)


def resolutions(fake_slack: FakeSlack, ts: str) -> list[str]:
    return [m.text or "" for m in fake_slack.thread("#data-quality", ts)
            if (m.text or "").startswith(":white_check_mark: Resolved")]


def test_a_marked_drop_closes_its_incident_and_the_next_run_posts_the_resolution_once(
        db: Database, orders: str, state: StateStore, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": db.conn_id, "table": orders}
    assert run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY - 1.1)).task_states == {"daily_orders": "success"}
    drop = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 1.1))
    assert drop.task_states == {"daily_orders": "failed"}
    assert results_by_name(drop.xcom("daily_orders", key="results"))["orders_per_day"]["observed"]["bucket"] == \
        "Mon 2026-06-15"
    [alert] = fake_slack.messages("#data-quality")
    assert "orders_per_day" in (alert.text or "")

    done = cli("mark-expected", *CHECK, "--bucket", "2026-06-15", "--by", "alice", "--note", "Whit Monday")
    assert done.returncode == 0, done.stderr
    assert "2026-06-14T22:00:00+00:00" in done.stdout and "marked expected by alice" in done.stdout
    assert "resolved; the next run of the task sends the resolution to slack:slack_api_default/#data-quality" \
        in done.stdout
    [mark] = MetricRepo(state).marks_of(KEY)
    assert (mark.bucket, mark.segment, mark.mark, mark.marked_by, mark.note) == (
        datetime(2026, 6, 14, 22, tzinfo=UTC), (), "expected", "alice", "Whit Monday")
    assert mark.marked_at.tzinfo is not None  # when: the store's UTC text, read back
    incidents = IncidentRepo(state)
    fp = fingerprint("test_monitors", "daily_orders", "orders_per_day")
    incident = incidents.get(fp)
    assert incident is not None and incident.status == "resolved" and incident.summary["dismissed"]["by"] == "alice"
    assert [(d.transition, d.status) for d in incidents.pending([fp])] == [("resolved", "pending")]
    assert resolutions(fake_slack, alert.ts) == []  # delivered by the task's next run, not by the CLI
    again = cli("mark-expected", *CHECK, "--bucket", "2026-06-15", "--by", "alice")
    assert again.returncode == 0 and "already marked expected by alice" in again.stdout

    history = MetricRepo(state).load([Series(KEY, ())], on_day(DROP_DAY + 3), 200, "Europe/Berlin")[
        Series(KEY, ()).series_id]
    assert [p.at.date().isoformat() for p in history if p.marked] == ["2026-06-15"]

    tuesday = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 2.1))
    assert tuesday.task_states == {"daily_orders": "success"}
    [seen] = [i for i in tuesday.xcom("daily_orders", key="incidents") if i["check"] == "orders_per_day"]
    assert (seen["status"], seen["transitions"]) == ("resolved", [])  # the run resolved nothing itself
    [resolution] = resolutions(fake_slack, alert.ts)
    assert "orders_per_day" in resolution and "marked expected by alice" in resolution and "Whit Monday" in resolution
    assert incidents.pending([fp]) == []
    posted = len(fake_slack.messages("#data-quality"))

    rerun = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 2.1),
                    run_after=on_day(DROP_DAY + 2.1) + timedelta(minutes=1))
    assert rerun.task_states == {"daily_orders": "success"}
    assert len(resolutions(fake_slack, alert.ts)) == 1 and len(fake_slack.messages("#data-quality")) == posted

    # The marked day itself judged again (a manual re-run of Monday's run): the person's word stands.
    monday = run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 1.1),
                     run_after=on_day(DROP_DAY + 1.1) + timedelta(hours=2))
    assert monday.task_states == {"daily_orders": "success"}
    result = results_by_name(monday.xcom("daily_orders"))["orders_per_day"]
    assert result["status"] == "pass" and "marked expected by alice" in result["message"], result["message"]
    assert len(fake_slack.messages("#data-quality")) == posted

    listed = cli("marks", *CHECK)
    assert listed.returncode == 0 and "alice" in listed.stdout and "Whit Monday" in listed.stdout


def test_the_cli_names_what_it_cannot_find(db: Database, orders: str, state: StateStore) -> None:
    conf = {"conn_id": db.conn_id, "table": orders}
    assert run_dag(dags.dag, conf=conf, logical_date=on_day(DROP_DAY + 1.1)).task_states == {"daily_orders": "failed"}
    unknown = cli("mark-expected", *CHECK, "--bucket", "2026-07-01", "--by", "alice")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: dag 'test_monitors', task 'daily_orders', check 'orders_per_day': "
                                     "no stored bucket starts at '2026-07-01'; the nearest flagged buckets "
                                     "(starts, UTC): 2026-06-14T22:00:00+00:00")
    bad = cli("mark-expected", *CHECK, "--bucket", "15.06.2026", "--by", "alice")
    assert bad.returncode == 2 and "field 'bucket': '15.06.2026' is not a date" in bad.stderr
    segment = cli("mark-expected", *CHECK, "--bucket", "2026-06-15", "--segment", "DE", "--by", "alice")
    assert segment.returncode == 2 and "field 'segment': 'DE' is not NAME=VALUE" in segment.stderr
    check = cli("mark-expected", *CHECK[:-1], "orders_per_week", "--bucket", "2026-06-15", "--by", "alice")
    assert check.returncode == 2 and "check 'orders_per_week': no metric history is stored" in check.stderr
    normal = cli("unmark", *CHECK, "--bucket", "2026-06-15")
    assert normal.returncode == 0 and "nothing removed" in normal.stdout
    missing = cli("marks", *CHECK, "--state-conn-id", "no_such_conn")
    assert missing.returncode == 1 and "'no_such_conn'" in missing.stderr and "Traceback" not in missing.stderr
    assert MetricRepo(state).marks_of(KEY) == []
