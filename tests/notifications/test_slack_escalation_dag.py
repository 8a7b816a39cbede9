"""An escalating incident in real DAG runs (fake Slack, real slack_sdk, real state DB): the thread gets a
reply and the first message is edited in place to say ESCALATED, its age and SLA, once each, also when
Slack's answer to either call is lost and the task retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.slack_workspace import SlackMessage

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
dags = load_module(DAGS / "slack_escalation.py")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday noon
ESCALATED = (":rotating_light: ESCALATED to ERROR — stuck_deliveries (test_slack_escalation / deliveries): "
             "oldest stuck delivery open for 49 h, past its SLA of 48 h")


@pytest.fixture
def deliveries(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":  # a fresh state store
        db.execute("DROP TABLE IF EXISTS opsflow_entity_state, opsflow_incidents, opsflow_deliveries, "
                   "opsflow_metric_points, opsflow_metric_series, opsflow_schema_version")
    shipped = "TIMESTAMP" if db.name == "postgres" else "TEXT"
    db.execute("DROP TABLE IF EXISTS deliveries",
               f"CREATE TABLE deliveries (delivery_id VARCHAR(20) PRIMARY KEY, value_eur DECIMAL(10, 2), "
               f"status VARCHAR(20), shipped_at {shipped})")
    for delivery_id, hours_before, value in (("D-1", 30, "120.00"), ("D-2", 26, "80.50")):
        at = (T0 - timedelta(hours=hours_before)).replace(tzinfo=None).isoformat(sep=" ")
        db.execute(f"INSERT INTO deliveries VALUES ('{delivery_id}', {value}, 'in_transit', '{at}')")
    yield db
    db.execute("DROP TABLE deliveries")


def at(hours: float) -> pendulum.DateTime:
    return pendulum.instance(T0 + timedelta(hours=hours))


def _updates(slack: FakeSlack) -> int:
    return sum(1 for r in slack.requests if r.method == "chat.update" and r.status == 200)


def _opened(slack: FakeSlack, conf: dict[str, str]) -> SlackMessage:
    first = run_dag(dags.dag, conf=conf, logical_date=at(0))  # D-1 30 h, D-2 26 h: a warn incident opens
    assert first.task_states == {"deliveries": "success"}
    [original] = slack.messages("#ops")
    assert (original.text or "").startswith(":warning: WARN: stuck_deliveries") and not original.updated
    return original


def test_escalation_edits_the_first_message_and_replies_once(deliveries: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": deliveries.conn_id}
    original = _opened(fake_slack, conf)

    late = run_dag(dags.dag, conf=conf, logical_date=at(19))  # D-1 is 49 h old: past the 48 h SLA
    assert late.task_states == {"deliveries": "failed"} and late.tries["deliveries"] == 1  # a failing check
    first, reply = fake_slack.thread("#ops", original.ts)
    assert (reply.text or "").startswith(":red_circle: Escalated to ERROR: stuck_deliveries")
    assert first.text == ESCALATED and len(first.history) == 1 and _updates(fake_slack) == 1
    assert first.history[0].text == original.text  # the edit replaced the first alert
    shown = str(first.blocks)
    assert f"*{ESCALATED}*" in shown and "D-1" in shown and "yes" in shown  # the evidence, past SLA marked
    assert first.metadata == original.metadata  # the duplicate check still finds the first alert

    # Once escalated, a reminder keeps the first message's age fresh (and the reminder is a reply).
    run_dag(dags.dag, conf=conf, logical_date=at(20))
    thread = fake_slack.thread("#ops", original.ts)
    assert len(thread) == 3
    assert (thread[2].text or "").startswith(":hourglass: Still failing: stuck_deliveries")
    assert thread[0].text == ESCALATED.replace("open for 49 h", "open for 50 h") and len(thread[0].history) == 2

    deliveries.execute("UPDATE deliveries SET status = 'delivered'")
    run_dag(dags.dag, conf=conf, logical_date=at(21))
    thread = fake_slack.thread("#ops", original.ts)
    assert len(thread) == 4 and "Resolved: stuck_deliveries" in (thread[3].text or "")
    assert (thread[0].text or "").startswith(":white_check_mark: ~stuck_deliveries~ resolved")
    assert len(thread[0].history) == 3 and len(fake_slack.messages("#ops")) == 4


@pytest.mark.parametrize("lost", ["chat.postMessage", "chat.update"])
def test_a_lost_answer_is_retried_without_doubling(deliveries: Database, fake_slack: FakeSlack, lost: str) -> None:
    conf = {"conn_id": deliveries.conn_id}
    original = _opened(fake_slack, conf)
    fake_slack.drop_response_next(lost)  # Slack did it, the answer is lost: the delivery fails, the task retries
    late = run_dag(dags.dag, conf=conf, logical_date=at(19))
    assert late.tries["deliveries"] == 2  # the failed delivery made the task retry
    dropped = [r for r in fake_slack.requests if r.method == lost and r.status is None]
    assert len(dropped) == 1  # the fault did happen
    first, reply = fake_slack.thread("#ops", original.ts)  # one reply: the retry found the first one
    assert (reply.text or "").startswith(":red_circle: Escalated to ERROR: stuck_deliveries")
    assert first.text == ESCALATED and len(first.history) == 1  # one edit: the retry saw it done, or did it
    assert len(fake_slack.messages("#ops")) == 2 and _updates(fake_slack) == (0 if lost == "chat.update" else 1)


def test_a_webhook_cannot_edit_so_it_posts_the_escalation(deliveries: Database, fake_slack: FakeSlack,
                                                          slack_webhook_conn: str) -> None:
    from airflow_opsflow.alerts.slack import SlackAlert

    conf = {"conn_id": deliveries.conn_id}
    task = dags.dag.get_task("deliveries")
    original = task.alerts
    task.alerts = [SlackAlert(conn_id=slack_webhook_conn)]
    try:
        run_dag(dags.dag, conf=conf, logical_date=at(0))
        late = run_dag(dags.dag, conf=conf, logical_date=at(19))
    finally:
        task.alerts = original
    assert late.tries["deliveries"] == 1  # the alert went out on the first try
    new, escalated = fake_slack.messages("#alerts")
    assert all(m.via == "webhook" and not m.is_reply and not m.updated for m in (new, escalated))
    assert (escalated.text or "").startswith(":red_circle: Escalated to ERROR: stuck_deliveries")


def test_a_deleted_first_message_does_not_hold_the_alert_back(deliveries: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": deliveries.conn_id}
    original = _opened(fake_slack, conf)
    fake_slack.fail_next("chat.update", error="message_not_found")  # a person deleted it
    late = run_dag(dags.dag, conf=conf, logical_date=at(19))
    assert late.tries["deliveries"] == 1  # delivered: the reply is the alert, the edit is logged as impossible
    first, reply = fake_slack.thread("#ops", original.ts)
    assert (reply.text or "").startswith(":red_circle: Escalated to ERROR") and not first.updated
