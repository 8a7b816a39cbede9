"""The example DAGs run for real and catch exactly the problems planted in the sample data."""

from __future__ import annotations

import pytest

from airflow_opsflow.testing.dag_runner import run_dag
from airflow_opsflow.testing.jira_server import FakeJira
from airflow_opsflow.testing.sample_data import repair, seed
from airflow_opsflow.testing.slack_server import FakeSlack
from airflow_opsflow.testing.smtp_server import FakeSmtp
from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn", "jira_conn")
example = load_module(EXAMPLES / "payments_and_deliveries.py")


def _not_passing(run: object, task_id: str) -> dict[str, str]:
    payload = run.xcom(task_id, key="results")  # type: ignore[attr-defined]
    return {n: r["status"] for n, r in results_by_name(payload).items() if r["status"] != "pass"}


def test_payments_and_deliveries_scenario(db: Database, fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                          fake_jira: FakeJira, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":
        db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_schema_version")
    seed(db.conn, problems=True)
    run = run_dag(example.dag, conf={"conn_id": db.conn_id})
    assert run.task_states == {"wait_for_payments": "success", "check_payments": "failed",
                               "check_deliveries": "failed", "check_invoices": "failed"}
    assert _not_passing(run, "check_payments") == {
        "amount_positive": "fail", "customer_exists": "fail", "failed_share_last_hour": "fail",
        "failed_payments_last_hour": "warn"}
    assert _not_passing(run, "check_deliveries") == {"no_stuck_deliveries": "fail"}
    assert _not_passing(run, "check_invoices") == {"invoice_number_unique": "fail",
                                                   "total_is_subtotal_plus_tax": "fail"}
    stuck = results_by_name(run.xcom("check_deliveries", key="results"))["no_stuck_deliveries"]
    assert sorted(s["id"] for s in stuck["samples"]) == [17, 123, 256, 404]
    # one Slack message per failing payments/deliveries check (the warn-level one included), one email per
    # error-level payments incident and per failing invoice check
    assert len(fake_slack.messages("#ops")) == 5
    assert sorted(m["To"] for m in fake_smtp.messages) == ["finance-ops@example.com"] * 2 + \
        ["payments-ops@example.com"] * 3
    assert "9999" not in str([m.blocks for m in fake_slack.messages("#ops")])  # customer_id is masked
    tickets = fake_jira.issues  # one per error-level payments/deliveries incident
    assert sorted(t.summary.split()[1] for t in tickets) == [
        "amount_positive", "customer_exists", "failed_share_last_hour", "no_stuck_deliveries"]

    repair(db.conn)
    run = run_dag(example.dag, conf={"conn_id": db.conn_id})
    assert set(run.task_states.values()) == {"success"}
    replies = [m for m in fake_slack.messages("#ops") if m.is_reply]
    assert len(replies) == 5 and all((m.text or "").startswith(":white_check_mark: Resolved") for m in replies)
    assert len(fake_jira.issues) == 4 and all(t.status_category == "done" for t in fake_jira.issues)
