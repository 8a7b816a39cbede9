"""TicketOperator in real DAG runs against the fake Jira."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.sample_data import repair, seed

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "jira_conn")
dags = load_module(DAGS / "ticket_operator.py")


@pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
def test_tickets_per_check_per_task_and_explicit(sqlite_db: Database, fake_jira: FakeJira,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)
    conf = {"conn_id": sqlite_db.conn_id}
    run = run_dag(dags.dag, conf=conf)
    assert run.task_states == {"check_payments": "failed", "tickets_per_check": "success",
                               "ticket_per_task": "success", "explicit": "success"}
    by_project: dict[str, list[str]] = {}
    for issue in fake_jira.issues:
        by_project.setdefault(issue.project, []).append(issue.summary)
    assert len(by_project["OPS"]) == 3 and len(by_project["FIN"]) == 1
    assert any(s.startswith("Reconcile payments of ") and s.endswith(" by hand") for s in by_project["OPS"])
    assert sum("amount_positive" in s for s in by_project["OPS"]) == 1
    ops = [i for i in fake_jira.issues if i.project == "OPS"]
    assert all(i.issuetype == "Incident" and i.components == ["pipelines"] for i in ops)
    assert all(i.custom.get("customfield_10010") == "Payments" for i in ops)
    assert sorted(i.priority for i in ops) == ["Highest", "Highest", "Low"]  # severity -> priority
    per_task = fake_jira.issues[[i.project for i in fake_jira.issues].index("FIN")]
    assert "amount_positive" in (per_task.description or "") and "customer_exists" in (per_task.description or "")
    assert len(run.xcom("tickets_per_check", key="tickets")) == 2

    run_dag(dags.dag, conf=conf)  # the same problems: no new ticket
    assert len(fake_jira.issues) == 4

    repair(sqlite_db.conn)
    run_dag(dags.dag, conf=conf)
    done = {i.summary: i.status_category for i in fake_jira.issues}
    assert [s for s, c in done.items() if c == "done"] and len(fake_jira.issues) == 4
    assert all(c == "done" for s, c in done.items() if not s.startswith("Reconcile"))


def test_one_ticket_per_stuck_delivery(sqlite_db: Database, fake_jira: FakeJira,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    seed(sqlite_db.conn, problems=True)  # deliveries 17, 123, 256 and 404 are stuck
    conf = {"conn_id": sqlite_db.conn_id}
    run_dag(dags.entity_dag, conf=conf)
    tickets = {i.summary.split("[")[2].split("]")[0]: i.key for i in fake_jira.issues}
    assert sorted(tickets, key=int) == ["17", "123", "256", "404"]

    sqlite_db.execute("UPDATE deliveries SET status = 'delivered' WHERE id = 17",
                      "UPDATE deliveries SET status = 'in_transit', status_changed_at = '2020-01-01 00:00:00' "
                      "WHERE id = 18")
    run = run_dag(dags.entity_dag, conf=conf)
    by_key = {i.key: i for i in fake_jira.issues}
    assert by_key[tickets["17"]].status_category == "done"  # delivered: its ticket resolves
    assert all(by_key[tickets[d]].status_category != "done" for d in ("123", "256", "404"))
    assert len(fake_jira.issues) == 5 and "[18]" in fake_jira.issues[-1].summary  # a new stuck delivery
    assert {i["entity"] for i in run.xcom("ticket_per_delivery") if i["status"] == "open"} == {"18", "123", "256",
                                                                                               "404"}
