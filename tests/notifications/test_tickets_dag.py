"""Jira tickets through real DAG runs against the fake Jira (real `jira` library), Cloud and Server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.alerts.jira import ticket_label
from airflow_opsflow.incidents.lifecycle import fingerprint
from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn")
dags = load_module(DAGS / "tickets.py")
LABEL = ticket_label(fingerprint("test_tickets", "check_payments", "amount_positive"))


@pytest.fixture(params=["cloud", "server"])
def jira(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    with FakeJira(mode=request.param) as server:
        for name, value in server.jira_connection("opsflow_jira").items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def payments(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db


def _break_again(db: Database) -> None:
    db.execute("UPDATE payments SET amount = -1 WHERE id = 7")


def test_one_ticket_through_new_ongoing_resolved_reopened(jira: FakeJira, payments: Database,
                                                          fake_slack: FakeSlack) -> None:
    _walk_the_lifecycle(jira, payments, fake_slack)


def test_lifecycle_with_the_state_on_postgres(jira: FakeJira, payments: Database, pg_db: Database,
                                              fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_db.conn_id)
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", "tickets_")
    pg_db.execute("DROP TABLE IF EXISTS tickets_incidents, tickets_deliveries, tickets_schema_version")
    _walk_the_lifecycle(jira, payments, fake_slack)
    assert pg_db.scalar("SELECT COUNT(*) FROM tickets_deliveries WHERE route LIKE 'jira:%' AND status = 'sent'") == 3


def test_a_429_storm_leaves_the_ticket_pending_until_jira_answers(jira: FakeJira, payments: Database) -> None:
    jira.fail_next("create", status=429, retry_after=0, times=100)
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.task_states == {"check_payments": "failed"} and jira.issues == []
    jira.reset()
    run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert len(jira.issues) == 1


def _walk_the_lifecycle(jira: FakeJira, payments: Database, fake_slack: FakeSlack) -> None:
    conf = {"conn_id": payments.conn_id}
    run = run_dag(dags.dag, conf=conf)
    [ticket] = jira.issues
    assert LABEL in ticket.labels and "payments" in ticket.labels and ticket.priority == "High"
    assert "amount_positive" in ticket.summary and "2 violating row(s)" in (ticket.description or "")
    [alert] = fake_slack.messages("#alerts")
    assert f"/browse/{ticket.key}|Ticket {ticket.key}>" in str(alert.blocks)  # Slack links the ticket
    assert run.xcom("check_payments", key="incidents")[0]["transitions"] == ["new"]
    url = f"{jira.url}/browse/{ticket.key}"
    assert run.xcom("check_payments", key="tickets") == [{"key": ticket.key, "url": url, "system": "jira",
                                                         "id": str(ticket.id)}]
    assert run.xcom("check_payments", key="_link_TicketLink") == url  # what the UI's extra link shows

    writes = len(jira.calls(method="POST")) + len(jira.calls(method="PUT"))
    run_dag(dags.dag, conf=conf)  # ongoing: nothing changed, nothing written
    assert len(jira.calls(method="POST")) + len(jira.calls(method="PUT")) == writes

    repair(payments.conn)
    run_dag(dags.dag, conf=conf)
    ticket = jira.issue(ticket.key)
    assert ticket.status_category == "done" and any("Resolved" in c.body for c in ticket.comments)

    _break_again(payments)
    run_dag(dags.dag, conf=conf)  # the incident is back: the same ticket reopens
    assert len(jira.issues) == 1
    reopened = jira.issue(ticket.key)
    assert reopened.status_category != "done" and "The incident is back" in reopened.comments[-1].body


def test_an_incident_back_within_the_search_lag_reopens_its_ticket(jira: FakeJira, payments: Database) -> None:
    # Jira Cloud's search lags behind writes: within the lag neither the new ticket nor its resolution is
    # searchable, so only what opsflow remembers of the ticket (read by key, or as reconcileIssues) finds it.
    jira.search_delay(600)
    conf = {"conn_id": payments.conn_id}
    run_dag(dags.dag, conf=conf)
    [ticket] = jira.issues
    repair(payments.conn)
    run_dag(dags.dag, conf=conf)
    assert jira.issue(ticket.key).status_category == "done"

    _break_again(payments)
    mark = jira.mark()
    run = run_dag(dags.dag, conf=conf)
    assert [i.key for i in jira.issues] == [ticket.key]  # no second ticket with the same label
    assert jira.calls(name="issue", since=mark)[0].path.endswith(f"/issue/{ticket.key}")  # read by key first
    if jira.cloud:  # and the search for an open ticket reads the known one consistently
        assert jira.calls(name="search", since=mark)[-1].body["reconcileIssues"] == [ticket.id]
    reopened = jira.issue(ticket.key)
    assert reopened.status_category != "done" and "The incident is back" in reopened.comments[-1].body
    assert [t.to_status for t in reopened.transitions][-2:] == ["Done", "To Do"]
    url = f"{jira.url}/browse/{ticket.key}"
    assert run.xcom("check_payments", key="tickets") == [{"key": ticket.key, "url": url, "system": "jira",
                                                         "id": str(ticket.id)}]


def test_a_rate_limited_create_waits_out_retry_after_and_creates_once(jira: FakeJira, payments: Database) -> None:
    # A 429 is refused before processing: nothing was created, so no search for a ticket that may exist.
    jira.search_delay(600)
    jira.fail_next("create", status=429, retry_after=1, times=2)
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.tries["check_payments"] == 1  # no task retry: the alert was delivered in the first try
    assert len(jira.issues) == 1
    assert [r.status for r in jira.calls(name="create")] == [429, 429, 201]
    assert len(jira.calls(name="search")) == 1  # the run's one batched search, no unconfirmed-create loop


def test_a_lost_create_answer_never_duplicates_the_ticket(jira: FakeJira, payments: Database) -> None:
    jira.search_delay(2)  # Cloud: a new ticket is not searchable at once
    jira.drop_response_next("create")
    run = run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert run.tries["check_payments"] == 2
    assert len(jira.issues) == 1


def test_wont_fix_tickets_are_left_alone(jira: FakeJira, payments: Database) -> None:
    jira.add_issue("OPS", "old", labels=[LABEL], status="Done", resolution="Won't Fix")
    run_dag(dags.dag, conf={"conn_id": payments.conn_id})
    assert len(jira.issues) == 2  # a new ticket, the Won't Fix one untouched
    assert jira.issues[0].comments == []


def test_a_check_without_tickets_logs_no_missing_xcom_error(payments: Database,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    # The ticket extra link is computed for every task that carries it, tickets or not.
    capfd.readouterr()
    run = run_dag(dags.no_alerts_dag, conf={"conn_id": payments.conn_id})
    out = capfd.readouterr()
    assert run.task_states == {"check_payments": "failed"}
    assert "XCom not found" not in out.out + out.err
    assert run.xcom("check_payments", key="_link_TicketLink") == ""


def test_ticket_url_for_several_tickets() -> None:
    from airflow_opsflow.links import ticket_url

    tickets = [{"key": "OPS-1", "url": "https://j/browse/OPS-1"}, {"key": "OPS-2", "url": "https://j/browse/OPS-2"}]
    assert ticket_url(tickets) == "https://j/issues/?jql=key%20in%20%28OPS-1%2C%20OPS-2%29%20ORDER%20BY%20created%20DESC"
    assert ticket_url([]) == ""


# (run, fault, whether the task must retry): a failed batched search falls back to a per-ticket search,
# and the jira library itself re-sends a comment whose answer was lost, so neither needs a task retry.
@pytest.mark.parametrize(("stage", "fault", "retried"), [
    (1, ("fail", "search"), False), (1, ("drop", "create"), True), (1, ("fail", "create"), True),
    (2, ("drop", "comment"), False), (2, ("fail", "comment"), True),
    (3, ("fail", "issue"), True), (3, ("fail", "transitions"), True), (3, ("drop", "transition"), True),
])
def test_task_retries_at_every_step_never_duplicate_the_ticket(jira: FakeJira, payments: Database, stage: int,
                                                               fault: tuple[str, str], retried: bool) -> None:
    conf = {"conn_id": payments.conn_id}
    tries = {}
    for step in (1, 2, 3):
        if step == 3:
            repair(payments.conn)
        if step == stage:
            kind, target = fault
            if kind == "drop":
                jira.drop_response_next(target)
            else:
                jira.fail_next(target, status=503, retry_after=None)  # 503 without Retry-After: not retried
        tries[step] = run_dag(dags.remind_dag, conf=conf).tries["check_payments"]
    assert (tries[stage] >= 2) is retried  # where the fault failed the task, its retry finished the job
    [ticket] = jira.issues
    assert ticket.status_category == "done"
    assert sum("Still failing" in c.body for c in ticket.comments) >= 1
