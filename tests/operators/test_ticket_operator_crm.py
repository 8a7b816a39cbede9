"""TicketOperator in real DAG runs against the fake HubSpot, Salesforce and Zendesk, with the incident state on
SQLite and on PostgreSQL: a ticket per failing check, nothing sent when nothing changed, closed when the
checks pass, and one ticket only when a task retry follows a create whose answer was lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import repair, seed
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "ticket_operator_crm.py")
SYSTEMS = ["hubspot", "salesforce", "zendesk"]


@dataclass
class System:
    """One fake ticketing system as the tests look at it."""

    name: str
    requests: Callable[[], int]  # requests received so far (every one: reads too)
    tickets: Callable[[], list[tuple[str, bool]]]  # (subject, closed) of every ticket in the system
    creates: Callable[[], list[int | None]]  # statuses of the create requests (None: answer dropped)
    drop_next_create: Callable[[], None]


def _hubspot(fake: FakeHubSpot) -> System:
    fake.define_property("tickets", "opsflow_fingerprint")
    return System("hubspot", lambda: len(fake.requests),
                  lambda: [(t.properties.get("subject", ""), t.properties.get("hs_pipeline_stage") == "4")
                           for t in fake.objects("tickets")],
                  lambda: [r.status for r in fake.calls("create", "tickets")],
                  lambda: fake.drop_response_next(endpoint="create"))


def _salesforce(fake: FakeSalesforce) -> System:
    return System("salesforce", lambda: len(fake.requests),
                  lambda: [(str(c["Subject"]), c["IsClosed"] is True) for c in fake.records("Case")],
                  lambda: [r.status for r in fake.calls("create", path_prefix="/services/data/v59.0/sobjects/Case/")],
                  lambda: fake.drop_response_next("create"))


def _zendesk(fake: FakeZendesk) -> System:
    return System("zendesk", lambda: len(fake.requests),
                  lambda: [(t.subject or "", t.status in ("solved", "closed")) for t in fake.tickets],
                  lambda: [r.status for r in fake.calls("create_ticket")],
                  lambda: fake.drop_response_next("create_ticket"))


@pytest.fixture(params=SYSTEMS)
def system(request: pytest.FixtureRequest) -> System:
    """The system under test, its fake started and its Airflow connection set."""
    name = request.param
    fake = request.getfixturevalue(f"fake_{name}")
    request.getfixturevalue(f"{name}_conn")
    build: dict[str, Callable[[Any], System]] = {"hubspot": _hubspot, "salesforce": _salesforce, "zendesk": _zendesk}
    return build[name](fake)


@pytest.fixture
def payments(sqlite_db: Database) -> Database:
    seed(sqlite_db.conn, problems=True)  # 2 negative amounts, a payment of a customer that does not exist
    return sqlite_db


@pytest.fixture
def state(db: Database, monkeypatch: pytest.MonkeyPatch, system: System) -> Database:
    """The incident state on ``db`` (SQLite, or PostgreSQL with tables of this test's own)."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.name == "postgres":
        prefix = f"tkop_{system.name}_"
        monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", prefix)
        db.execute(f"DROP TABLE IF EXISTS {prefix}incidents, {prefix}deliveries, {prefix}schema_version")
    return db


def test_file_leave_alone_and_close(system: System, payments: Database, state: Database) -> None:
    dag = dags.dags[system.name]
    conf = {"conn_id": payments.conn_id}
    run = run_dag(dag, conf=conf)
    assert run.task_states == {"check_payments": "failed", "tickets": "success"}
    tickets = system.tickets()
    assert len(tickets) == 2 and not any(closed for _, closed in tickets)  # one per failing check
    assert all(any(check in subject for subject, _ in tickets) for check in ("amount_positive", "customer_exists"))
    filed = run.xcom("tickets", key="tickets")
    assert len(filed) == 2 and {t["system"] for t in filed} == {system.name}

    before = system.requests()
    run = run_dag(dag, conf=conf)  # the same failures: not one request to the system
    assert run.task_states["tickets"] == "success" and system.requests() == before
    assert len(system.tickets()) == 2

    repair(payments.conn)
    run = run_dag(dag, conf=conf)
    assert run.task_states == {"check_payments": "success", "tickets": "success"}
    assert [closed for _, closed in system.tickets()] == [True, True]  # closed, none created
    assert system.creates() == [201, 201]
    if state.name == "postgres":  # the state really was there: 2 creates and 2 resolutions sent
        prefix = f"tkop_{system.name}_"
        assert state.scalar(f"SELECT COUNT(*) FROM {prefix}deliveries WHERE status = 'sent'") == 4


def test_a_retry_after_a_lost_create_answer_files_one_ticket(system: System, payments: Database,
                                                             state: Database) -> None:
    system.drop_next_create()  # created, then the connection closes unanswered
    run = run_dag(dags.dags[system.name], conf={"conn_id": payments.conn_id})
    assert run.task_states["tickets"] == "success" and run.tries["tickets"] == 2
    assert len(system.tickets()) == 2  # the retry found the unconfirmed one: still one per check
    assert system.creates() == [None, 201]  # the lost create was never re-sent
