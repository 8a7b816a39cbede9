"""The example DAGs run for real and catch exactly the problems planted in the sample data."""

from __future__ import annotations

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp

from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "smtp_conn", "jira_conn")
example = load_module(EXAMPLES / "payments_and_deliveries.py")


def _not_passing(run: object, task_id: str) -> dict[str, str]:
    payload = run.xcom(task_id, key="results")  # type: ignore[attr-defined]
    return {n: r["status"] for n, r in results_by_name(payload).items() if r["status"] != "pass"}


def test_payments_and_deliveries_scenario(db: Database, fake_slack: FakeSlack, fake_smtp: FakeSmtp,
                                          fake_jira: FakeJira, monkeypatch: pytest.MonkeyPatch,
                                          clock: pendulum.DateTime) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":
        db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_schema_version")
    seed(db.conn, now=clock.naive(), problems=True)  # "the last hour" and "48 hours" are the run's, in UTC
    run = run_dag(example.dag, conf={"conn_id": db.conn_id}, logical_date=clock)
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
    run = run_dag(example.dag, conf={"conn_id": db.conn_id}, logical_date=clock.add(minutes=1))
    assert set(run.task_states.values()) == {"success"}
    replies = [m for m in fake_slack.messages("#ops") if m.is_reply]
    assert len(replies) == 5 and all((m.text or "").startswith(":white_check_mark: Resolved") for m in replies)
    assert len(fake_jira.issues) == 4 and all(t.status_category == "done" for t in fake_jira.issues)


monitors = load_module(EXAMPLES / "business_monitors.py")


@pytest.mark.clock
def test_business_monitors_scenario(sqlite_db: Database, pg_db: Database, fake_slack: FakeSlack,
                                    monkeypatch: pytest.MonkeyPatch, clock: pendulum.DateTime) -> None:
    """Orders and revenue judged against 8 weeks of backfilled history, failed payments followed one by one,
    and the ledger (SQLite) reconciled against the warehouse's settlements (PostgreSQL)."""
    from airflow_opsflow_testing.sample_metrics import seed_orders, seed_settlements

    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, now=clock.naive(), problems=True)
    seed_orders(sqlite_db.conn, now=clock, drop=True)  # yesterday in Berlin collapsed, whatever day UTC says
    seed_settlements(pg_db.conn, sqlite_db.conn, breaks=True)
    conf = {"conn_id": sqlite_db.conn_id, "warehouse_conn_id": pg_db.conn_id}
    run = run_dag(monitors.dag, conf=conf, logical_date=clock)
    assert run.task_states == {"daily_metrics": "failed", "failed_payments": "failed",
                               "ledger_vs_settlements": "failed"}

    metrics = results_by_name(run.xcom("daily_metrics", key="results"))
    orders = metrics["orders_per_day"]
    yesterday = clock.in_timezone("Europe/Berlin").subtract(days=1)
    assert orders["observed"]["bucket"] == f"{yesterday:%a %Y-%m-%d}"  # the last whole Berlin day
    assert orders["status"] == "fail" and "below the expected" in orders["message"]
    assert orders["observed"]["value"] < 0.5 * orders["observed"]["expected"]
    revenue = metrics["revenue_per_day_by_country"]
    countries = {s["country"] for s in revenue["samples"]}
    assert revenue["status"] == "fail" and "DE" in countries and countries <= {"DE", "FR", "NL"}
    if yesterday.day_of_week != pendulum.SUNDAY:  # a Sunday's small French and Dutch revenue stays in its band
        assert countries == {"DE", "FR", "NL"}
    assert metrics["orders_loaded_by_6"]["status"] == "pass"

    payments = results_by_name(run.xcom("failed_payments", key="results"))["failed_payments"]
    e = payments["entities"]
    assert e["new"] == payments["violating_count"] > 6 and e["still_open"] == 0
    assert e["past_sla"] > 0 and payments["status"] == "fail"  # escalated: some failed days ago
    assert "new failed payments" in e["text"] and "at stake" in e["text"]

    books = results_by_name(run.xcom("ledger_vs_settlements", key="results"))["ledger_vs_settlements"]
    assert books["violating_count"] == 3
    assert sorted(s["difference"].split(":")[0] for s in books["samples"]) == [
        "amount", "only on ledger", "only on processor"]

    alerts = fake_slack.messages("#finance-ops")
    assert len(alerts) == 4  # the two metrics, the failed payments, the books
    texts = " ".join(m.text or "" for m in alerts)
    for check in ("orders_per_day", "revenue_per_day_by_country", "failed_payments", "ledger_vs_settlements"):
        assert check in texts

    # a manual re-run: the same logical date, due a second later (the same run_after would be a retry of the first)
    again = run_dag(monitors.dag, conf=conf, logical_date=clock, run_after=clock.add(seconds=1))
    assert results_by_name(again.xcom("failed_payments", key="results"))["failed_payments"]["entities"]["new"] == 0
    assert len(fake_slack.messages("#finance-ops")) == 4  # nothing new: quiet


@pytest.mark.usefixtures("airflow_db")
def test_every_example_dag_file_parses() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert {"ops_payments_and_deliveries", "ops_business_monitors", "ops_dbt_pipeline", "finance_monthly_report",
            "ops_daily_summary", "crm_high_priority_accounts", "crm_contacts_sharded", "cs_churn_signals",
            "cs_account_review", "sales_demo_requests"} <= set(bag.dag_ids)
