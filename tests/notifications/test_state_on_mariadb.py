"""The state store through an Airflow MySQL connection (MySqlHook, mysqlclient) on MariaDB."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn")
dags = load_module(DAGS / "alerts.py")


def test_incidents_kept_in_mariadb(sqlite_db: Database, mariadb_db: Database, mariadb_uri: str,
                                   fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_STATE_MARIADB", mariadb_uri)
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "opsflow_state_mariadb")
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", "dagtest_")
    mariadb_db.execute("DROP TABLE IF EXISTS dagtest_incidents, dagtest_deliveries, dagtest_schema_version")
    seed(sqlite_db.conn, problems=True)

    for _ in range(2):
        run_dag(dags.dag, conf={"conn_id": sqlite_db.conn_id})
    assert len(fake_slack.messages("#alerts")) == 1 and len(fake_smtp.messages) == 1
    assert mariadb_db.scalar("SELECT status FROM dagtest_incidents") == "open"

    repair(sqlite_db.conn)
    run_dag(dags.dag, conf={"conn_id": sqlite_db.conn_id})
    assert mariadb_db.scalar("SELECT status FROM dagtest_incidents") == "resolved"
    assert mariadb_db.scalar("SELECT COUNT(*) FROM dagtest_deliveries WHERE status = 'sent'") == 4
    assert len(fake_slack.messages("#alerts")) == 2 and len(fake_smtp.messages) == 2
