"""DataConditionSensor and its trigger, in real DAG runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed

from airflow_opsflow.triggers.data_condition import DataConditionTrigger
from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "sensors.py")


def _arrivals(db: Database) -> None:
    db.execute("DROP TABLE IF EXISTS arrivals", "CREATE TABLE arrivals (id INTEGER, day VARCHAR(10))",
               "INSERT INTO arrivals VALUES (1, '2024-01-01')")


def _arrive_later(db: Database, uri_or_path: str, delay: float) -> threading.Thread:
    """Insert today's rows from another connection after ``delay`` seconds, as a loader would."""
    def load() -> None:
        time.sleep(delay)
        if db.name == "sqlite":
            import sqlite3

            conn = sqlite3.connect(uri_or_path)
        else:
            import psycopg2

            conn = psycopg2.connect(uri_or_path)
        cur = conn.cursor()
        cur.execute("INSERT INTO arrivals VALUES (2, '2024-01-02')")
        cur.execute("INSERT INTO arrivals VALUES (3, '2024-01-02')")
        conn.commit()
        conn.close()

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    return thread


def _target(db: Database, request: pytest.FixtureRequest) -> str:
    if db.name == "sqlite":
        return str(request.getfixturevalue("tmp_path") / "ops.db")
    return str(request.getfixturevalue("pg_uri"))


def test_poke_and_reschedule_wait_for_the_data(db: Database, request: pytest.FixtureRequest) -> None:
    _arrivals(db)
    loader = _arrive_later(db, _target(db, request), delay=3)
    started = time.monotonic()
    run = run_dag(dags.modes_dag, conf={"conn_id": db.conn_id})
    loader.join()
    assert run.task_states == {"poke": "success", "reschedule": "success"}
    assert time.monotonic() - started >= 3


@pytest.mark.parametrize("dag_name,detail", [
    ("deferred_dag", ("all conditions hold",)),
    ("deferred_sql_dag", ("first value: True", "first value: 1")),
])
def test_deferred_sensors_wait_in_the_triggerer(db: Database, request: pytest.FixtureRequest, dag_name: str,
                                                detail: tuple[str, ...]) -> None:
    _arrivals(db)
    loader = _arrive_later(db, _target(db, request), delay=3)
    dag = getattr(dags, dag_name)
    run = run_dag(dag, conf={"conn_id": db.conn_id})
    loader.join()
    (task_id,) = dag.task_ids
    assert run.task_states == {task_id: "success"}
    # it deferred (the data was not there at first) and the trigger polled until the data came
    assert run.xcom(task_id)["polls"] >= 2
    assert run.xcom(task_id)["detail"] in detail


def test_freshness_condition(db: Database) -> None:
    seed(db.conn, problems=False)
    assert run_dag(dags.fresh_dag, conf={"conn_id": db.conn_id}).task_states == {"fresh": "success"}


def test_times_out_when_data_never_comes(db: Database) -> None:
    _arrivals(db)
    started = time.monotonic()
    run = run_dag(dags.timeout_dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"never": "failed"}
    assert time.monotonic() - started < 60


def test_unevaluable_condition_fails_fast(db: Database, capfd: pytest.CaptureFixture[str]) -> None:
    _arrivals(db)
    started = time.monotonic()
    run = run_dag(dags.broken_dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"broken": "failed"}
    assert time.monotonic() - started < 25  # not the 30 s timeout
    out = capfd.readouterr()
    assert "column 'no_such_column' not found in table 'arrivals'" in out.out + out.err


def test_trigger_serializes_round_trip() -> None:
    trigger = DataConditionTrigger("c", "postgres", sql="SELECT 1", poll_interval=5, statement_timeout=2)
    path, kwargs = trigger.serialize()
    assert path == "airflow_opsflow.triggers.data_condition.DataConditionTrigger"
    assert DataConditionTrigger(**kwargs).serialize() == (path, kwargs)


def test_trigger_never_blocks_the_event_loop(pg_db: Database) -> None:
    """A poll that takes a second in the database must leave the triggerer's loop free."""
    trigger = DataConditionTrigger(pg_db.conn_id, "postgres", sql="SELECT true FROM pg_sleep(1)",
                                   poll_interval=0.1)

    async def main() -> tuple[list[dict[str, object]], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.02)

        tick = asyncio.create_task(ticker())
        events = [e.payload async for e in trigger.run()]
        done.set()
        await tick
        return events, ticks

    events, ticks = asyncio.run(main())
    assert events == [{"status": "success", "detail": "first value: True", "polls": 1}]
    assert ticks >= 25  # the loop kept running through the 1 s query
