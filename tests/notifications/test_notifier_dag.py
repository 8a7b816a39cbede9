"""IncidentNotifier as task callbacks, through a real DAG run and a Slack incoming webhook."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.slack_server import FakeSlack

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_webhook_conn")
dags = load_module(DAGS / "notifier.py")


def test_task_failure_alerts_once_and_resolves(sqlite_db: Database, fake_slack: FakeSlack,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    assert run_dag(dags.dag, conf={"fail": True}).task_states == {"load_supplier_file": "failed"}
    [alert] = fake_slack.messages("#alerts")
    assert alert.via == "webhook"
    assert "task_failed" in (alert.text or "") and "supplier file for today is missing" in str(alert.blocks)
    assert "Supplier prices are not loaded" in str(alert.blocks)

    run_dag(dags.dag, conf={"fail": True})
    assert len(fake_slack.messages("#alerts")) == 1  # still the same incident: quiet

    assert run_dag(dags.dag, conf={"fail": False}).task_states == {"load_supplier_file": "success"}
    resolved = fake_slack.messages("#alerts")[-1]
    assert len(fake_slack.messages("#alerts")) == 2
    assert (resolved.text or "").startswith(":white_check_mark: Resolved: task_failed")


def test_alerts_without_a_state_database_say_how_to_configure_one(sqlite_db: Database, fake_slack: FakeSlack,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    run_dag(dags.dag, conf={"fail": True})
    out = capfd.readouterr()
    assert "opsflow needs a state database for incidents and alerts, and none is configured" in out.out + out.err
    assert fake_slack.messages() == []
