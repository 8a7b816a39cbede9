"""Faults on the Salesforce and Zendesk ticket routes of DataCheckOperator(alerts=[...]), through real DAG runs
against the fakes: storms of 429/403/503 answers (the ticket is delivered exactly once, in this run or, when
the storm outlasts the task's tries, in the next), a ticket create refused as invalid (422), a Case marker
field or Status the org does not have, a session that expires in the middle of a run, and one batched
search for the run's new incidents."""

from __future__ import annotations

from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import DagRunResult, run_dag
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "ticket_route_faults.py")
CASES = "/services/data/v59.0/sobjects/Case/"
SF_ROUTE = "salesforce:salesforce_default/Case"
ZD_ROUTE = "zendesk:zendesk_default/tickets"


@pytest.fixture
def payments(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The payments data (2 negative amounts) and the incident state, both on one SQLite database."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    return sqlite_db


@pytest.fixture
def salesforce(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> FakeSalesforce:
    return fake_salesforce


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk, zendesk_conn: str) -> FakeZendesk:
    return fake_zendesk


@pytest.fixture
def zenpy_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """zenpy's Retry-After waits (one ``sleep(1)`` per second asked), recorded instead of slept."""
    import zenpy.lib.api

    waits: list[float] = []
    monkeypatch.setattr(zenpy.lib.api, "sleep", waits.append)
    return waits


def _run(dag: Any, payments: Database) -> DagRunResult:
    return run_dag(dag, conf={"conn_id": payments.conn_id})


def _deliveries(payments: Database, route: str) -> list[tuple[str, str, int, str | None]]:
    """(transition, status, attempts, last_error) of the route's deliveries, as the state store keeps them."""
    cur = payments.conn.cursor()
    cur.execute("SELECT transition, status, attempts, last_error FROM opsflow_deliveries WHERE route = ? "
                "ORDER BY created_at", (route,))
    return [(str(t), str(s), int(a), e) for t, s, a, e in cur.fetchall()]


def _task_errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The exception each failed try of the check task ended with (``dag.test()`` logs it to stdout)."""
    out = capsys.readouterr().out
    return [line.split("AirflowException: ", 1)[1] for line in out.splitlines()
            if "AirflowException: " in line and "could not be delivered" in line]


def _case_creates(sf: FakeSalesforce, since: int = 0) -> list[int | None]:
    return [r.status for r in sf.calls("create", path_prefix=CASES, since=since)]


# --- Salesforce: 503 (server busy) and 403 REQUEST_LIMIT_EXCEEDED storms ----------------------------------


def test_salesforce_503s_on_the_create_within_the_tries_deliver_one_case(salesforce: FakeSalesforce,
                                                                         payments: Database) -> None:
    salesforce.fail_next(503, target="create", times=2)  # SERVER_UNAVAILABLE, unprocessed
    run = _run(dags.salesforce_dag, payments)
    assert run.tries["check_payments"] == 3  # two tries failed on the 503s, the third delivered
    assert _case_creates(salesforce) == [503, 503, 201] and len(salesforce.records("Case")) == 1
    assert [(t, s) for t, s, _, _ in _deliveries(payments, SF_ROUTE)] == [("new", "sent")]


def test_a_salesforce_503_storm_outlasting_the_tries_delivers_once_in_the_next_run(salesforce: FakeSalesforce,
                                                                                   payments: Database) -> None:
    salesforce.fail_next(503, target="create", times=3)
    run = _run(dags.salesforce_dag, payments)
    assert run.task_states == {"check_payments": "failed"} and run.tries["check_payments"] == 3
    assert salesforce.records("Case") == []
    [(_, status, attempts, error)] = _deliveries(payments, SF_ROUTE)
    assert status == "failed" and attempts == 3 and "HTTP 503" in str(error) and "SERVER_UNAVAILABLE" in str(error)

    mark = salesforce.mark()
    run = _run(dags.salesforce_dag, payments)  # the storm is over: delivered once
    assert run.tries["check_payments"] == 1
    assert _case_creates(salesforce, mark) == [201] and len(salesforce.records("Case")) == 1
    assert [(t, s) for t, s, _, _ in _deliveries(payments, SF_ROUTE)] == [("new", "sent")]


def test_a_503_storm_on_the_case_search_delivers_one_case(salesforce: FakeSalesforce, payments: Database) -> None:
    # The run's batched search and the delivery's own search both answered 503: nothing is created blind.
    salesforce.fail_next(503, target="query", times=2)
    run = _run(dags.salesforce_dag, payments)
    assert run.tries["check_payments"] == 2
    assert [r.status for r in salesforce.calls("query")][:2] == [503, 503]
    assert _case_creates(salesforce) == [201] and len(salesforce.records("Case")) == 1


def test_the_daily_api_limit_used_up_keeps_the_case_pending_for_the_next_day(salesforce: FakeSalesforce,
                                                                             payments: Database) -> None:
    salesforce.set_api_limit(15_000, used=15_000)  # every data request: 403 REQUEST_LIMIT_EXCEEDED
    run = _run(dags.salesforce_dag, payments)
    assert run.tries["check_payments"] == 3 and salesforce.records("Case") == []
    assert _case_creates(salesforce) == []  # nothing was sent blind: every search was refused
    assert {r.error_code for r in salesforce.calls("query")} == {"REQUEST_LIMIT_EXCEEDED"}
    [(_, status, _, error)] = _deliveries(payments, SF_ROUTE)
    assert status == "failed" and "REQUEST_LIMIT_EXCEEDED" in str(error) and "pending" in str(error)

    salesforce.set_api_limit(15_000, used=0)  # the next day's allowance
    _run(dags.salesforce_dag, payments)
    assert _case_creates(salesforce) == [201] and len(salesforce.records("Case")) == 1


def test_a_request_limit_storm_on_the_create_delivers_one_case(salesforce: FakeSalesforce,
                                                               payments: Database) -> None:
    # REQUEST_LIMIT_EXCEEDED is also how Salesforce refuses a request over a concurrency limit, unprocessed.
    salesforce.fail_next(403, target="create", times=2)
    run = _run(dags.salesforce_dag, payments)
    assert run.tries["check_payments"] == 3
    assert _case_creates(salesforce) == [403, 403, 201] and len(salesforce.records("Case")) == 1


# --- Salesforce: session expiry, a missing marker field, a Status the org does not have --------------------


def test_a_session_expiring_between_the_search_and_the_create_logs_in_once(salesforce: FakeSalesforce,
                                                                           payments: Database) -> None:
    # The run's search succeeds; the session then expires: the create answers 401 INVALID_SESSION_ID, unprocessed.
    salesforce.fail_next(401, target="create")
    run = _run(dags.salesforce_dag, payments)
    assert run.tries["check_payments"] == 1  # delivered in the first try
    # The run's login and search, the picklists checked, the refused create, one login again, the create, the
    # Case read back.
    assert [r.name for r in salesforce.requests] == ["login", "query", "describe", "create", "login", "create", "get"]
    assert _case_creates(salesforce) == [401, 201] and len(salesforce.records("Case")) == 1


def test_a_missing_marker_field_is_named_and_no_case_is_created(salesforce: FakeSalesforce, payments: Database,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(dags.salesforce_no_marker_dag, payments)
    assert run.task_states == {"check_payments": "failed"} and salesforce.records("Case") == []
    assert _case_creates(salesforce) == []  # refused at the first search, before any Case
    [(_, status, _, error)] = _deliveries(payments, "salesforce:salesforce_default/Case")
    assert status == "failed" and "Opsflow_Incident__c" in str(error) and "INVALID_FIELD" in str(error)
    errors = _task_errors(capsys)
    assert errors and all("Opsflow_Incident__c" in e and SF_ROUTE in e for e in errors)


def test_an_open_status_missing_from_the_picklist_is_named_and_no_case_is_created(
        salesforce: FakeSalesforce, payments: Database, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(dags.salesforce_bad_open_dag, payments)
    assert run.task_states == {"check_payments": "failed"} and salesforce.records("Case") == []
    [(_, status, _, error)] = _deliveries(payments, SF_ROUTE)
    assert status == "failed" and "open_status 'Triage' is not an active Status of Case" in str(error)
    assert "New" in str(error)  # the values the org has
    assert salesforce.calls("create") == []  # found by the describe, before any write
    errors = _task_errors(capsys)
    assert errors and all("Triage" in e and SF_ROUTE in e for e in errors)


def test_a_closed_status_missing_from_the_picklist_is_named_before_any_case_is_created(
        salesforce: FakeSalesforce, payments: Database) -> None:
    _run(dags.salesforce_bad_closed_dag, payments)
    assert salesforce.records("Case") == [] and salesforce.calls("create") == []
    [(_, _, _, error)] = _deliveries(payments, SF_ROUTE)
    assert "closed_status 'Resolved' is not an active Status of Case" in str(error)


def test_k_new_incidents_cost_one_soql_search(salesforce: FakeSalesforce, payments: Database) -> None:
    run = _run(dags.salesforce_three_dag, payments)
    assert run.tries["check_payments"] == 1
    assert len(salesforce.records("Case")) == 3
    [query] = salesforce.calls("query")  # one SOQL for the three markers, none per incident
    assert query.query["q"][0].count("'opsflow-") == 3
    assert _case_creates(salesforce) == [201, 201, 201]
    # Repaired: the three resolutions read their Cases with one Id IN query, not a GET each, then close them.
    repair(payments.conn)
    mark = salesforce.mark()
    run = _run(dags.salesforce_three_dag, payments)
    assert run.task_states == {"check_payments": "success"}
    [read] = salesforce.calls("query", since=mark)
    assert "WHERE Id IN (" in read.query["q"][0] and salesforce.calls("get", since=mark) == []
    assert all(c["IsClosed"] for c in salesforce.records("Case"))


# --- Zendesk: 429 with Retry-After, 503 storms, a ticket refused as invalid ---------------------------------


def test_zendesk_429s_with_retry_after_are_waited_out_and_create_once(zendesk: FakeZendesk, payments: Database,
                                                                      zenpy_waits: list[float]) -> None:
    zendesk.fail_next("create_ticket", status=429, retry_after=3, times=4)
    run = _run(dags.zendesk_dag, payments)
    assert run.tries["check_payments"] == 1  # zenpy waited Retry-After and sent the create again, unapplied before
    assert [r.status for r in zendesk.calls("create_ticket")] == [429, 429, 429, 429, 201]
    assert zenpy_waits == [1] * 12  # 4 x Retry-After: 3, in zenpy's one-second steps
    assert len(zendesk.tickets) == 1


def test_a_zendesk_429_storm_longer_than_rate_limit_wait_leaves_the_ticket_pending(zendesk: FakeZendesk,
                                                                                   payments: Database,
                                                                                   zenpy_waits: list[float]) -> None:
    # Retry-After: 50 on every create: zenpy waits 50 + 50 s, then the route's budget (rate_limit_wait=120)
    # runs out at 120 s of waiting, the try fails and the delivery stays pending; no ticket is half-made.
    zendesk.fail_next("create_ticket", status=429, retry_after=50, times=100)
    run = _run(dags.zendesk_dag, payments)
    assert run.task_states == {"check_payments": "failed"} and zendesk.tickets == []
    assert len(zenpy_waits) == 3 * 119  # each try: 119 one-second waits, the 120th exceeds the budget
    [(_, state, _, error)] = _deliveries(payments, ZD_ROUTE)
    assert state == "failed" and "RatelimitBudgetExceeded" in str(error)


def test_zendesk_503s_on_the_create_within_the_tries_deliver_one_ticket(zendesk: FakeZendesk,
                                                                        payments: Database) -> None:
    zendesk.fail_next("create_ticket", status=503, times=2)
    run = _run(dags.zendesk_dag, payments)
    assert run.tries["check_payments"] == 3
    assert [r.status for r in zendesk.calls("create_ticket")] == [503, 503, 201] and len(zendesk.tickets) == 1


@pytest.mark.parametrize("status", [503, 429])
def test_a_zendesk_storm_outlasting_the_tries_delivers_once_in_the_next_run(zendesk: FakeZendesk,
                                                                            payments: Database, status: int) -> None:
    # Retry-After: 0 (a 429 zenpy does not wait out): each try fails and the delivery stays pending.
    zendesk.fail_next("create_ticket", status=status, retry_after=0 if status == 429 else None, times=3)
    run = _run(dags.zendesk_dag, payments)
    assert run.task_states == {"check_payments": "failed"} and run.tries["check_payments"] == 3
    assert zendesk.tickets == []
    [(_, state, attempts, error)] = _deliveries(payments, ZD_ROUTE)
    assert state == "failed" and attempts == 3 and "Zendesk (zendesk_default) failed creating a ticket" in str(error)

    _run(dags.zendesk_dag, payments)
    assert [r.status for r in zendesk.calls("create_ticket")] == [status] * 3 + [201] and len(zendesk.tickets) == 1
    assert [(t, s) for t, s, _, _ in _deliveries(payments, ZD_ROUTE)] == [("new", "sent")]


# A refused custom field as Zendesk answers it (RecordInvalid, the field named in details.base).
RECORD_INVALID = {"error": "RecordInvalid", "description": "Record validation errors", "details": {"base": [
    {"description": "Payment reference: is invalid", "error": "InvalidValue",
     "ticket_field_id": dags.ZENDESK_FIELD, "ticket_field_type": "FieldRegexp"}]}}


def test_a_ticket_refused_as_invalid_is_named_and_the_next_run_after_the_fix_files_it_once(
        zendesk: FakeZendesk, payments: Database, capsys: pytest.CaptureFixture[str]) -> None:
    zendesk.fail_next("create_ticket", status=422, body=RECORD_INVALID, times=3)  # refused until fixed
    run = _run(dags.zendesk_dag, payments)
    assert run.task_states == {"check_payments": "failed"} and zendesk.tickets == []  # nothing half-written
    assert zendesk.writes() == [r for r in zendesk.requests if r.name == "create_ticket"]  # only the refused creates
    [(_, state, _, error)] = _deliveries(payments, ZD_ROUTE)
    assert state == "failed" and "RecordInvalid" in str(error) and "Payment reference: is invalid" in str(error)
    errors = _task_errors(capsys)
    assert errors and all("Payment reference: is invalid" in e and ZD_ROUTE in e for e in errors)

    _run(dags.zendesk_dag, payments)  # the field's value fixed (the fault gone): filed once
    [ticket] = zendesk.tickets
    assert ticket.custom_fields == {dags.ZENDESK_FIELD: "PAY-0042"}
    assert [r.status for r in zendesk.calls("create_ticket")] == [422, 422, 422, 201]


def test_an_undelivered_ticket_error_names_the_task_and_the_check(salesforce: FakeSalesforce, payments: Database,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    salesforce.fail_next(503, target="create", times=3)
    run = _run(dags.salesforce_dag, payments)
    assert run.tries["check_payments"] == 3
    errors = _task_errors(capsys)
    assert len(errors) == 3
    assert all("task 'check_payments'" in e and "amount_positive" in e.split(". Checks that did not pass")[0]
               for e in errors)
