"""HubSpot tickets through real DAG runs against the fake HubSpot: one ticket per incident, found again
(read by id while search lags), closed and reopened through the pipeline's stages, notes as comments,
nothing sent when nothing changed, no duplicate on a lost answer, 429s waited out; state on SQLite and
PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_routes import PORTAL_ID
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.alerts.hubspot import HubSpotTicket, ticket_marker
from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore
from tests.conftest import Database
from tests.helpers import DAGS, load_module

dags = load_module(DAGS / "hubspot_tickets.py")
MARKER = ticket_marker(fingerprint("test_hubspot_tickets", "check_payments", "amount_positive"))


@pytest.fixture
def hubspot(fake_hubspot: FakeHubSpot, hubspot_conn: str) -> FakeHubSpot:
    fake_hubspot.define_property("tickets", "opsflow_fingerprint")
    return fake_hubspot


@pytest.fixture
def payments(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db


def _tickets(hubspot: FakeHubSpot) -> list[dict[str, str]]:
    return [t.properties for t in hubspot.objects("tickets")]


def _notes(hubspot: FakeHubSpot, ticket_id: str) -> list[str]:
    return [n.properties.get("hs_note_body", "") for n in hubspot.associated("tickets", ticket_id, "notes")]


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_one_ticket_through_new_ongoing_resolved_reopened(hubspot: FakeHubSpot, payments: Database,
                                                          fake_slack: FakeSlack) -> None:
    _walk_the_lifecycle(hubspot, payments, fake_slack)


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_lifecycle_with_the_state_on_postgres(hubspot: FakeHubSpot, payments: Database, pg_db: Database,
                                              fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", "hs_tickets_")
    pg_db.execute("DROP TABLE IF EXISTS hs_tickets_incidents, hs_tickets_deliveries, hs_tickets_schema_version")
    _walk_the_lifecycle(hubspot, payments, fake_slack)
    assert pg_db.scalar("SELECT COUNT(*) FROM hs_tickets_deliveries WHERE route LIKE 'hubspot:%' "
                        "AND status = 'sent'") == 3


def _walk_the_lifecycle(hubspot: FakeHubSpot, payments: Database, fake_slack: FakeSlack) -> None:
    hubspot.search_lag(600)  # nothing opsflow writes becomes searchable during this test
    conf = {"conn_id": payments.conn_id}
    run = run_dag(dags.dag, conf=conf)
    [ticket] = hubspot.objects("tickets")
    props = ticket.properties
    assert props["opsflow_fingerprint"] == MARKER and props["hs_pipeline"] == "0" and props["hs_pipeline_stage"] == "1"
    assert props["hs_ticket_priority"] == "HIGH" and props["hs_ticket_category"] == "BILLING_ISSUE"
    assert "amount_positive" in props["subject"] and "2 violating row(s)" in props["content"]
    [record] = run.xcom("check_payments", key="tickets")
    assert record["key"] == f"HubSpot #{ticket.id}" and record["url"] == f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-5/{ticket.id}"
    [alert] = fake_slack.messages("#alerts")
    assert f"Ticket HubSpot #{ticket.id}" in str(alert.blocks)  # Slack links the ticket

    before = len(hubspot.requests)
    run_dag(dags.dag, conf=conf)  # ongoing: nothing changed, not one request to HubSpot
    assert len(hubspot.requests) == before

    repair(payments.conn)
    run_dag(dags.dag, conf=conf)
    [ticket] = hubspot.objects("tickets")
    assert ticket.properties["hs_pipeline_stage"] == "4" and ticket.properties.get("closed_date")
    assert any("Resolved" in body for body in _notes(hubspot, ticket.id))

    payments.execute("UPDATE payments SET amount = -1 WHERE id = 7")
    run_dag(dags.dag, conf=conf)  # back within the reopen window: the same ticket reopens (read by id)
    [ticket] = hubspot.objects("tickets")
    assert ticket.properties["hs_pipeline_stage"] == "1" and not ticket.properties.get("closed_date")
    assert "ERROR: amount_positive" in _notes(hubspot, ticket.id)[-1]


@pytest.mark.usefixtures("airflow_db", "slack_conn", "fake_slack")
def test_a_lost_create_answer_never_duplicates_the_ticket(hubspot: FakeHubSpot, payments: Database) -> None:
    hubspot.search_lag(2)  # the ticket is not searchable at once: the retry searches until it shows
    hubspot.drop_response_next(endpoint="create")  # created, answer lost: never re-sent (libcurl would)
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.tries["check_payments"] == 2
    assert [r.status for r in hubspot.calls("create", "tickets")] == [None]
    assert hubspot.create_counts("tickets", "opsflow_fingerprint") == {MARKER: 1}


@pytest.mark.usefixtures("airflow_db", "slack_conn", "fake_slack")
def test_a_rate_limited_create_waits_out_retry_after_and_creates_once(hubspot: FakeHubSpot,
                                                                     payments: Database) -> None:
    hubspot.fail_next(2, status=429, retry_after=1, endpoint="create")
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.tries["check_payments"] == 1
    assert [r.status for r in hubspot.calls("create", "tickets")] == [429, 429, 201]
    assert len(hubspot.objects("tickets")) == 1


def _deliver(tmp_path: Path, route: HubSpotTicket, entity: str | None = None,
             result: dict[str, object] | None = None) -> list[tuple[str, str]]:
    fp = fingerprint("d", "t", "c", entity)
    subject = Subject(fp, "d", "t", "c", entity)
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
    result = result or {"table": "payments", "status": "fail", "violating_count": 3, "expected": "no NULLs"}
    repo.record([(subject, Observation(True, "error", "run1", result))], Policy(), routes_for([route]))
    return deliver_pending(repo, [route], {fp: subject}, {}).failed


def test_k_new_incidents_cost_one_search_and_a_company_is_associated(tmp_path: Path, hubspot: FakeHubSpot) -> None:
    company = hubspot.client().crm.companies.basic_api.create({"properties": {"domain": "acme.example"}})
    route = HubSpotTicket(associate={"companies": "domain"})
    assert _deliver(tmp_path, route, entity="acme.example") == []
    [ticket] = hubspot.objects("tickets")
    assert set(hubspot.associations("tickets", ticket.id, "companies")) == {company.id}
    hubspot.reset()
    hubspot.define_property("tickets", "opsflow_fingerprint")
    subjects = {fingerprint("d", "t", f"c{i}"): Subject(fingerprint("d", "t", f"c{i}"), "d", "t", f"c{i}")
                for i in range(10)}
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "many.db"), "sqlite"))
    repo.record([(s, Observation(True, "error", "run1", {"status": "fail"})) for s in subjects.values()], Policy(),
                routes_for([route]))
    assert deliver_pending(repo, [route], subjects, {}).failed == []
    assert len(hubspot.calls("search", "tickets")) == 1 and len(hubspot.calls("create", "tickets")) == 10


def test_a_missing_fingerprint_property_and_a_wrong_pipeline_are_named(tmp_path: Path,
                                                                       fake_hubspot: FakeHubSpot,
                                                                       hubspot_conn: str) -> None:
    [(_, error)] = _deliver(tmp_path, HubSpotTicket())
    assert "opsflow_fingerprint" in error
    fake_hubspot.define_property("tickets", "opsflow_fingerprint")
    [(_, error)] = _deliver(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path,
                            HubSpotTicket(pipeline="Billing"))
    assert "no ticket pipeline 'Billing'" in error and "0 (Support Pipeline)" in error
