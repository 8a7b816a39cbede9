"""Salesforce Cases through real DAG runs against the fake Salesforce (simple-salesforce behind Airflow's
SalesforceHook): one Case per incident found again by its external-id marker (SOQL, which does not lag),
CaseComments, closed and reopened by Status, nothing sent when nothing changed, no duplicate on a lost
answer, an expired session logged into again, a refused picklist value and an exhausted API limit named;
state on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.alerts.salesforce import SalesforceCase, case_marker
from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore
from tests.conftest import Database
from tests.helpers import DAGS, load_module

dags = load_module(DAGS / "salesforce_cases.py")
MARKER = case_marker(fingerprint("test_salesforce_cases", "check_payments", "amount_positive"))


@pytest.fixture
def salesforce(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> FakeSalesforce:
    return fake_salesforce


@pytest.fixture
def payments(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db


def _comments(sf: FakeSalesforce, case_id: str) -> list[str]:
    return [str(c["CommentBody"]) for c in sf.records("CaseComment") if c["ParentId"] == case_id]


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_one_case_through_new_ongoing_closed_reopened(salesforce: FakeSalesforce, payments: Database,
                                                      fake_slack: FakeSlack) -> None:
    _walk_the_lifecycle(salesforce, payments, fake_slack)


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_lifecycle_with_the_state_on_postgres(salesforce: FakeSalesforce, payments: Database, pg_db: Database,
                                              fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", "sf_cases_")
    pg_db.execute("DROP TABLE IF EXISTS sf_cases_incidents, sf_cases_deliveries, sf_cases_schema_version")
    _walk_the_lifecycle(salesforce, payments, fake_slack)
    assert pg_db.scalar("SELECT COUNT(*) FROM sf_cases_deliveries WHERE route LIKE 'salesforce:%' "
                        "AND status = 'sent'") == 3


def _walk_the_lifecycle(sf: FakeSalesforce, payments: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": payments.conn_id}
    run = run_dag(dags.dag, conf=conf)
    [case] = sf.records("Case")
    assert case["Opsflow_Fingerprint__c"] == MARKER and case["Status"] == "New" and case["Priority"] == "High"
    assert case["Origin"] == "Web" and "amount_positive" in case["Subject"]
    assert "2 violating row(s)" in case["Description"]
    [record] = run.xcom("check_payments", key="tickets")
    assert record["key"] == f"Case {case['CaseNumber']}" and record["url"].endswith(f"/Case/{case['Id']}/view")
    [alert] = fake_slack.messages("#alerts")
    assert f"Ticket Case {case['CaseNumber']}" in str(alert.blocks)

    before = len(sf.requests)
    run_dag(dags.dag, conf=conf)  # ongoing: nothing changed, not one request to Salesforce
    assert len(sf.requests) == before

    repair(payments.conn)
    sf.expire_sessions()  # the next run's session is gone: it logs in again once
    run_dag(dags.dag, conf=conf)
    [case] = sf.records("Case")
    assert case["Status"] == "Closed" and case["IsClosed"] is True
    assert any("Resolved" in body for body in _comments(sf, case["Id"]))

    payments.execute("UPDATE payments SET amount = -1 WHERE id = 7")
    run_dag(dags.dag, conf=conf)  # back within the reopen window: the same Case reopens
    [case] = sf.records("Case")
    assert case["Status"] == "New" and case["IsClosed"] is False
    assert "ERROR: amount_positive" in _comments(sf, case["Id"])[-1]


@pytest.mark.usefixtures("airflow_db", "slack_conn", "fake_slack")
def test_a_lost_create_answer_never_duplicates_the_case(salesforce: FakeSalesforce, payments: Database) -> None:
    salesforce.drop_response_next("create")
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.tries["check_payments"] == 2
    assert len(salesforce.records("Case")) == 1
    assert len(salesforce.calls("create", path_prefix="/services/data/v59.0/sobjects/Case/")) == 1


def _deliver(tmp_path: Path, route: SalesforceCase) -> list[tuple[str, str]]:
    fp = fingerprint("d", "t", "c")
    subject = Subject(fp, "d", "t", "c")
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
    repo.record([(subject, Observation(True, "error", "run1", {"status": "fail", "table": "payments"}))], Policy(),
                routes_for([route]))
    return deliver_pending(repo, [route], {fp: subject}, {}).failed


def test_a_refused_picklist_value_and_a_used_up_api_limit_are_named(tmp_path: Path,
                                                                   salesforce: FakeSalesforce) -> None:
    [(_, error)] = _deliver(tmp_path, SalesforceCase(priorities={"error": "Critical"}))
    assert "priorities['error'] 'Critical' is not an active Priority of Case (the org has: " in error
    assert salesforce.records("Case") == [] and salesforce.calls("create") == []  # checked before any write
    salesforce.set_api_limit(100, used=100)
    [(_, error)] = _deliver(tmp_path / "again" if (tmp_path / "again").mkdir() is None else tmp_path,
                            SalesforceCase())
    assert "REQUEST_LIMIT_EXCEEDED" in error and "pending" in error
