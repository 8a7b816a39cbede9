"""HubSpotObjects beyond companies, through real DAG runs against the fake HubSpot: tickets with their pipeline
stage, a custom object by its type id, and records associated with their company (v4 default associations).

The source is a SQLite file of its own; the sync's state is on SQLite or on PostgreSQL. Checked: the requests
per run (one upsert, and per association one batch read of the targets and one batch associate), a record whose
company does not exist failing with its key until a later run finds the company, nothing sent when nothing
changed, and a 429 storm on the associations endpoint waited out without writing anything twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot

from airflow_opsflow.destinations.hubspot import HubSpotObjects
from airflow_opsflow.sync.destinations.base import DestinationFailed, Record
from airflow_opsflow.sync.destinations.hubspot import Association, HubSpotObjectsClient
from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
from tests.conftest import Database
from tests.helpers import DAGS, load_module, state_on

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "hubspot_objects_more.py")
CONF = {"conn_id": "hs_source", "dry_run": False, "full_resync": False}
ASSOCIATE = "associations/batch/associate/default"


@pytest.fixture
def hubspot(fake_hubspot: FakeHubSpot, hubspot_conn: str) -> FakeHubSpot:
    fake_hubspot.define_property("companies", "account_key", "string", unique=True)
    fake_hubspot.define_property("tickets", "warehouse_case_id", "string", unique=True)
    fake_hubspot.define_pipeline("9", "Escalations", [("91", "Triage", "OPEN"), ("92", "Done", "CLOSED")])
    fake_hubspot.define_object_type("subscriptions", "2-1234")
    fake_hubspot.define_property("2-1234", "subscription_key", "string", unique=True)
    fake_hubspot.define_property("2-1234", "plan", "string")
    fake_hubspot.define_property("2-1234", "seats", "number")
    return fake_hubspot


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """Five accounts, twelve people (person i works at account 1 + i % 5), six support cases (even ones closed)
    and four subscriptions, in a SQLite file of their own (the state store is elsewhere)."""
    path = tmp_path / "source.db"
    monkeypatch.setenv("AIRFLOW_CONN_HS_SOURCE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    conn = sqlite3.connect(path)
    db = Database("source", "sqlite", conn, "hs_source")
    db.execute("CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100), domain VARCHAR(100))",
               "CREATE TABLE people (person_id INTEGER PRIMARY KEY, email VARCHAR(100), first_name VARCHAR(50), "
               "account_id INTEGER)",
               "CREATE TABLE support_cases (case_id INTEGER PRIMARY KEY, account_id INTEGER, subject VARCHAR(100), "
               "priority VARCHAR(10), status VARCHAR(10))",
               "CREATE TABLE subscriptions (sub_id INTEGER PRIMARY KEY, plan VARCHAR(20), seats INTEGER, "
               "account_id INTEGER)")
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)",
                     [(i, f"Account {i}", f"account{i}.example.com") for i in range(1, 6)])
    conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?)",
                     [(i, f"person{i}@example.com", f"Person {i}", 1 + i % 5) for i in range(1, 13)])
    conn.executemany("INSERT INTO support_cases VALUES (?, ?, ?, ?, ?)",
                     [(i, 1 + i % 5, f"Case {i}", "HIGH" if i % 3 == 0 else "LOW", "closed" if i % 2 == 0 else "open")
                      for i in range(1, 7)])
    conn.executemany("INSERT INTO subscriptions VALUES (?, ?, ?, ?)",
                     [(i, "pro" if i % 2 else "team", 10 * i, i) for i in range(1, 5)])
    conn.commit()
    yield db
    conn.close()


@pytest.fixture
def state(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The state store on SQLite or PostgreSQL (tables of their own there, dropped first)."""
    return state_on(db, monkeypatch, "hs_more_")


def run(dag: Any, **conf: Any) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    result = run_dag(dag, conf={**CONF, **conf})
    return result.task_states, {t: result.xcom(t, key="sync") for t in result.xcoms if "sync" in result.xcoms[t]}


def endpoints(hubspot: FakeHubSpot, since: int = 0) -> Counter[tuple[str, str | None]]:
    return Counter((r.endpoint, r.object_type) for r in hubspot.requests[since:])


def company_of(hubspot: FakeHubSpot, object_type: str, prop: str, value: str) -> list[str]:
    """The account keys of the companies a record is associated with."""
    record = hubspot.object_by(object_type, prop, value)
    assert record is not None, f"no {object_type} {prop}={value}"
    return [c.properties["account_key"] for c in hubspot.associated(object_type, record.id, "companies")]


def no_duplicates(hubspot: FakeHubSpot) -> None:
    for object_type, prop in (("companies", "account_key"), ("contacts", "email"), ("tickets", "warehouse_case_id")):
        assert max(hubspot.create_counts(object_type, prop).values(), default=1) == 1


# -- tickets ----------------------------------------------------------------------------------------------


def test_tickets_synced_with_their_pipeline_stage(hubspot: FakeHubSpot, state: Database, source: Database) -> None:
    states, reports = run(dags.crm_dag)
    assert states == {"companies": "success", "contacts": "success", "tickets": "success"}
    assert reports["tickets"]["counts"]["added"] == 6 and reports["tickets"]["counts"]["failed"] == 0
    tickets = {t.properties["warehouse_case_id"]: t.properties for t in hubspot.objects("tickets")}
    assert len(tickets) == 6
    assert (tickets["1"]["hs_pipeline"], tickets["1"]["hs_pipeline_stage"], tickets["1"]["subject"]) == (
        "9", "91", "Case 1")
    assert tickets["2"]["hs_pipeline_stage"] == "92" and tickets["2"].get("closed_date")  # a CLOSED stage
    assert tickets["3"]["hs_ticket_priority"] == "HIGH"
    assert company_of(hubspot, "tickets", "warehouse_case_id", "4") == ["5"]  # case 4 is account 1 + 4 % 5
    assert hubspot.calls("batch/upsert", "tickets")[0].body["inputs"][0]["properties"].keys() == {
        "warehouse_case_id", "subject", "hs_ticket_priority", "hs_pipeline", "hs_pipeline_stage"}  # no company_key

    source.execute("UPDATE support_cases SET status = 'closed' WHERE case_id = 1")
    seen = len(hubspot.requests)
    states, reports = run(dags.crm_dag)
    assert reports["tickets"]["counts"]["changed"] == 1
    # the stage alone changed: the ticket is written and associated again (associating is idempotent)
    assert endpoints(hubspot, seen) == {("batch/upsert", "tickets"): 1, ("batch/read", "companies"): 1,
                                        (ASSOCIATE, "tickets"): 1}
    ticket = hubspot.object_by("tickets", "warehouse_case_id", "1")
    assert ticket is not None and ticket.properties["hs_pipeline_stage"] == "92"
    assert len(hubspot.objects("tickets")) == 6
    no_duplicates(hubspot)


def test_a_ticket_stage_that_is_not_in_the_pipeline_is_the_records_error(hubspot: FakeHubSpot, state: Database,
                                                                        source: Database) -> None:
    hubspot.define_pipeline("9", "Escalations", [("91", "Triage", "OPEN")])  # no "Done" (92) for closed cases
    states, reports = run(dags.crm_dag)
    assert states["tickets"] == "success"  # 3 of 6 rejected: within max_failed_share=0.5
    assert reports["tickets"]["counts"]["added"] == 3
    assert sorted(f["key"] for f in reports["tickets"]["failures"]) == ["2", "4", "6"]
    assert "92" in reports["tickets"]["failures"][0]["error"]
    assert sorted(t.properties["warehouse_case_id"] for t in hubspot.objects("tickets")) == ["1", "3", "5"]


def test_tickets_need_their_stage_mapped() -> None:
    client = HubSpotObjectsClient(HttpTransport(HttpTarget("http://127.0.0.1:9")), "tickets", "case_key")
    assert "hs_pipeline_stage" in client.preflight(["case_key", "subject"], "upsert")[0]
    assert client.preflight(["case_key", "subject"], "update") == []  # existing tickets keep theirs
    assert client.preflight(["case_key", "hs_pipeline_stage"], "mirror") == []


# -- a custom object by its type id -----------------------------------------------------------------------


def test_custom_object_by_type_id(hubspot: FakeHubSpot, state: Database, source: Database) -> None:
    states, reports = run(dags.custom_dag)
    assert states == {"subscriptions": "success"} and reports["subscriptions"]["counts"]["added"] == 4
    assert [r.path for r in hubspot.requests] == ["/crm/v3/objects/2-1234/batch/upsert"]
    subs = {s.properties["subscription_key"]: s.properties for s in hubspot.objects("subscriptions")}
    assert (subs["3"]["plan"], subs["3"]["seats"]) == ("pro", "30")

    source.execute("UPDATE subscriptions SET seats = 25 WHERE sub_id = 2", "DELETE FROM subscriptions WHERE sub_id = 4")
    states, reports = run(dags.custom_dag)
    assert (reports["subscriptions"]["counts"]["changed"], reports["subscriptions"]["counts"]["deleted"]) == (1, 1)
    subs = {s.properties["subscription_key"]: s.properties for s in hubspot.objects("subscriptions")}
    assert sorted(subs) == ["1", "2", "3"] and subs["2"]["seats"] == "25"
    assert [s.properties["subscription_key"] for s in hubspot.objects("2-1234", archived=True)] == ["4"]

    seen = len(hubspot.requests)
    assert run(dags.custom_dag)[0] == {"subscriptions": "success"} and hubspot.requests[seen:] == []


def test_an_association_hubspot_does_not_have_stops_the_run_naming_it(hubspot: FakeHubSpot, sqlite_db: Database,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      source: Database) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    states, _ = run(dags.crm_dag)  # the companies
    states, _ = run(dags.custom_associated_dag)
    assert states == {"subscriptions": "failed"} and len(hubspot.objects("2-1234")) == 4  # written, not confirmed
    seen = len(hubspot.requests)
    assert run(dags.custom_associated_dag)[0] == {"subscriptions": "failed"}
    assert endpoints(hubspot, seen) == {("batch/upsert", "2-1234"): 1, ("batch/read", "companies"): 1,
                                        (ASSOCIATE, "2-1234"): 1}  # sent again, no record made twice
    assert max(hubspot.create_counts("2-1234", "subscription_key").values()) == 1
    # the reason, as the task's log has it
    client = HubSpotObjectsClient(HttpTransport(HttpTarget(hubspot.url, {"Authorization": f"Bearer {hubspot.token}"})),
                                  "2-1234", "subscription_key", [Association("companies", "company_key",
                                                                             "account_key")])
    record = Record("1", (1,), {"subscription_key": "1", "plan": "pro", "company_key": "1"}, "h", write_id="w")
    with pytest.raises(DestinationFailed, match="HubSpot must have a default association from 2-1234 to companies"):
        client.send("upsert", [record])


# -- contacts associated with companies -------------------------------------------------------------------


def test_contacts_associated_with_their_company(hubspot: FakeHubSpot, state: Database, source: Database) -> None:
    states, reports = run(dags.crm_dag)
    assert states == {"companies": "success", "contacts": "success", "tickets": "success"}
    assert reports["contacts"]["counts"]["added"] == 12 and reports["contacts"]["counts"]["failed"] == 0
    # the fewest requests: per type one upsert (<= 100 records), per association one read and one associate
    assert endpoints(hubspot) == {("batch/upsert", "companies"): 1, ("batch/upsert", "contacts"): 1,
                                  ("batch/upsert", "tickets"): 1, ("batch/read", "companies"): 2,
                                  (ASSOCIATE, "contacts"): 1, (ASSOCIATE, "tickets"): 1}
    read = next(r for r in hubspot.calls("batch/read", "companies"))
    assert read.body["idProperty"] == "account_key" and len(read.body["inputs"]) == 5  # distinct values
    for i in range(1, 13):
        assert company_of(hubspot, "contacts", "email", f"person{i}@example.com") == [str(1 + i % 5)]
    assert "company_key" not in hubspot.object_by("contacts", "email", "person1@example.com").properties  # type: ignore[union-attr]

    seen = len(hubspot.requests)
    states, reports = run(dags.crm_dag)  # nothing changed: nothing sent
    assert hubspot.requests[seen:] == [] and reports["contacts"]["requests"] == {"total": 0}

    source.execute("UPDATE people SET account_id = 5 WHERE person_id = 1")  # person 1 moves from account 2 to 5
    seen = len(hubspot.requests)
    states, reports = run(dags.crm_dag)
    assert reports["contacts"]["counts"]["changed"] == 1
    assert endpoints(hubspot, seen) == {("batch/upsert", "contacts"): 1, ("batch/read", "companies"): 1,
                                        (ASSOCIATE, "contacts"): 1}
    # associated with the new company; the old association stays (HubSpot allows several, some made by people)
    assert company_of(hubspot, "contacts", "email", "person1@example.com") == ["2", "5"]
    no_duplicates(hubspot)


def test_dry_run_shows_the_company_a_contact_would_move_to(hubspot: FakeHubSpot, state: Database,
                                                           source: Database) -> None:
    run(dags.crm_dag)
    source.execute("UPDATE people SET account_id = 4 WHERE person_id = 1")
    seen = len(hubspot.requests)
    _, reports = run(dags.crm_dag, dry_run=True)
    assert reports["contacts"]["preview"] == [{"op": "upsert", "key": "1",
                                               "diff": {"company_key": {"old": "2", "new": 4}}}]
    assert reports["contacts"]["requests"] == {"upsert": 3}  # upsert, read, associate
    assert {r.endpoint for r in hubspot.requests[seen:]} <= {"batch/read", "associations/batch/read"}


def test_a_missing_company_is_the_records_error_until_it_exists(hubspot: FakeHubSpot, state: Database,
                                                                source: Database) -> None:
    source.execute("INSERT INTO people VALUES (13, 'person13@example.com', 'Person 13', 9)")  # no account 9 yet
    states, reports = run(dags.crm_dag)
    assert states["contacts"] == "success" and reports["contacts"]["counts"]["added"] == 12
    assert reports["contacts"]["failures"] == [{
        "key": "13", "kind": "added",
        "error": "no companies record with account_key '9' to associate with (the record was written; it is "
                 "associated by a later run once that companies record exists)"}]
    contact = hubspot.object_by("contacts", "email", "person13@example.com")
    assert contact is not None and hubspot.associated("contacts", contact.id, "companies") == []
    prefix = "hs_more_" if state.dialect == "postgres" else "opsflow_"
    row = state.scalar(f"SELECT last_error FROM {prefix}sync_keys WHERE key_text = '13'")
    assert "account_key '9'" in row

    seen = len(hubspot.requests)
    states, reports = run(dags.crm_dag)  # still missing: sent again, failing again, nothing else sent
    assert reports["contacts"]["counts"]["failed"] == 1
    assert endpoints(hubspot, seen) == {("batch/upsert", "contacts"): 1, ("batch/read", "companies"): 1}

    source.execute("INSERT INTO accounts VALUES (9, 'Account 9', 'account9.example.com')")
    seen = len(hubspot.requests)
    states, reports = run(dags.crm_dag)
    assert reports["companies"]["counts"]["added"] == 1 and reports["contacts"]["counts"]["failed"] == 0
    assert sum(reports["contacts"]["counts"][k] for k in ("added", "changed")) == 1
    assert endpoints(hubspot, seen) == {("batch/upsert", "companies"): 1, ("batch/upsert", "contacts"): 1,
                                        ("batch/read", "companies"): 1, (ASSOCIATE, "contacts"): 1}
    assert company_of(hubspot, "contacts", "email", "person13@example.com") == ["9"]
    assert hubspot.object_by("contacts", "email", "person13@example.com").id == contact.id  # type: ignore[union-attr]

    seen = len(hubspot.requests)
    run(dags.crm_dag)
    assert hubspot.requests[seen:] == []
    no_duplicates(hubspot)


def test_429_storm_on_the_associations_endpoint(hubspot: FakeHubSpot, state: Database, source: Database) -> None:
    source.execute("INSERT INTO people VALUES (13, 'person13@example.com', 'Person 13', 9)")  # no account 9
    hubspot.fail_next(6, status=429, retry_after=0, endpoint=ASSOCIATE)
    states, reports = run(dags.crm_dag)
    assert states == {"companies": "success", "contacts": "success", "tickets": "success"}
    limited = reports["contacts"]["rate_limited"] + reports["tickets"]["rate_limited"]
    assert limited == 6 and reports["contacts"]["counts"]["added"] == 12
    assert [(f["key"], f["error"].count("account_key '9'")) for f in reports["contacts"]["failures"]] == [("13", 1)]
    # each repeat of a batch sent only what was not answered yet: the associate request, not the upsert or read
    assert endpoints(hubspot) == {("batch/upsert", "companies"): 1, ("batch/upsert", "contacts"): 1,
                                  ("batch/upsert", "tickets"): 1, ("batch/read", "companies"): 2,
                                  (ASSOCIATE, "contacts"): 1 + reports["contacts"]["rate_limited"],
                                  (ASSOCIATE, "tickets"): 1 + reports["tickets"]["rate_limited"]}
    assert [r.status for r in hubspot.calls(ASSOCIATE)].count(429) == 6
    for i in range(1, 13):
        assert company_of(hubspot, "contacts", "email", f"person{i}@example.com") == [str(1 + i % 5)]
    no_duplicates(hubspot)


def test_declaration_checks_associations() -> None:
    with pytest.raises(ValueError, match="'key': mapped field"):
        HubSpotObjects("contacts", "email", associations=[{"to": "companies", "key": "company_key"}])
    with pytest.raises(ValueError, match="a key of their own"):
        HubSpotObjects("contacts", "email", associations=[{"to": "companies", "key": "k", "id_property": "a"},
                                                          {"to": "deals", "key": "k", "id_property": "b"}])
    dest = HubSpotObjects("contacts", "email", associations=[{"to": "companies", "key": "k", "id_property": "a"}])
    assert dest.describe() == "HubSpot contacts by email, associated with companies by a"
    client = HubSpotObjectsClient(HttpTransport(HttpTarget("http://127.0.0.1:9")), "contacts", "email",
                                  [Association("companies", "company_key", "account_key")])
    assert client.preflight(["email"], "upsert") == [
        "association key 'company_key' (for companies) must be mapped: it holds the companies record's account_key"]
    # adding an association re-sends every record (to associate it); none keeps the fingerprint of old syncs
    plain = HubSpotObjectsClient(HttpTransport(HttpTarget("http://127.0.0.1:9")), "contacts", "email")
    assert plain.fingerprint() == ["hubspot", "contacts", "email"] != client.fingerprint()


# -- wrong credentials --------------------------------------------------------------------------------------


WRONG_TOKEN = "pat-na1-wrong-7c2e9d4a1b"  # must never reach a log


def test_wrong_credentials_fail_the_task_naming_it_and_write_nothing(hubspot: FakeHubSpot, state: Database,
                                                                     source: Database,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    right = dict(hubspot.hubspot_connection())
    [(name, conn)] = right.items()
    monkeypatch.setenv(name, json.dumps({**json.loads(conn), "password": WRONG_TOKEN}))
    capsys.readouterr()
    states, _ = run(dags.crm_dag)
    out = capsys.readouterr()
    assert states == {"companies": "failed", "contacts": "upstream_failed", "tickets": "upstream_failed"}
    [error] = [line.split("AirflowException: ", 1)[1] for line in out.out.splitlines() if "AirflowException: " in line]
    assert error.startswith("dag 'test_hubspot_crm', task 'companies': ")
    assert "HubSpot companies (hubspot_default)" in error and "HTTP 401: the credentials were refused" in error
    for secret in (WRONG_TOKEN, hubspot.token):
        assert secret not in out.out and secret not in out.err
    assert {r.status for r in hubspot.requests} == {401} and hubspot.writes() == []  # refused, nothing written
    keys = "hs_more_sync_keys" if state.dialect == "postgres" else "opsflow_sync_keys"
    assert state.scalar(f"SELECT COUNT(*) FROM {keys} WHERE status = 'ok' OR row_hash IS NOT NULL") == 0

    monkeypatch.setenv(name, conn)
    seen = len(hubspot.requests)
    states, reports = run(dags.crm_dag)
    assert states == {"companies": "success", "contacts": "success", "tickets": "success"}
    assert [reports[t]["counts"]["added"] for t in ("companies", "contacts", "tickets")] == [5, 12, 6]
    assert endpoints(hubspot, seen) == {("batch/upsert", "companies"): 1, ("batch/upsert", "contacts"): 1,
                                        ("batch/upsert", "tickets"): 1, ("batch/read", "companies"): 2,
                                        (ASSOCIATE, "contacts"): 1, (ASSOCIATE, "tickets"): 1}  # each record once
    assert company_of(hubspot, "tickets", "warehouse_case_id", "4") == ["5"]
    no_duplicates(hubspot)
    assert state.scalar(f"SELECT COUNT(*) FROM {keys} WHERE status = 'ok' AND row_hash IS NOT NULL") == 23
