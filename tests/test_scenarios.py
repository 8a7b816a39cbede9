"""The scenario example DAGs not covered elsewhere, run for real: churn signals to the CRM and Slack
(3), the account review joining the database with the CRM (7), demo requests escalating in Slack (9)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.sample_sales import contact, seed_demo_requests
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")


@pytest.fixture
def ops(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, clock: pendulum.DateTime) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, now=clock.naive(), problems=True)
    return sqlite_db


@pytest.mark.usefixtures("hubspot_conn", "smtp_conn")
def test_churn_signals_reach_the_crm_and_slack_then_the_review_joins_them(
        ops: Database, pg_db: Database, fake_hubspot: FakeHubSpot, fake_slack: FakeSlack, fake_smtp: FakeSmtp,
        monkeypatch: pytest.MonkeyPatch, clock: pendulum.DateTime) -> None:
    # The sync keeps its state in another database than the SQLite source (one writer at a time there).
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    pg_db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_sync_keys, opsflow_sync_meta, "
                  "opsflow_sync_marks, opsflow_entity_state, opsflow_report_deliveries, opsflow_schema_version")
    cs = load_module(EXAMPLES / "customer_success.py")
    fake_hubspot.define_property("contacts", "churn_risk", "string")
    fake_hubspot.define_property("contacts", "lifetime_spend", "number")
    conf = {"conn_id": ops.conn_id, "quiet_days": 5}
    first = run_dag(cs.churn, conf=conf, logical_date=clock)
    assert first.task_states == {"churn_risk_to_crm": "success", "customers_at_risk": "success"}
    contacts = fake_hubspot.objects("contacts")
    assert len(contacts) == 200  # every customer has a risk
    at_risk = {c.properties["email"] for c in contacts if c.properties["churn_risk"] == "high"}
    found = results_by_name(first.xcom("customers_at_risk"))["customers_at_risk"]
    assert found["entities"]["new"] == len(at_risk) > 0
    [alert] = fake_slack.messages("#customer-success")
    assert f"{len(at_risk)} new customers at risk" in (alert.text or "") and "at stake" in (alert.text or "")

    # A customer at risk pays again: the CRM hears only about that one, Slack stays quiet (nothing new).
    email = sorted(at_risk)[0]
    ops.execute("INSERT INTO payments VALUES (99001, (SELECT id FROM customers WHERE email = '" + email + "'), "
                f"10.00, 'EUR', 'succeeded', 'stripe', '{clock.subtract(hours=1):%Y-%m-%d %H:%M:%S}')")
    second = run_dag(cs.churn, conf=conf, logical_date=clock.add(minutes=1))
    assert second.xcom("churn_risk_to_crm")["counts"]["changed"] == 1
    assert results_by_name(second.xcom("customers_at_risk"))["customers_at_risk"]["entities"]["resolved"] == 1
    assert len(fake_slack.messages("#customer-success")) == 1

    review = run_dag(cs.review, conf={"conn_id": ops.conn_id}, logical_date=clock)
    assert review.task_states == {"top_accounts": "success"}
    assert review.xcom("top_accounts")["rows"] == 25
    [mail] = fake_smtp.mails
    assert "churn_risk" in mail.body("html") and any(n.endswith(".xlsx") for n in mail.attachments)


def test_demo_requests_alert_update_escalate_and_resolve(ops: Database, fake_slack: FakeSlack,
                                                         clock: pendulum.DateTime) -> None:
    sales = load_module(EXAMPLES / "sales.py")
    seed_demo_requests(ops.conn, now=clock.naive())
    ops.execute("DELETE FROM demo_requests WHERE id IN (3, 4)")  # arrive later, below
    conf = {"conn_id": ops.conn_id}
    first = run_dag(sales.dag, conf=conf, logical_date=clock.subtract(minutes=10))
    e = results_by_name(first.xcom("unanswered_demo_requests"))["unanswered_demo_requests"]["entities"]
    assert (e["new"], e["past_sla"]) == (2, 0)
    [alert] = fake_slack.messages("#sales")
    assert (alert.text or "").startswith(":warning: WARN: unanswered_demo_requests") and "2 new demo requests" in \
        (alert.text or "")
    assert "pepper@stark.example" not in str(alert.blocks)  # email is masked

    seed_demo_requests(ops.conn, now=clock.naive())  # 3 and 4 are in now (2.5 h and 5 h old)
    second = run_dag(sales.dag, conf=conf, logical_date=clock)
    assert second.task_states == {"unanswered_demo_requests": "failed"}  # past the 2 h SLA: an error
    thread = fake_slack.thread("#sales", alert.ts)
    assert (thread[-1].text or "").startswith(":red_circle: Escalated to ERROR: unanswered_demo_requests")
    assert "2 new demo requests, 2 still open (oldest 5 h, SLA 2 h: 2 past it)" in (thread[-1].text or "")

    contact(ops.conn, [3, 4, 5, 6], at=clock.naive())
    done = run_dag(sales.dag, conf=conf, logical_date=clock + timedelta(minutes=10))
    assert done.task_states == {"unanswered_demo_requests": "success"}
    assert "4 demo requests resolved" in (fake_slack.thread("#sales", alert.ts)[-1].text or "")
