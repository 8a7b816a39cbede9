"""ReverseSyncOperator settings from params and Variables: the destination's connection, the mapping, the
delete guard and the state database, rendered by Airflow in real DAG runs (SQLite source, SQLite state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "templated.py")
PATH = "/v1/accounts"
# Every param, every run: dag.test() keeps a conf override in the DAG's params for later runs in the process.
CONF = {"conn_id": "opsflow_sqlite", "api_conn": "crm_api", "name_column": "name", "max_delete_share": "0.2"}


@pytest.fixture
def source(sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """Accounts in SQLite; the state in another SQLite file, named by a Variable."""
    sqlite_db.execute("DROP TABLE IF EXISTS accounts", "DROP TABLE IF EXISTS crm_accounts",
                      "CREATE TABLE accounts (account_id INTEGER, name TEXT, email TEXT, tier TEXT)",
                      "CREATE TABLE crm_accounts (account_id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT)")
    sqlite_db.conn.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?)",
                               [(i, f"Account {i}", f"ops{i}@example{i}.com", "gold" if i % 3 == 0 else "silver")
                                for i in range(1, 121)])
    sqlite_db.conn.commit()
    state = {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_STATE", json.dumps(state))
    monkeypatch.setenv("AIRFLOW_VAR_SYNC_STATE_CONN", "sync_state")
    return sqlite_db


@pytest.fixture
def api(recording_http: RecordingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> RecordingHTTPServer:
    for name, value in recording_http.http_connection("crm_api").items():  # only under the id the param names
        monkeypatch.setenv(name, value)
    recording_http.keyed(PATH, key_field="id")
    return recording_http


def rendered_fields(run_id: str) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields  # test side: the metadata DB
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(RenderedTaskInstanceFields).filter_by(dag_id="test_templated_sync", run_id=run_id).one()
        return dict(row.rendered_fields)


def test_connection_mapping_and_delete_guard_come_from_params(api: RecordingHTTPServer, source: Database,
                                                              tmp_path: Path) -> None:
    first = run_dag(dags.sync_dag, conf={**CONF, "name_column": "email"})
    assert first.task_states == {"push_accounts": "success"}
    assert first.xcom("push_accounts")["counts"]["added"] == 120
    assert api.state(PATH)["7"] == {"id": 7, "name": "ops7@example7.com", "tier": "silver"}  # mapped from the param
    assert (tmp_path / "state.db").stat().st_size > 0  # the state went where the Variable said
    assert api.requests[0].headers["X-Api-Key"] == "s3cr3t-key"
    shown = rendered_fields(first.run_id)  # the task's "Rendered Templates" in the UI
    assert "'crm_api'" in shown["destination"] and "s3cr3t" not in json.dumps(shown)
    assert shown["mapping"]["name"] == "email" and shown["state_conn_id"] == "sync_state"

    source.execute("DELETE FROM accounts WHERE account_id > 84")  # 36 of 120: 30%
    refused = run_dag(dags.sync_dag, conf={**CONF, "name_column": "email", "max_delete_share": "0.2"})
    assert refused.task_states == {"push_accounts": "failed"} and len(api.state(PATH)) == 120

    allowed = run_dag(dags.sync_dag, conf={**CONF, "name_column": "email", "max_delete_share": "0.5"})
    assert allowed.task_states == {"push_accounts": "success"}
    assert allowed.xcom("push_accounts")["counts"]["deleted"] == 36 and len(api.state(PATH)) == 84
    assert api.deletes(PATH)["100"] == 1  # the per-record delete_endpoint was left to the sync to render


def test_a_bad_rendered_share_fails_naming_task_and_field(api: RecordingHTTPServer, source: Database,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.sync_dag, conf={**CONF, "max_delete_share": "abc"})
    assert run.task_states == {"push_accounts": "failed"} and run.tries["push_accounts"] == 1
    out = capfd.readouterr()
    assert ("dag 'test_templated_sync', task 'push_accounts': max_delete_share must be a number between 0 and 1, "
            "got 'abc'") in out.out + out.err
    assert api.requests == []  # nothing sent


def test_a_bad_rendered_destination_fails_naming_task_and_field(source: Database,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    run = run_dag(dags.table_dag, conf={"conn_id": "opsflow_sqlite", "key": ""})
    assert run.task_states == {"to_table": "failed"} and run.tries["to_table"] == 1
    out = capfd.readouterr()
    assert ("dag 'test_templated_table', task 'to_table': DatabaseTable key rendered to an invalid value: "
            "DatabaseTable needs key=") in out.out + out.err
