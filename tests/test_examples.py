"""The example DAGs run for real and catch exactly the problems planted in the sample data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.smtp_server import FakeSmtp
from airflow_opsflow_testing.zendesk_server import FakeZendesk

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


loop = load_module(EXAMPLES / "support_loop.py")
demo = load_module(EXAMPLES / "run_demo.py")


def _rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    cur = db.conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall()
    cur.close()
    db.conn.commit()
    return rows


def test_support_loop_scenario(db: Database, fake_zendesk: FakeZendesk, zendesk_conn: str,
                               fake_salesforce: FakeSalesforce, salesforce_conn: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch, clock: pendulum.DateTime) -> None:
    """High-priority accounts into Zendesk organizations (their open tickets ranked) and Salesforce Accounts,
    failed payments and a customer unknown to Salesforce into Cases: sent once, then nothing, then what the
    repair changed, the Cases closed."""
    # The state in its own SQLite file, as in the demo (a SQLite source must not share its file with it).
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_STATE", json.dumps({"conn_type": "sqlite",
                                                                 "host": str(tmp_path / "state.db")}))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "opsflow_state")
    seed(db.conn, now=clock.naive(), problems=True)
    demo.setup_support_systems(fake_zendesk, fake_salesforce, _rows(db, "SELECT id, name FROM customers"))
    model = (EXAMPLES / "sql" / "high_priority_accounts.sql").read_text()
    zendesk, salesforce = fake_zendesk, fake_salesforce

    def tiers() -> dict[str, str]:
        """The model's tier by account id, checked to be what Zendesk and Salesforce hold."""
        want = {str(r[0]): r[6] for r in _rows(db, model)}
        assert {o.external_id: o.fields["tier"] for o in zendesk.organizations if "tier" in o.fields} == want
        assert {a["Warehouse_Id__c"]: a["Tier__c"] for a in salesforce.records("Account") if a["Tier__c"]} == want
        return want

    def ranked() -> dict[str, tuple[str, ...]]:
        """The tickets support had, by organization: each open ticket of a ranked account has its tier's priority
        (the tag vip for critical), every other ticket is as it was seeded; the open tickets' priorities."""
        want = tiers()
        seeded = {str(k): v for k, v in demo.SUPPORT_TICKETS.items()}
        orgs = {o.id: o.external_id for o in zendesk.organizations}
        got: dict[str, list[Any]] = {}
        for t in zendesk.tickets:
            got.setdefault(orgs[t.organization_id], []).append(t)
        assert {k: sorted((t.status, t.subject) for t in v) for k, v in got.items()} == {
            k: sorted(v) for k, v in seeded.items()}  # nothing created, nothing moved
        for t in (t for v in got.values() for t in v):
            tier = want.get(orgs[t.organization_id]) if t.status in ("new", "open", "pending", "hold") else None
            assert (t.priority, t.tags) == {"critical": ("urgent", ["vip"]), "high": ("high", []),
                                            None: (None, [])}[tier], (orgs[t.organization_id], t)
        return {k: tuple(sorted(str(t.priority) for t in v if t.status not in ("solved", "closed")))
                for k, v in got.items()}

    run = run_dag(loop.dag, conf={"conn_id": db.conn_id}, logical_date=clock)
    assert run.task_states == {"accounts_to_zendesk": "success", "rank_open_tickets": "success",
                               "accounts_to_salesforce": "success", "failed_payments": "failed",
                               "customers_in_salesforce": "failed"}
    assert len(tiers()) == 24 and len(salesforce.records("Account")) == 200  # the sales team's Accounts, updated
    # 187 critical, 98 and 52 high; 171 is below the bar (support's organization, never ranked)
    assert ranked() == {"187": ("urgent",) * 3, "98": ("high",) * 2, "52": ("high",) * 2, "171": ("None",) * 2}
    # every high-priority account's organization was looked at (21 are new: no ticket to rank)
    assert run.xcom("rank_open_tickets", key="sync")["counts"]["added"] == 24
    payments = results_by_name(run.xcom("failed_payments", key="results"))["failed_payments_last_hour"]
    assert payments["entities"]["new"] == 6
    crm = results_by_name(run.xcom("customers_in_salesforce", key="results"))["paying_customers_in_salesforce"]
    assert crm["status"] == "fail" and [s["difference"] for s in crm["samples"]] == ["only on payments"]
    assert [str(v) for s in crm["samples"] for k, v in s.items() if k != "difference"] == ["9999"]
    cases = salesforce.records("Case")
    assert sorted(c["Subject"].split()[1] for c in cases) == ["failed_payments_last_hour",
                                                              "paying_customers_in_salesforce"]
    assert not any(c["IsClosed"] for c in cases)

    zendesk_mark, salesforce_writes = zendesk.mark(), len(salesforce.writes())
    run = run_dag(loop.dag, conf={"conn_id": db.conn_id}, logical_date=clock.add(minutes=1))
    assert run.task_states["failed_payments"] == run.task_states["customers_in_salesforce"] == "failed"
    assert zendesk.calls(since=zendesk_mark) == []  # nothing changed: not one request (no ticket looked at)
    assert run.xcom("rank_open_tickets", key="sync")["counts"]["unchanged"] == 24
    assert len(salesforce.writes()) == salesforce_writes  # no Account, no Case, no comment

    repair(db.conn)
    zendesk_mark = zendesk.mark()
    run = run_dag(loop.dag, conf={"conn_id": db.conn_id}, logical_date=clock.add(minutes=2))
    assert set(run.task_states.values()) == {"success"}
    assert len(tiers()) == 30  # the repaired payments lifted six more accounts over the bar
    writes = [c for c in zendesk.calls(since=zendesk_mark) if c.is_write]
    assert sorted(c.name for c in writes) == [
        "create_many_organizations", "update_many_organizations", "update_many_tickets"]
    # 98 turned critical: its two open tickets urgent and vip, in one request; nobody else's touched
    assert ranked() == {"187": ("urgent",) * 3, "98": ("urgent",) * 2, "52": ("high",) * 2, "171": ("None",) * 2}
    tickets = next(c for c in writes if c.name == "update_many_tickets")
    assert tickets.body == {"ticket": {"priority": "urgent", "additional_tags": ["vip"]}}
    assert len(tickets.query["ids"][0].split(",")) == 2
    cases = salesforce.records("Case")
    assert len(cases) == 2 and all(c["IsClosed"] for c in cases)


@pytest.mark.usefixtures("airflow_db")
def test_every_example_dag_file_parses() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert {"ops_payments_and_deliveries", "ops_business_monitors", "ops_dbt_pipeline", "finance_monthly_report",
            "ops_daily_summary", "crm_high_priority_accounts", "crm_contacts_sharded", "cs_churn_signals",
            "cs_account_review", "sales_demo_requests", "support_loop"} <= set(bag.dag_ids)
