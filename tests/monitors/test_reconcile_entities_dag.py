"""A reconcile check with ``entity`` in real DAG runs: the warehouse's paying customers (SQLite) against the fake
Salesforce through the real client, each missing or different customer tracked across runs in the state store
(SQLite and PostgreSQL): new, still open, resolved, in the result, the XCom and the Slack thread."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import DagRunResult, run_dag
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.slack_server import FakeSlack

from tests.conftest import Database
from tests.helpers import DAGS, load_module, results_by_name

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "salesforce_conn")
dags = load_module(DAGS / "reconcile_entities.py")

# customer_id, plan, tier, arr, hours paying before the first run; the breaks planted in Salesforce beside each
CUSTOMERS = [
    ("C-01", "pro", "gold", 1000, 500),
    ("C-02", "pro", "silver", 300, 30),  # Salesforce: gold
    ("C-03", "pro", "gold", 800, 400),
    ("C-04", "pro", "gold", 250, 10),  # not in Salesforce
    ("C-05", "pro", "gold", 600, 20),
    ("C-06", "free", "silver", 0, 100),  # not paying: not compared
]


@pytest.fixture
def state(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The state store, on SQLite (the warehouse's own file) or on PostgreSQL (fresh tables)."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":
        db.execute("DROP TABLE IF EXISTS opsflow_entity_state, opsflow_incidents, opsflow_deliveries, "
                   "opsflow_metric_points, opsflow_metric_series, opsflow_schema_version")
    return db


@pytest.fixture
def warehouse(sqlite_db: Database, clock: pendulum.DateTime) -> Iterator[Database]:
    sqlite_db.execute("DROP TABLE IF EXISTS customers",
                      "CREATE TABLE customers (customer_id TEXT, plan TEXT, tier TEXT, arr NUMERIC, paying_since TEXT)")
    for cid, plan, tier, arr, hours in CUSTOMERS:
        since = (clock - timedelta(hours=hours)).naive().isoformat(sep=" ")
        sqlite_db.execute(f"INSERT INTO customers VALUES ('{cid}', '{plan}', '{tier}', {arr}, '{since}')")
    yield sqlite_db


@pytest.fixture
def accounts(fake_salesforce: FakeSalesforce) -> dict[str, str]:
    """Salesforce's accounts as the sales team left them (customer id -> record id)."""
    sf = fake_salesforce
    sf.define_field("Account", "Customer_Id__c", external_id=True, unique=True)
    sf.define_field("Account", "Tier__c")
    ids = {}
    for cid, plan, tier, *_ in CUSTOMERS:
        if plan == "pro" and cid != "C-04":
            ids[cid] = sf.add_record("Account", Name=cid, Type="Customer - Direct", Customer_Id__c=cid,
                                     Tier__c="gold" if cid == "C-02" else tier)["Id"]
    sf.add_record("Account", Name="C-99", Type="Customer - Direct", Customer_Id__c="C-99", Tier__c="gold")
    sf.add_record("Account", Name="Prospect", Type="Prospect")
    sf.set_query_batch_size(2)
    return ids


def result_of(run: DagRunResult) -> dict[str, Any]:
    return results_by_name(run.xcom("customers_in_crm"))["paying_customers_in_salesforce"]


@pytest.mark.usefixtures("state")
def test_missing_and_different_customers_are_tracked_across_runs(
        warehouse: Database, fake_salesforce: FakeSalesforce, accounts: dict[str, str], fake_slack: FakeSlack,
        clock: pendulum.DateTime) -> None:
    conf = {"warehouse": warehouse.conn_id}
    first = run_dag(dags.dag, conf=conf, logical_date=clock)
    assert first.task_states == {"customers_in_crm": "success"}  # a warn check
    result = result_of(first)
    assert result["status"] == "warn" and result["violating_count"] == 2
    e = result["entities"]
    assert (e["new"], e["still_open"], e["resolved"], e["at_stake"], e["complete"]) == (2, 0, 0, 550.0, True)
    assert [(x["key"], x["state"], x["age"], x["amount"]) for x in e["listed"]] == [
        ("C-02", "new", "30 h", 300.0), ("C-04", "new", "10 h", 250.0)]
    assert result["message"] == ("2 new customers (oldest 30 h, SLA 48 h) · 550.00 at stake. 5 keys: "
                                 "1 only on warehouse; 1 mismatched (Tier__c 1); 1 more on Salesforce Account "
                                 "(expected)")
    [alert] = fake_slack.messages("#ops")
    assert "WARN: paying_customers_in_salesforce" in (alert.text or "")
    assert "2 new customers" in (alert.text or "")
    assert "Open customers (oldest first, 2 of 2)" in str(alert.blocks) and "C-04" in str(alert.blocks)

    # Sales adds C-04 and downgrades C-05 by mistake, through the API.
    account: Any = fake_salesforce.client().Account  # the REST API of Account records
    account.create({"Name": "C-04", "Type": "Customer - Direct", "Customer_Id__c": "C-04", "Tier__c": "gold"})
    account.update(accounts["C-05"], {"Tier__c": "silver"})
    second = run_dag(dags.dag, conf=conf, logical_date=clock.add(hours=2))
    e = result_of(second)["entities"]
    assert (e["new"], e["still_open"], e["resolved"], e["resolved_keys"]) == (1, 1, 1, ["C-04"])
    assert [(x["key"], x["state"], x["age"]) for x in e["listed"]] == [("C-02", "open", "32 h"),
                                                                        ("C-05", "new", "22 h")]
    assert e["text"] == "1 new customer, 1 still open (oldest 32 h, SLA 48 h) · 900.00 at stake · 1 resolved"
    thread = fake_slack.thread("#ops", alert.ts)
    assert len(thread) == 2 and (thread[1].text or "").startswith(":warning: Update: paying_customers_in_salesforce")
    assert "1 new customer" in (thread[1].text or "") and "C-05" in str(thread[1].blocks)

    account.update(accounts["C-02"], {"Tier__c": "silver"})
    account.update(accounts["C-05"], {"Tier__c": "gold"})
    third = run_dag(dags.dag, conf=conf, logical_date=clock.add(hours=3))
    result = result_of(third)
    assert result["status"] == "pass" and result["entities"]["resolved"] == 2
    assert result["message"] == "no open customers · 2 resolved. 5 keys agree; 1 more on Salesforce Account (expected)"
    resolved = fake_slack.thread("#ops", alert.ts)[-1]
    assert "Resolved: paying_customers_in_salesforce" in (resolved.text or "")
