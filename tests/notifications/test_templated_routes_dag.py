"""Alert routes whose destination comes from params and Variables, rendered by Airflow in real DAG runs."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn")
dags = load_module(DAGS / "templated.py")


@pytest.fixture(autouse=True)
def state_and_variables(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    monkeypatch.setenv("AIRFLOW_VAR_ONCALL_EMAILS", "payments-ops@example.com, finance@example.com")


def test_the_channel_and_recipients_come_from_params_and_variables(sqlite_db: Database, fake_slack: FakeSlack,
                                                                    fake_smtp: FakeSmtp) -> None:
    seed(sqlite_db.conn, problems=True)
    run = run_dag(dags.alerts_dag, conf={"conn_id": sqlite_db.conn_id, "channel": "#data-quality"})
    assert run.task_states == {"check_payments": "failed"}  # the check fails; its alerts went out
    [message] = fake_slack.messages("#data-quality")
    assert "amount_positive" in (message.text or "")
    assert fake_slack.messages("#alerts") == []  # the param's default was not used
    [mail] = fake_smtp.mails  # one Variable holding two addresses: one email to both
    assert sorted(mail.rcpt_tos) == ["finance@example.com", "payments-ops@example.com"]


def test_broken_jinja_in_a_route_is_a_parse_error() -> None:
    from airflow.sdk import DAG

    from airflow_opsflow.alerts.slack import SlackAlert
    from airflow_opsflow.operators.data_check import DataCheckOperator

    with DAG("test_templated_broken", schedule=None), pytest.raises(ValueError) as e:
        DataCheckOperator(task_id="check", conn_id="opsflow_sqlite", table="payments",
                          checks=[{"name": "n", "kind": "not_null", "column": "id"}],
                          alerts=[SlackAlert(channel="{{ params.channel")])
    assert "task 'check'" in str(e.value) and "alerts[0].channel" in str(e.value)


def test_each_map_index_renders_its_own_route(sqlite_db: Database, fake_slack: FakeSlack) -> None:
    seed(sqlite_db.conn, problems=True)
    run = run_dag(dags.mapped_alerts_dag, conf={"conn_id": sqlite_db.conn_id})
    assert run.task_states == {"check_payments": "failed"}
    # the route object is shared by both indexes: rendering it in place would send index 1 to #alerts too
    assert len(fake_slack.messages("#alerts")) == 1 and len(fake_slack.messages("#ops")) == 1
