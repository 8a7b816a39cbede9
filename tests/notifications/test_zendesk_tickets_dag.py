"""Zendesk tickets through real DAG runs against the fake Zendesk (zenpy behind Airflow's ZendeskHook): one
ticket per incident found again by its external id (listed, not searched, when the incident had one),
internal notes as comments, solved and reopened, a closed ticket followed up rather than reopened, nothing
sent when nothing changed, no duplicate on a lost answer while search lags; state on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from airflow_opsflow.alerts.zendesk import ZendeskTicket, ticket_marker
from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore
from tests.conftest import Database
from tests.helpers import DAGS, load_module

dags = load_module(DAGS / "zendesk_tickets.py")
MARKER = ticket_marker(fingerprint("test_zendesk_tickets", "check_payments", "amount_positive"))


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk, zendesk_conn: str) -> FakeZendesk:
    return fake_zendesk


@pytest.fixture
def payments(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_one_ticket_through_new_ongoing_solved_reopened(zendesk: FakeZendesk, payments: Database,
                                                        fake_slack: FakeSlack) -> None:
    _walk_the_lifecycle(zendesk, payments, fake_slack)


@pytest.mark.usefixtures("airflow_db", "slack_conn")
def test_lifecycle_with_the_state_on_postgres(zendesk: FakeZendesk, payments: Database, pg_db: Database,
                                              fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", "zd_tickets_")
    pg_db.execute("DROP TABLE IF EXISTS zd_tickets_incidents, zd_tickets_deliveries, zd_tickets_schema_version")
    _walk_the_lifecycle(zendesk, payments, fake_slack)
    assert pg_db.scalar("SELECT COUNT(*) FROM zd_tickets_deliveries WHERE route LIKE 'zendesk:%' "
                        "AND status = 'sent'") == 3


def _walk_the_lifecycle(zd: FakeZendesk, payments: Database, fake_slack: FakeSlack) -> None:
    zd.search_delay(600)  # nothing opsflow writes becomes searchable during this test
    conf = {"conn_id": payments.conn_id}
    run = run_dag(dags.dag, conf=conf)
    [ticket] = zd.tickets
    assert ticket.external_id == MARKER and {"opsflow", MARKER, "payments"} <= set(ticket.tags)
    assert ticket.priority == "high" and ticket.status == "new" and "amount_positive" in (ticket.subject or "")
    [record] = run.xcom("check_payments", key="tickets")
    assert record["key"] == f"Zendesk #{ticket.id}" and record["url"].endswith(f"/agent/tickets/{ticket.id}")
    [alert] = fake_slack.messages("#alerts")
    assert f"Ticket Zendesk #{ticket.id}" in str(alert.blocks)

    before = len(zd.requests)
    run_dag(dags.dag, conf=conf)  # ongoing: nothing changed, not one request to Zendesk
    assert len(zd.requests) == before

    repair(payments.conn)
    run_dag(dags.dag, conf=conf)
    assert zd.ticket(ticket.id).status == "solved"

    payments.execute("UPDATE payments SET amount = -1 WHERE id = 7")
    run_dag(dags.dag, conf=conf)  # back within the reopen window: the same ticket reopens
    [ticket] = zd.tickets
    assert ticket.status == "open"
    assert "ERROR: amount_positive" in ticket.comments[-1].body and not ticket.comments[-1].public


@pytest.mark.usefixtures("airflow_db", "slack_conn", "fake_slack")
def test_a_closed_ticket_is_followed_up_not_reopened(zendesk: FakeZendesk, payments: Database) -> None:
    conf = {"conn_id": payments.conn_id}
    run_dag(dags.dag, conf=conf)
    repair(payments.conn)
    run_dag(dags.dag, conf=conf)
    [first] = zendesk.tickets
    zendesk.close_solved(days=0)  # Zendesk's automation closes solved tickets: they can no longer change
    payments.execute("UPDATE payments SET amount = -1 WHERE id = 7")
    run_dag(dags.dag, conf=conf)
    old, new = sorted(zendesk.tickets, key=lambda t: t.id)
    assert old.id == first.id and old.status == "closed"
    assert new.status == "new" and new.followup_source_id == old.id and new.id in old.followup_ids


@pytest.mark.usefixtures("airflow_db", "slack_conn", "fake_slack")
def test_a_lost_create_answer_never_duplicates_the_ticket(zendesk: FakeZendesk, payments: Database) -> None:
    zendesk.search_delay(600)
    zendesk.drop_response_next("create_ticket")
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.tries["check_payments"] == 2
    assert len(zendesk.tickets) == 1


def test_k_new_incidents_cost_one_search(tmp_path: Path, zendesk: FakeZendesk) -> None:
    route = ZendeskTicket()
    subjects = {fingerprint("d", "t", f"c{i}"): Subject(fingerprint("d", "t", f"c{i}"), "d", "t", f"c{i}")
                for i in range(10)}
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
    repo.record([(s, Observation(True, "error", "run1", {"status": "fail"})) for s in subjects.values()], Policy(),
                routes_for([route]))
    mark = zendesk.mark()
    assert deliver_pending(repo, [route], subjects, {}).failed == []
    names = [c.name for c in zendesk.calls(since=mark)]
    assert names.count("search") == 1 and names.count("create_ticket") == 10 and len(names) == 11
