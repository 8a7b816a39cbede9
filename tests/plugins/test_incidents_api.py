"""The Ops view's incidents and entities endpoints in Airflow's own API server app, on a state database seeded
by real DAG runs (SQLite and PostgreSQL): stuck deliveries tracked one by one that escalate to error past
their SLA (Slack thread, Jira ticket, a masked sample column), and a payments check that fails and resolves.
A user from whom the auth manager hides the deliveries DAG sees nothing of it, not even in counts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import DagRunResult, run_dag
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.slack_server import FakeSlack
from fastapi.testclient import TestClient

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.plugins import clock
from airflow_opsflow.state.store import StateStore
from tests.conftest import PG_CONN_ID, SQLITE_CONN_ID, Database
from tests.helpers import DAGS, load_module, state_on
from tests.plugins import auth
from tests.plugins.auth import api_server

pytestmark = pytest.mark.usefixtures("airflow_db")
entities_dags = load_module(DAGS / "entities.py")
payments_dags = load_module(DAGS / "alerts.py")
USERS = {"alice": ("viewer", "alice-secret"), "victor": ("viewer", "victor-secret")}  # name: (role, password)
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday noon
NOW = T0 + timedelta(hours=19)  # the API's pinned "now": the escalating run's time
PREFIX = "opsview_"
STUCK = fingerprint("test_entities", "deliveries", "stuck_deliveries")
PAYMENTS = fingerprint("test_alerts", "check_payments", "amount_positive")


def at(hours: float) -> pendulum.DateTime:
    return pendulum.instance(T0 + timedelta(hours=hours))


class Seeded:
    """What the DAG runs left: the state store (to read back) and the runs, by name."""

    def __init__(self, store: StateStore, runs: dict[str, DagRunResult], jira: FakeJira) -> None:
        self.store, self.runs, self.jira = store, runs, jira


def _tables(db: Database) -> None:
    shipped = "TIMESTAMP" if db.dialect == "postgres" else "TEXT"
    db.execute("DROP TABLE IF EXISTS deliveries", "DROP TABLE IF EXISTS payments",
               f"CREATE TABLE deliveries (delivery_id VARCHAR(20) PRIMARY KEY, customer VARCHAR(40), "
               f"value_eur DECIMAL(10, 2), status VARCHAR(20), shipped_at {shipped})",
               "CREATE TABLE payments (id INTEGER PRIMARY KEY, amount DECIMAL(12, 2))",
               "INSERT INTO payments VALUES (1, 10.00), (2, -5.00), (3, -7.50)")
    for delivery_id, hours_before, value in (("D-1", 30, "120.00"), ("D-2", 26, "80.50"), ("D-3", 20, "40.00")):
        shipped_at = (T0 - timedelta(hours=hours_before)).replace(tzinfo=None).isoformat(sep=" ")
        db.execute(f"INSERT INTO deliveries VALUES ('{delivery_id}', 'cust-{delivery_id}', {value}, 'in_transit', "
                   f"'{shipped_at}')")


@pytest.fixture(scope="module", params=["sqlite", "pg"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """The module's DAG runs, once per database: deliveries at T0 (2 stuck: a warn incident) and at T0 + 19 h
    (3 stuck, the oldest past its 48 h SLA: escalated to error); payments failing, then repaired."""
    with pytest.MonkeyPatch.context() as env, FakeSlack() as slack, FakeJira() as jira:
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # 127.0.0.1 goes direct
            env.delenv(name, raising=False)
        for name, value in {**slack.slack_connection("slack_api_default"),
                            **jira.jira_connection("opsflow_jira")}.items():
            env.setenv(name, value)
        if request.param == "sqlite":
            path = tmp_path_factory.mktemp("opsview") / "ops.db"
            env.setenv(f"AIRFLOW_CONN_{SQLITE_CONN_ID.upper()}", json.dumps({"conn_type": "sqlite", "host": str(path)}))
            database = Database("sqlite", "sqlite", sqlite3.connect(path), SQLITE_CONN_ID)
            store = StateStore(lambda: sqlite3.connect(path), "sqlite")
        else:
            import psycopg2

            uri = request.getfixturevalue("pg_uri")
            env.setenv(f"AIRFLOW_CONN_{PG_CONN_ID.upper()}", uri)
            database = Database("postgres", "postgres", psycopg2.connect(uri), PG_CONN_ID)
            store = StateStore(lambda: psycopg2.connect(uri), "postgres", prefix=PREFIX)
        state_on(database, env, PREFIX)
        _tables(database)
        conf = {"conn_id": database.conn_id}
        deliveries, payments = entities_dags.dag.get_task("deliveries"), payments_dags.dag.get_task("check_payments")
        routes = deliveries.alerts, payments.alerts
        # The delivery ids are deemed personal data: the Slack route masks them, and so must the Ops view.
        deliveries.alerts = [SlackAlert(conn_id="slack_api_default", channel="#ops", mask_columns=("delivery_id",)),
                             routes[0][1]]
        payments.alerts = [SlackAlert(conn_id="slack_api_default", channel="#alerts")]
        try:
            runs = {"open": run_dag(entities_dags.dag, conf=conf, logical_date=at(0)),
                    "escalate": run_dag(entities_dags.dag, conf=conf, logical_date=at(19)),
                    "fail": run_dag(payments_dags.dag, conf=conf, logical_date=at(1))}
            database.execute("UPDATE payments SET amount = 1 WHERE amount <= 0")
            runs["repaired"] = run_dag(payments_dags.dag, conf=conf, logical_date=at(2))
        finally:
            deliveries.alerts, payments.alerts = routes
        assert {name: r.task_states for name, r in runs.items()} == {
            "open": {"deliveries": "success"}, "escalate": {"deliveries": "failed"},
            "fail": {"check_payments": "failed"}, "repaired": {"check_payments": "success"}}
        try:
            yield Seeded(store, runs, jira)
        finally:
            store.close()
            database.execute("DROP TABLE deliveries", "DROP TABLE payments")
            database.conn.close()


@pytest.fixture(scope="module")
def api(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Airflow's API server app, its auth manager hiding the deliveries DAG from victor."""
    with (api_server(USERS, tmp_path_factory.mktemp("auth"), "victor:test_entities") as client,
          pytest.MonkeyPatch.context() as env):
        env.setattr(clock, "now", lambda: NOW)
        yield client


def login(client: TestClient, user: str) -> dict[str, str]:
    return auth.login(client, USERS, user)


def get(api: TestClient, path: str, user: str = "alice", **params: Any) -> Any:
    answer = api.get("/opsflow/api/v1" + path, headers=login(api, user), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ti_url(dag_id: str, run: DagRunResult, task_id: str) -> str:
    return f"/dags/{dag_id}/runs/{quote(run.run_id, safe='')}/tasks/{task_id}"


def test_open_incidents_with_their_evidence_owner_and_links(api: TestClient, db: Seeded) -> None:
    body = get(api, "/incidents")
    assert body["now"] == "2026-03-03T07:00:00Z"
    [stuck] = body["incidents"]  # the payments incident is resolved: not listed by default
    assert body["totals"] == {"open": 1, "by_severity": {"error": 1}, "by_status": {"open": 1, "resolved": 1}}
    assert body["truncated"] is False
    [ticket] = db.jira.issues
    escalate = db.runs["escalate"]
    assert {k: stuck[k] for k in ("fingerprint", "incident_id", "dag_id", "task_id", "map_index", "check",
                                  "entity_key", "status", "severity", "fail_streak", "occurrences", "owner",
                                  "table", "run_id")} == {
        "fingerprint": STUCK, "incident_id": f"{STUCK}-1", "dag_id": "test_entities", "task_id": "deliveries",
        "map_index": None, "check": "stuck_deliveries", "entity_key": None, "status": "open", "severity": "error",
        "fail_streak": 2, "occurrences": 2, "owner": "logistics-ops", "table": None, "run_id": escalate.run_id}
    first_seen = datetime.fromisoformat(stuck["first_seen"])
    assert stuck["age_seconds"] == (NOW - first_seen).total_seconds()
    assert stuck["opened_at"] == stuck["first_seen"] and stuck["resolved_at"] is None
    evidence = stuck["evidence"]
    assert evidence["violating_count"] == 3 and "Escalated to error" in evidence["message"]
    assert [(s["delivery_id"], s["opsflow_amount"]) for s in evidence["samples"]] == [  # masked as Slack masks them
        ("•••", 120), ("•••", 80.5), ("•••", 40)]
    links = stuck["links"]
    assert links["task_instance_url"] == links["log_url"] == ti_url("test_entities", escalate, "deliveries")
    assert links["slack"]["channel"] and links["slack"]["ts"] and links["slack"]["url"] is None
    assert links["tickets"] == [{"system": "jira", "key": ticket.key, "url": links["tickets"][0]["url"]}]
    assert links["tickets"][0]["url"].endswith(f"/browse/{ticket.key}")

    everything = get(api, "/incidents", status="all")
    assert [i["fingerprint"] for i in everything["incidents"]] == [STUCK, PAYMENTS]  # error first
    paid = everything["incidents"][1]
    assert (paid["status"], paid["severity"], paid["owner"], paid["table"]) == (
        "resolved", "error", "payments-ops", "payments")
    assert paid["resolved_at"] is not None and paid["run_id"] == db.runs["repaired"].run_id
    assert paid["links"]["slack"] is not None  # the thread of the occurrence that resolved
    assert everything["totals"] == body["totals"]  # totals do not depend on the status filter
    assert [i["fingerprint"] for i in get(api, "/incidents", status="resolved")["incidents"]] == [PAYMENTS]


def test_filters_and_limit(api: TestClient, db: Seeded) -> None:
    def listed(**params: Any) -> list[str]:
        return [i["check"] for i in get(api, "/incidents", status="all", **params)["incidents"]]

    assert listed(owner="logistics-ops") == ["stuck_deliveries"]
    assert listed(owner="airflow") == ["stuck_deliveries", "amount_positive"]  # the tasks' owner
    assert listed(table="payments") == ["amount_positive"]
    assert listed(dag_id="test_alerts") == listed(task_id="check_payments") == ["amount_positive"]
    assert listed(check="stuck_deliveries", severity="error") == ["stuck_deliveries"]
    assert listed(severity="warn") == [] and listed(since="2999-01-01T00:00:00Z") == []
    assert len(listed(until="2999-01-01T00:00:00")) == 2
    cut = get(api, "/incidents", status="all", limit=1)
    assert len(cut["incidents"]) == 1 and cut["truncated"] is True and cut["totals"]["by_status"]["resolved"] == 1
    owned = get(api, "/incidents", status="all", owner="payments-ops")
    assert owned["totals"] == {"open": 0, "by_severity": {}, "by_status": {"resolved": 1}}
    assert api.get("/opsflow/api/v1/incidents", params={"limit": 5001},
                   headers=login(api, "alice")).status_code == 422


def test_entities_most_money_first_with_ages_against_the_sla(api: TestClient, db: Seeded) -> None:
    body = get(api, "/entities")
    opened, escalated = db.runs["open"], db.runs["escalate"]
    assert [(e["entity_key"], e["amount"], e["age_seconds"] / 3600, e["over_sla"]) for e in body["entities"]] == [
        ("•••", 120.0, 49.0, True), ("•••", 80.5, 45.0, False), ("•••", 40.0, 39.0, False)]  # the key is masked
    assert body["totals"] == {"count": 3, "amount": 240.5, "over_sla": 1} and body["truncated"] is False
    first = body["entities"][0]
    assert first == {
        "dag_id": "test_entities", "task_id": "deliveries", "map_index": None, "check": "stuck_deliveries",
        "entity_key": "•••", "since": "2026-03-01T06:00:00Z", "first_seen": "2026-03-02T12:00:00Z",
        "age_seconds": 49 * 3600.0, "sla_seconds": 48 * 3600.0, "over_sla": True, "amount": 120.0,
        "currency": None, "status": "open", "resolved_at": None, "fingerprint": STUCK,
        "links": {"task_instance_url": ti_url("test_entities", opened, "deliveries"),
                  "log_url": ti_url("test_entities", opened, "deliveries"), "incident": f"/api/v1/incidents/{STUCK}"}}
    assert body["entities"][2]["links"]["task_instance_url"] == ti_url("test_entities", escalated, "deliveries")

    recent = get(api, "/entities", since="2026-03-01T10:00:00Z")  # stuck since 10:00 or later: D-2, D-3
    assert [e["amount"] for e in recent["entities"]] == [80.5, 40.0] and recent["totals"]["count"] == 2
    cut = get(api, "/entities", limit=1, check="stuck_deliveries")
    assert len(cut["entities"]) == 1 and cut["truncated"] is True and cut["totals"]["count"] == 3
    assert get(api, "/entities", status="resolved")["entities"] == []
    assert get(api, "/entities", dag_id="test_alerts")["totals"] == {"count": 0, "amount": None, "over_sla": 0}


def test_one_incident_with_its_entities_and_runs(api: TestClient, db: Seeded) -> None:
    detail = get(api, f"/incidents/{STUCK}")
    listed = get(api, "/incidents")["incidents"][0]
    assert {k: v for k, v in detail.items() if k not in ("entities", "recent_runs")} == listed
    assert [e["amount"] for e in detail["entities"]] == [120.0, 80.5, 40.0]
    assert [r["run_id"] for r in detail["recent_runs"]] == [db.runs["escalate"].run_id, db.runs["open"].run_id]
    assert detail["recent_runs"][1]["task_instance_url"] == ti_url("test_entities", db.runs["open"], "deliveries")
    paid = get(api, f"/incidents/{PAYMENTS}")
    assert paid["entities"] is None and paid["status"] == "resolved" and len(paid["recent_runs"]) == 2


def test_a_user_sees_nothing_of_a_dag_hidden_from_them(api: TestClient, db: Seeded) -> None:
    body = get(api, "/incidents", "victor", status="all")
    assert [i["fingerprint"] for i in body["incidents"]] == [PAYMENTS]
    assert body["totals"] == {"open": 0, "by_severity": {}, "by_status": {"resolved": 1}}
    assert get(api, "/incidents", "victor", dag_id="test_entities", status="all")["incidents"] == []
    assert get(api, "/entities", "victor") == {
        "now": get(api, "/entities", "victor")["now"], "entities": [],
        "totals": {"count": 0, "amount": None, "over_sla": 0}, "truncated": False}
    hidden = api.get(f"/opsflow/api/v1/incidents/{STUCK}", headers=login(api, "victor"))
    absent = api.get("/opsflow/api/v1/incidents/" + "0" * 32, headers=login(api, "victor"))
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"] == f"no incident has the fingerprint {STUCK!r}"  # says no more than for none


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_authentication_and_a_missing_state_database(api: TestClient, db: Seeded,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for path in ("/incidents", f"/incidents/{STUCK}", "/entities"):
        assert api.get("/opsflow/api/v1" + path).status_code == 401
    assert api.get("/opsflow/api/v1/incidents", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    alice = login(api, "alice")
    monkeypatch.delenv("AIRFLOW__OPSFLOW__STATE_CONN_ID")
    for path in ("/incidents", f"/incidents/{STUCK}", "/entities"):
        unset = api.get("/opsflow/api/v1" + path, headers=alice)
        assert unset.status_code == 503 and "[opsflow] state_conn_id" in unset.json()["detail"]
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "no_such_conn")
    missing = api.get("/opsflow/api/v1/entities", headers=alice)
    assert missing.status_code == 503 and "'no_such_conn'" in missing.json()["detail"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_an_incident_stored_before_masking_was_kept_shows_no_sample_value(api: TestClient, db: Seeded) -> None:
    """An older opsflow kept no masked columns nor task owner with the incident: mask every value."""
    fp = fingerprint("test_alerts", "older_task", "emails_valid")
    summary = {"name": "emails_valid", "kind": "regex", "table": "customers", "samples": [{"id": 7, "email": "a@b"}]}
    observed = Observation(failing=True, severity="warn", run_key="manual__old", summary=summary)
    IncidentRepo(db.store).record([(Subject(fp, "test_alerts", "older_task", "emails_valid"), observed)], Policy(), [],
                                  now=T0)
    older = get(api, f"/incidents/{fp}")
    assert older["evidence"]["samples"] == [{"id": "•••", "email": "•••"}]
    assert (older["owner"], older["table"], older["severity"], older["age_seconds"]) == (
        None, "customers", "warn", 19 * 3600.0)
    assert older["links"]["task_instance_url"] == "/dags/test_alerts/runs/manual__old/tasks/older_task"
