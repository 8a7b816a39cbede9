"""Incidents and alerts through real DAG runs: fake Slack (real slack_sdk), real SMTP, real state DB."""

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


@pytest.fixture(autouse=True)
def state_in_db(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep opsflow's state in the test database itself ([opsflow] state_conn_id)."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":
        db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_schema_version")


def _top(slack: FakeSlack) -> list:  # type: ignore[type-arg]
    return [m for m in slack.messages("#alerts") if not m.is_reply]


def test_alert_once_then_quiet_then_resolved_in_thread(db: Database, fake_slack: FakeSlack,
                                                       fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)

    first = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert first.task_states == {"check_payments": "failed"}
    [message] = _top(fake_slack)
    assert "amount_positive" in (message.text or "") and "2 violating row(s)" in (message.text or "")
    assert message.metadata["event_type"] == "opsflow_alert"  # type: ignore[index]
    [mail] = fake_smtp.messages
    assert mail["To"] == "payments-ops@example.com" and "amount_positive" in mail["Subject"]
    assert {p.get_content_type() for p in mail.walk()} >= {"text/plain", "text/html"}
    [incident] = first.xcom("check_payments", key="incidents")
    assert (incident["status"], incident["transitions"]) == ("open", ["new"])

    second = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert second.task_states == {"check_payments": "failed"}
    assert len(fake_slack.messages("#alerts")) == 1 and len(fake_smtp.messages) == 1  # nothing new

    repair(db.conn)
    third = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert third.task_states == {"check_payments": "success"}
    thread = fake_slack.thread("#alerts", message.ts)
    assert len(thread) == 2 and (thread[1].text or "").startswith(":white_check_mark: Resolved: amount_positive")
    original = thread[0]
    assert original.history and "resolved" in (original.text or "")  # chat.update on the first message
    assert len(fake_smtp.messages) == 2 and fake_smtp.messages[1]["Subject"].startswith("[opsflow] Resolved")
    assert fake_smtp.messages[1]["In-Reply-To"] == mail["Message-ID"]


def test_a_retry_after_a_lost_answer_never_duplicates(db: Database, fake_slack: FakeSlack,
                                                      fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)
    fake_slack.drop_response_next("chat.postMessage")  # Slack stores the message, the answer is lost
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"check_payments": "failed"}
    assert run.tries["check_payments"] == 2  # the delivery failure made the task retry
    assert len(_top(fake_slack)) == 1  # the retry found the message instead of posting it again
    assert len(fake_smtp.messages) == 1  # email went out on the first try and was not re-sent

    repair(db.conn)  # the incident found on retry resolves in its thread, and its first message updates
    run_dag(dags.dag, conf={"conn_id": db.conn_id})
    [first] = _top(fake_slack)
    thread = fake_slack.thread("#alerts", first.ts)
    assert len(thread) == 2 and thread[0].history and "resolved" in (thread[0].text or "")


def test_without_history_access_the_alert_still_goes_out(db: Database, fake_slack: FakeSlack,
                                                         fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)
    fake_slack.drop_response_next("chat.postMessage")
    fake_slack.fail_next("conversations.history", error="missing_scope", times=5)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert run.tries["check_payments"] == 2
    # the lookup failed, so the retry posted again: a repeat is better than a lost alert
    assert len(_top(fake_slack)) == 2
    run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert len(_top(fake_slack)) == 2  # and it is done: nothing pending any more


def test_slack_down_keeps_the_incident_and_alerts_later(db: Database, fake_slack: FakeSlack,
                                                        fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)
    fake_slack.fail_next("chat.postMessage", status=503, times=10)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"check_payments": "failed"} and len(_top(fake_slack)) == 0
    assert len(fake_smtp.messages) == 1
    fake_slack.reset()
    run_dag(dags.dag, conf={"conn_id": db.conn_id})  # Slack is back: the pending alert goes out once
    assert len(_top(fake_slack)) == 1 and len(fake_smtp.messages) == 1


def test_rate_limits_are_waited_out(db: Database, fake_slack: FakeSlack, fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1, times=2)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert run.tries["check_payments"] == 1  # no task retry needed
    assert len(_top(fake_slack)) == 1


def test_a_429_storm_keeps_the_alert_pending_until_slack_answers(db: Database, fake_slack: FakeSlack,
                                                                 fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=0, times=100)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"check_payments": "failed"} and _top(fake_slack) == []
    fake_slack.reset()
    run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert len(_top(fake_slack)) == 1 and len(fake_smtp.messages) == 1


def test_an_unknown_channel_is_a_clear_error(db: Database, fake_slack: FakeSlack,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    from airflow_opsflow.alerts.slack import SlackAlert

    seed(db.conn, problems=True)
    task = dags.dag.get_task("check_payments")
    original = task.alerts
    task.alerts = [SlackAlert(conn_id="slack_api_default", channel="#no-such-channel"), original[1]]
    try:
        run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    finally:
        task.alerts = original
    assert run.task_states == {"check_payments": "failed"}
    out = capfd.readouterr()
    assert "channel_not_found" in out.out + out.err


def test_smtp_refusing_a_mail_is_retried_without_duplicating_slack(db: Database, fake_slack: FakeSlack,
                                                                  fake_smtp: FakeSmtp) -> None:
    seed(db.conn, problems=True)
    fake_smtp.fail_next(code=451, times=1)
    run = run_dag(dags.dag, conf={"conn_id": db.conn_id})
    assert run.tries["check_payments"] == 2
    assert len(fake_smtp.messages) == 1 and len(_top(fake_slack)) == 1
