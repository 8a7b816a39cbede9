"""Sync runs in the result history (sync_runs), written by real DAG runs: a clean run, a dry run, a refused
mirror and a run with rejected records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "http_conn")
dags = load_module(DAGS / "syncs.py")
PATH = "/v1/accounts"
CONF = {"conn_id": "opsflow_pg", "dry_run": False, "full_resync": False}


@pytest.fixture(autouse=True)
def no_sync_history(pg_source: Database) -> None:
    # pg_source dropped the sync tables and set the schema back: the store re-creates every later table
    pg_source.execute("DROP TABLE IF EXISTS opsflow_sync_runs")


def runs(db: Database) -> list[dict[str, Any]]:
    cur = db.conn.cursor()
    cur.execute("SELECT * FROM opsflow_sync_runs ORDER BY recorded_at")
    names = [d[0] for d in cur.description]
    found = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    db.conn.rollback()
    return found


def test_each_sync_run_is_recorded_with_its_outcome(api: RecordingHTTPServer, pg_source: Database) -> None:
    first = run_dag(dags.dags["mirror"], conf=CONF)
    assert first.task_states == {"push_accounts": "success"}
    [row] = runs(pg_source)
    assert (row["status"], row["mode"], row["added"], row["unchanged"], row["failed"]) == ("ok", "mirror", 71, 0, 0)
    assert (row["sync_id"], row["dag_id"], row["task_id"], row["run_id"]) == (
        "test_sync_http_mirror.push_accounts", "test_sync_http_mirror", "push_accounts", first.run_id)
    assert row["rows_read"] == 71 and row["requests"] == 2 and row["full_read"] == 1
    assert "/v1/accounts" in row["destination"] and row["try_number"] == 1

    pg_source.execute("UPDATE accounts SET total_spend = 0 WHERE account_id > 60")  # 60 of 71 would go
    dry = run_dag(dags.dags["mirror"], conf={**CONF, "dry_run": True})
    refused = run_dag(dags.dags["mirror"], conf=CONF)
    assert refused.task_states == {"push_accounts": "failed"}
    found = {r["run_id"]: r for r in runs(pg_source)}
    assert (found[dry.run_id]["status"], found[dry.run_id]["deleted"]) == ("dry_run", 60)
    row = found[refused.run_id]
    assert (row["status"], row["deleted"]) == ("refused", 0)
    assert "mirror would delete 60 of 71 synced records" in row["message"] and "dag " not in row["message"]


def test_rejected_records_are_kept_with_their_reasons(api: RecordingHTTPServer, pg_source: Database) -> None:
    api.reject_when(lambda r: r.get("id") in (55, 77), status=422, message="invalid account")
    first = run_dag(dags.dags["upsert"], conf=CONF)
    assert first.task_states == {"push_accounts": "success"}  # max_failed_share 0.5
    again = run_dag(dags.dags["upsert"], conf=CONF)  # only the two are sent again, both rejected: over 50 %
    assert again.task_states == {"push_accounts": "failed"}
    found = {r["run_id"]: r for r in runs(pg_source)}
    row = found[first.run_id]
    assert (row["status"], row["failed"], row["added"]) == ("partial", 2, 69)
    failures = json.loads(row["failures"])
    assert sorted(f["key"] for f in failures) == ["55", "77"] and all("HTTP 422" in f["error"] for f in failures)
    row = found[again.run_id]
    assert (row["status"], row["failed"], row["added"]) == ("failed", 2, 0)
    assert "rejected" in row["message"] or "failed" in row["message"]
