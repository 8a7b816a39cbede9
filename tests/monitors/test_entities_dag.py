"""Per-entity incidents in real DAG runs: stuck deliveries tracked across runs (state store), one Slack
thread and one Jira ticket for the incident, updates when new deliveries get stuck, escalation at the SLA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.slack_server import FakeSlack

from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
dags = load_module(DAGS / "entities.py")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday noon


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    with FakeJira() as server:
        for name, value in server.jira_connection("opsflow_jira").items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def deliveries(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":  # a fresh state store
        db.execute("DROP TABLE IF EXISTS opsflow_entity_state, opsflow_incidents, opsflow_deliveries, "
                   "opsflow_metric_points, opsflow_metric_series, opsflow_schema_version")
    shipped = "TIMESTAMP" if db.name == "postgres" else "TEXT"
    db.execute("DROP TABLE IF EXISTS deliveries",
               f"CREATE TABLE deliveries (delivery_id VARCHAR(20) PRIMARY KEY, customer VARCHAR(40), "
               f"value_eur DECIMAL(10, 2), status VARCHAR(20), shipped_at {shipped})")
    for delivery_id, hours_before, value, status in (("D-1", 30, "120.00", "in_transit"),
                                                     ("D-2", 26, "80.50", "in_transit"),
                                                     ("D-3", 20, "40.00", "in_transit"),
                                                     ("D-4", 40, "15.00", "delivered")):
        at = (T0 - timedelta(hours=hours_before)).replace(tzinfo=None).isoformat(sep=" ")
        db.execute(f"INSERT INTO deliveries VALUES ('{delivery_id}', 'cust-{delivery_id}', {value}, '{status}', "
                   f"'{at}')")
    yield db
    db.execute("DROP TABLE deliveries")


def at(hours: float) -> pendulum.DateTime:
    return pendulum.instance(T0 + timedelta(hours=hours))


def entities_of(run: object, key: str = "return_value") -> dict:
    return results_by_name(run.xcom("deliveries", key=key))["stuck_deliveries"]  # type: ignore[attr-defined]


def test_stuck_deliveries_across_runs(deliveries: Database, fake_slack: FakeSlack, jira: FakeJira) -> None:
    conf = {"conn_id": deliveries.conn_id}
    first = run_dag(dags.dag, conf=conf, logical_date=at(0))
    assert first.task_states == {"deliveries": "success"}  # a warn check
    result = entities_of(first)
    assert result["status"] == "warn"
    e = result["entities"]
    assert (e["new"], e["still_open"], e["resolved"], e["at_stake"], e["past_sla"]) == (2, 0, 0, 200.5, 0)
    assert e["text"] == "2 new stuck deliveries (oldest 30 h, SLA 48 h) · 200.50 at stake"
    assert [x["key"] for x in e["listed"]] == ["D-1", "D-2"]
    [alert] = fake_slack.messages("#ops")
    assert "WARN: stuck_deliveries" in (alert.text or "") and "2 new stuck deliveries" in (alert.text or "")
    table = str(alert.blocks)
    assert "Open stuck deliveries (oldest first, 2 of 2)" in table and "D-1" in table and "120.00" in table
    [ticket] = jira.issues
    assert "2 new stuck deliveries" in (ticket.description or "") and "D-2" in (ticket.description or "")

    # D-3 gets stuck; Slack fails once, so the task retries: the retry reports D-3 as new all the same.
    fake_slack.fail_next("chat.postMessage", status=500)
    second = run_dag(dags.dag, conf=conf, logical_date=at(6))
    assert second.tries["deliveries"] == 2 and second.task_states == {"deliveries": "success"}
    e = entities_of(second)["entities"]
    assert (e["new"], e["still_open"], e["at_stake"]) == (1, 2, 240.5)
    assert e["text"] == "1 new stuck delivery, 2 still open (oldest 36 h, SLA 48 h) · 240.50 at stake"
    replies = fake_slack.thread("#ops", alert.ts)
    assert len(replies) == 2  # the alert and one update, not two
    assert (replies[1].text or "").startswith(":warning: Update: stuck_deliveries")  # a warn incident
    assert "Open stuck deliveries (new first" in str(replies[1].blocks)
    assert "(+) Update: 1 new stuck delivery" in jira.issue(ticket.key).comments[-1].body

    quiet = run_dag(dags.dag, conf=conf, logical_date=at(7))  # nothing new, nothing past its SLA
    assert quiet.task_states == {"deliveries": "success"}
    assert entities_of(quiet)["entities"]["new"] == 0
    assert len(fake_slack.thread("#ops", alert.ts)) == 2

    late = run_dag(dags.dag, conf=conf, logical_date=at(19))  # D-1 is 49 h old: past the 48 h SLA
    assert late.task_states == {"deliveries": "failed"}
    result = entities_of(late, key="results")
    assert result["status"] == "fail" and "Escalated to error: the oldest open stuck delivery is 49 h old" in \
        result["message"]
    assert result["entities"]["past_sla"] == 1 and result["entities"]["listed"][0]["past_sla"] is True
    escalated = fake_slack.thread("#ops", alert.ts)[-1]
    assert (escalated.text or "").startswith(":red_circle: Escalated to ERROR: stuck_deliveries")

    deliveries.execute("UPDATE deliveries SET status = 'delivered' WHERE delivery_id = 'D-1'")
    partly = run_dag(dags.dag, conf=conf, logical_date=at(20))
    e = entities_of(partly)["entities"]
    assert (e["new"], e["still_open"], e["resolved"], e["resolved_keys"]) == (0, 2, 1, ["D-1"])
    assert len(fake_slack.thread("#ops", alert.ts)) == 3  # a resolution inside an open incident: no alert

    deliveries.execute("UPDATE deliveries SET status = 'delivered'")
    done = run_dag(dags.dag, conf=conf, logical_date=at(21))
    assert done.task_states == {"deliveries": "success"}
    assert entities_of(done)["status"] == "pass"
    resolved = fake_slack.thread("#ops", alert.ts)[-1]
    assert "Resolved: stuck_deliveries" in (resolved.text or "") and "2 stuck deliveries resolved" in \
        (resolved.text or "")
    assert jira.issue(ticket.key).status_category == "done" and len(jira.issues) == 1
    if deliveries.name == "postgres":
        assert deliveries.scalar("SELECT COUNT(*) FROM opsflow_entity_state WHERE status = 'open'") == 0


def test_a_new_episode_after_resolution_is_new_again(deliveries: Database, fake_slack: FakeSlack,
                                                     jira: FakeJira) -> None:
    conf = {"conn_id": deliveries.conn_id}
    run_dag(dags.dag, conf=conf, logical_date=at(0))
    deliveries.execute("UPDATE deliveries SET status = 'delivered'")
    assert entities_of(run_dag(dags.dag, conf=conf, logical_date=at(1)))["status"] == "pass"
    deliveries.execute("UPDATE deliveries SET status = 'in_transit' WHERE delivery_id = 'D-2'")  # lost again
    e = entities_of(run_dag(dags.dag, conf=conf, logical_date=at(2)))["entities"]
    assert (e["new"], e["still_open"]) == (1, 0)
    assert len(jira.issues) == 1 and jira.issues[0].status_category != "done"  # the ticket reopens
