"""A real deadline alert (Airflow 3.1+) on a DAG that misses it, through a real scheduler and triggerer.

``dag.test()`` never fires deadline alerts: the scheduler's loop marks a deadline missed and queues its
callback, which the triggerer runs. So this starts ``airflow scheduler`` and ``airflow triggerer`` (their own
AIRFLOW_HOME, a copy of the session's migrated metadata DB): ``airflow dags reserialize`` stores
tests/dags/deadline.py, ``airflow dags trigger`` queues a run of it, paused, so the run stays queued past its
deadline (queued + 1 s) with no task to execute. The alert must land in the fake Slack and the incident in
the state database."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_opsflow_testing.dag_runner import airflow_env
from airflow_opsflow_testing.slack_server import FakeSlack

from tests.conftest import Database
from tests.helpers import DAGS
from tests.ui.test_airflow_ui import _free_ports, _stop

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
WAIT_S = 240  # a safety limit: the alert usually lands within seconds of both processes being up


def _wait(what: str, check: Any, processes: dict[str, subprocess.Popen[bytes]], logs: Path) -> Any:
    limit = time.monotonic() + WAIT_S
    while time.monotonic() < limit:
        for name, p in processes.items():
            if p.poll() is not None:
                raise AssertionError(f"airflow {name} exited ({p.returncode}): see {logs / name}.log")
        found = check()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; see the logs in {logs}")


def test_a_dag_run_that_misses_its_deadline_alerts_through_the_triggerer(
        airflow_db: Path, tmp_path: Path, sqlite_db: Database, fake_slack: FakeSlack) -> None:
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir(parents=True)
    home.mkdir()
    shutil.copy(DAGS / "deadline.py", dags / "deadline.py")
    shutil.copy(airflow_db / "airflow.db", home / "airflow.db")  # migrated once per session
    worker_logs, trigger_logs = _free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(airflow_env(home, dags))
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        # the triggerer imports the routes the callback names: tests.dags.deadline.ALERTS
        "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "AIRFLOW__OPSFLOW__STATE_CONN_ID": sqlite_db.conn_id,
        f"AIRFLOW_CONN_{sqlite_db.conn_id.upper()}": os.environ[f"AIRFLOW_CONN_{sqlite_db.conn_id.upper()}"],
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    env.update(fake_slack.webhook_connection("slack_default", channel="#alerts"))

    def cli(*args: str) -> str:
        done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    cli("dags", "reserialize")
    cli("dags", "trigger", "test_deadline", "--run-id", "late_run")  # paused: the run stays queued

    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("scheduler", "triggerer"):
            with open(tmp_path / f"{name}.log", "wb") as out:
                processes[name] = subprocess.Popen([AIRFLOW, name], env=env, stdout=out, stderr=subprocess.STDOUT,
                                                   start_new_session=True)
        [alert] = _wait("the deadline alert in Slack", lambda: fake_slack.messages("#alerts"), processes, tmp_path)
        meta = sqlite3.connect(home / "airflow.db")
        try:
            state = _wait("the callback to finish", lambda: meta.execute(
                "SELECT state FROM callback WHERE state IN ('success', 'failed')").fetchone(), processes, tmp_path)
            [(run_state, missed)] = meta.execute(
                "SELECT r.state, d.missed FROM dag_run r JOIN deadline d ON d.dagrun_id = r.id "
                "WHERE r.dag_id = 'test_deadline' AND r.run_id = 'late_run'").fetchall()
        finally:
            meta.close()
    finally:
        for p in processes.values():
            _stop(p)

    assert state == ("success",)
    assert (run_state, missed) == ("queued", 1)  # it never ran: the scheduler marked its deadline missed
    assert (alert.text or "").startswith(":rotating_light: ERROR: deadline_missed (test_deadline / dag run): "
                                         "DAG run late_run missed its deadline ")
    assert "still queued" in str(alert.blocks)
    assert "test_deadline feeds the 07:00 finance report" in str(alert.blocks)
    [incident] = sqlite_db.conn.execute(
        "SELECT dag_id, task_id, check_name, status, occurrences, summary FROM opsflow_incidents").fetchall()
    assert incident[:5] == ("test_deadline", "dag run", "deadline_missed", "open", 1)
    assert json.loads(incident[5])["message"].startswith("DAG run late_run missed its deadline ")
