"""The dbt example DAG for real: dbt-core builds the sample project on the test PostgreSQL, its failing
tests become one Slack alert and one Jira ticket each, stay quiet on a re-run, and resolve when the data is
repaired; the mart's high-priority accounts reach the CRM stand-in, Zendesk organizations and Salesforce
Accounts, and a re-run with nothing changed writes to neither."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from airflow_opsflow.alerts.jira import ticket_label
from airflow_opsflow.incidents.lifecycle import fingerprint
from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "jira_conn", "hubspot_conn", "zendesk_conn",
                                     "salesforce_conn")
REPO = Path(__file__).resolve().parents[2]
NEGATIVE = "assert_payment_amounts_positive"
ORPHAN = "relationships_stg_payments_customer_id__customer_id__ref_stg_customers_"
SALES_ACCOUNTS = range(1, 201, 2)  # the Accounts sales already has (by customer id): the others are created
SUPPORT_ORGS = range(1, 201, 10)  # the organizations support already has


def high_priority(db: Database) -> dict[str, tuple[str, Decimal]]:
    """The mart's high-priority accounts: name and total spend by account id (as text, as the systems keep it)."""
    cur = db.conn.cursor()
    cur.execute("SELECT account_id, name, total_spend FROM analytics.customer_spend WHERE priority = 'high'")
    rows = cur.fetchall()
    cur.close()
    db.conn.rollback()
    return {str(account_id): (name, spend) for account_id, name, spend in rows}


def assert_in_sync(db: Database, zendesk: FakeZendesk, salesforce: FakeSalesforce) -> dict[str, tuple[str, Decimal]]:
    """Zendesk organizations and Salesforce Accounts carry the mart's tier and spend for exactly its high-priority
    accounts, one each (found again by the account id, never duplicated); returns those accounts."""
    want = high_priority(db)
    assert want, "the sample data has no high-priority account: nothing would be synced"
    orgs = [o for o in zendesk.organizations if "tier" in o.fields]
    assert sorted(str(o.external_id) for o in orgs) == sorted(want)  # one organization each
    assert {o.external_id: (o.name, o.fields["tier"], Decimal(str(o.fields["total_spend"]))) for o in orgs} == {
        k: (name, "high", spend) for k, (name, spend) in want.items()}
    accounts = [a for a in salesforce.records("Account") if a["Tier__c"]]
    assert sorted(a["Warehouse_Id__c"] for a in accounts) == sorted(want)  # one Account each
    assert {a["Warehouse_Id__c"]: (a["Tier__c"], Decimal(str(a["Total_Spend__c"]))) for a in accounts} == {
        k: ("high", spend) for k, (_, spend) in want.items()}
    return want


def dbt_bin() -> str:
    path = os.environ.get("OPSFLOW_DBT_BIN") or str(REPO / ".venv-dbt" / "bin" / "dbt")
    if not Path(path).exists():
        pytest.fail(f"dbt is not installed at {path}: `make test` installs it (make dbt), or set OPSFLOW_DBT_BIN")
    return path


@pytest.fixture
def pipeline(pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             fake_hubspot: FakeHubSpot, fake_zendesk: FakeZendesk,
             fake_salesforce: FakeSalesforce) -> Iterator[object]:
    monkeypatch.setenv("OPSFLOW_DBT_BIN", dbt_bin())
    monkeypatch.setenv("OPSFLOW_DBT_TARGET", str(tmp_path / "target"))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    pg_db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_sync_keys, opsflow_sync_meta, "
                  "opsflow_sync_marks, opsflow_schema_version", "DROP SCHEMA IF EXISTS analytics CASCADE")
    seed(pg_db.conn, problems=True)
    for name, kind in (("opsflow_account_id", "string"), ("plan", "string"), ("total_spend", "number")):
        fake_hubspot.define_property("companies", name, kind, unique=name == "opsflow_account_id")
    # what an admin sets up once (as dags_examples/run_demo.py does for support_loop), and what support and
    # sales already have
    fake_zendesk.define_field("organization", "tier", "dropdown", options=["critical", "high"])
    fake_zendesk.define_field("organization", "total_spend", "decimal")
    for account_id in SUPPORT_ORGS:
        fake_zendesk.add_organization(f"Customer {account_id}", external_id=str(account_id))
    fake_salesforce.define_field("Account", "Warehouse_Id__c", external_id=True, unique=True)
    fake_salesforce.define_field("Account", "Tier__c", "picklist", picklist=["critical", "high"], restricted=True)
    fake_salesforce.define_field("Account", "Total_Spend__c", "currency")
    for account_id in SALES_ACCOUNTS:
        fake_salesforce.add_record("Account", Name=f"Customer {account_id}", Warehouse_Id__c=str(account_id))
    yield load_module(EXAMPLES / "dbt_pipeline.py")
    pg_db.execute("DROP SCHEMA IF EXISTS analytics CASCADE")  # its views hold on to the sample tables


def test_dbt_failures_become_incidents_and_resolve(pipeline: object, pg_db: Database, fake_slack: FakeSlack,
                                                   fake_jira: FakeJira, fake_hubspot: FakeHubSpot,
                                                   fake_zendesk: FakeZendesk, fake_salesforce: FakeSalesforce
                                                   ) -> None:
    dag = pipeline.dag  # type: ignore[attr-defined]
    conf = {"warehouse_conn_id": pg_db.conn_id}
    first = run_dag(dag, conf=conf)
    assert first.task_states == {"dbt_build": "success", "dbt_tests": "success", "check_customer_spend": "success",
                                 "sync_high_priority_accounts": "success", "mart_to_zendesk": "success",
                                 "mart_to_salesforce": "success"}
    payload = first.xcom("dbt_tests", key="results")
    assert payload["command"] == "build" and payload["dbt_version"].startswith("1.")
    results = results_by_name(payload)
    assert {n: r["status"] for n, r in results.items() if r["status"] != "pass"} == {NEGATIVE: "warn", ORPHAN: "warn"}
    negative = results[NEGATIVE]
    assert negative["violating_count"] == 2 and negative["table"] == "stg_payments"
    assert negative["owner"] == "payments-ops" and negative["threshold"] == "warn if failures >0"
    assert sorted(s["amount"] for s in negative["samples"]) == [-120.0, -15.5]  # sampled from the compiled SQL
    assert results[ORPHAN]["expected"].startswith("relationships(to=ref('stg_customers'), field=customer_id) on "
                                                  "stg_payments.customer_id")
    assert results["unique_customer_spend_account_id"]["status"] == "pass"

    alerts = fake_slack.messages("#data-quality")
    assert len(alerts) == 2 and all("WARN:" in (m.text or "") for m in alerts)
    assert any(NEGATIVE in (m.text or "") and "-120" in str(m.blocks) for m in alerts)
    tickets = fake_jira.issues
    assert len(tickets) == 2 and all("dbt" in t.labels for t in tickets)
    label = ticket_label(fingerprint("ops_dbt_pipeline", "dbt_tests", NEGATIVE))
    [ticket] = [t for t in tickets if label in t.labels]
    assert "warn if failures >0" in (ticket.description or "") and "-120" in (ticket.description or "")
    synced = fake_hubspot.objects("companies")
    assert synced and all(float(c.properties["total_spend"]) >= 5000 for c in synced)
    high = assert_in_sync(pg_db, fake_zendesk, fake_salesforce)
    assert all(spend >= 5000 for _, spend in high.values())
    # the seeded organizations and Accounts were updated in place, the others created
    support, sales = {str(i) for i in SUPPORT_ORGS}, {str(i) for i in SALES_ACCOUNTS}
    assert set(high) & support and set(high) - support and set(high) & sales and set(high) - sales  # both paths
    assert len(fake_zendesk.organizations) == len(support) + len(set(high) - support)
    assert len(fake_salesforce.records("Account")) == len(sales) + len(set(high) - sales)

    zendesk_mark, salesforce_mark = fake_zendesk.mark(), fake_salesforce.mark()
    again = run_dag(dag, conf=conf)  # the same failures: nothing new to say
    assert set(again.task_states.values()) == {"success"}
    assert len(fake_slack.messages("#data-quality")) == 2 and len(fake_jira.issues) == 2
    # the mart did not change: not one write to Zendesk or Salesforce
    assert [c for c in fake_zendesk.calls(since=zendesk_mark) if c.is_write] == []
    assert [c for c in fake_salesforce.calls(since=salesforce_mark) if c.is_write] == []
    assert again.xcom("mart_to_zendesk", key="sync")["counts"]["unchanged"] == len(high)
    assert again.xcom("mart_to_salesforce", key="sync")["counts"]["unchanged"] == len(high)

    repair(pg_db.conn)
    fixed = run_dag(dag, conf=conf)
    assert set(fixed.task_states.values()) == {"success"}
    assert all(r["status"] == "pass" for r in fixed.xcom("dbt_tests", key="results")["results"])
    replies = [m for m in fake_slack.messages("#data-quality") if m.is_reply]
    assert len(replies) == 2 and all((m.text or "").startswith(":white_check_mark: Resolved") for m in replies)
    assert all(t.status_category == "done" for t in fake_jira.issues) and len(fake_jira.issues) == 2
    repaired = assert_in_sync(pg_db, fake_zendesk, fake_salesforce)  # the repaired payments raised spends
    assert set(repaired) >= set(high) and any(repaired[k][1] != spend for k, (_, spend) in high.items())


def test_a_dbt_command_that_cannot_compile_is_reported_not_passed(pipeline: object, pg_db: Database,
                                                                  tmp_path: Path) -> None:
    dag = pipeline.dag  # type: ignore[attr-defined]
    conf = {"warehouse_conn_id": pg_db.conn_id}
    assert run_dag(dag, conf=conf).task_states["dbt_tests"] == "success"  # leaves a run_results.json
    broken = tmp_path / "project"
    import shutil

    shutil.copytree(pipeline.PROJECT, broken)  # type: ignore[attr-defined]
    (broken / "models" / "marts" / "customer_spend.sql").write_text("select {{ ref('no_such_model') }}")
    dag.get_task("dbt_build").bash_command = dag.get_task("dbt_build").bash_command.replace(
        str(pipeline.PROJECT), str(broken))  # type: ignore[attr-defined]
    run = run_dag(dag, conf=conf)
    assert run.task_states["dbt_build"] == "failed" and run.task_states["dbt_tests"] == "failed"
    assert run.tries["dbt_tests"] == 1  # not retried: the results are not coming
