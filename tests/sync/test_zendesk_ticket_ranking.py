"""ReverseSyncOperator ranking the open tickets of the fake Zendesk's organizations, through real DAG runs.

The source is a SQLite file of accounts whose total spend the DAG's query turns into a priority (and a ``vip``
tag); the sync's state is on SQLite or on PostgreSQL. Checked: the requests per run (full, one account
changed, nothing changed: none), that solved/closed tickets and other organizations are left alone, that an
account Zendesk has no organization for is ``missing``, a ticket closed between the listing and the update,
a 429 on ``update_many`` waited out (the retried batch reuses its look-ups and listings), a lost answer to
``update_many``, and the client's per-record errors.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from tests.conftest import Database
from tests.helpers import DAGS, load_module, state_on

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "zendesk_sync.py")
CONF = {"conn_id": "zd_rank_source", "dry_run": False, "full_resync": False}
SPEND = {1: 2500, 2: 1500, 3: 500, 4: 1200, 5: 300, 6: 3000}  # urgent+vip, high+vip, normal, high+vip, normal, -
WANTED = {"1": ("urgent", ["vip"]), "2": ("high", ["vip"]), "3": ("normal", []), "4": ("high", ["vip"]),
          "5": ("normal", [])}
OPEN = ("new", "open", "pending", "hold")


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """Accounts 1..6 in a SQLite file of their own (account 6 has no organization in Zendesk)."""
    path = tmp_path / "source.db"
    monkeypatch.setenv("AIRFLOW_CONN_ZD_RANK_SOURCE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    conn = sqlite3.connect(path)
    db = Database("source", "sqlite", conn, "zd_rank_source")
    db.execute("CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100), total_spend NUMERIC(12, 2))")
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)", [(i, f"Account {i}", s) for i, s in SPEND.items()])
    conn.commit()
    yield db
    conn.close()


@pytest.fixture
def state(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The state store on SQLite or PostgreSQL (tables of their own there, dropped first)."""
    return state_on(db, monkeypatch, "zd_rank_")


@pytest.fixture
def sqlite_state(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    return sqlite_db


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk, zendesk_conn: str, monkeypatch: pytest.MonkeyPatch) -> FakeZendesk:
    """Organizations 1..5 (by external id) and Other, each with tickets in every status; the request budget
    raised (the default paces at 200 a minute, Zendesk's smallest plan)."""
    name = "AIRFLOW_CONN_ZENDESK_DEFAULT"
    conn = json.loads(os.environ[name])
    conn["extra"] = {**conn.get("extra", {}), "requests_per_minute": 60_000}
    monkeypatch.setenv(name, json.dumps(conn))
    for key in ["1", "2", "3", "4", "5", "99"]:
        org = fake_zendesk.add_organization(f"Account {key}", external_id=key)
        for status in (*OPEN, "solved", "closed"):
            fake_zendesk.add_ticket(f"{key} {status}", status=status, organization_id=org.id, tags=["billing"])
    # Already ranked: nothing is sent for them.
    fake_zendesk.add_ticket("2 ranked", organization_id=org_id(fake_zendesk, "2"), priority="high",
                            tags=["vip", "billing"])
    fake_zendesk.add_ticket("3 ranked", organization_id=org_id(fake_zendesk, "3"), priority="normal")
    return fake_zendesk


def org_id(zd: FakeZendesk, key: str) -> int:
    org = zd.organization(external_id=key)
    assert org is not None
    return org.id


def tickets_of(zd: FakeZendesk, key: str) -> list[Any]:
    return [t for t in zd.tickets if t.organization_id == org_id(zd, key)]


def assert_ranked(zd: FakeZendesk, wanted: dict[str, tuple[str, list[str]]]) -> None:
    """Every open ticket of the ranked organizations has its priority and tags (billing kept); solved and
    closed tickets, and those of Other, were never touched."""
    for key in ["1", "2", "3", "4", "5", "99"]:
        for t in tickets_of(zd, key):
            if key in wanted and t.status in OPEN:
                priority, tags = wanted[key]
                assert t.priority == priority, (key, t)
                assert set(tags) <= set(t.tags) and ("billing" in t.tags or t.subject.endswith("ranked")), (key, t)
            elif not t.subject.endswith("ranked"):
                assert (t.priority, t.tags) == (None, ["billing"]), (key, t)


def sync(**conf: Any) -> tuple[str, dict[str, Any]]:
    run = run_dag(dags.ranking_dag, conf={**CONF, **conf})
    return run.task_states["ranking"], run.xcom("ranking", key="sync")


def by_name(zd: FakeZendesk, since: int = 0) -> Counter[str]:
    return Counter(r.name for r in zd.calls(since=since))


@pytest.mark.usefixtures("source")
def test_full_one_changed_and_unchanged(zendesk: FakeZendesk, state: Database, source: Database) -> None:
    status, first = sync()
    assert status == "success" and first["counts"]["added"] == 5 and first["counts"]["failed"] == 0
    assert first["counts"]["skipped"] == 1  # account 6: Zendesk has no such organization (missing)
    # One look-up for the 6 external ids, one export page per organization, one job per distinct change
    # (urgent+vip, high+vip, normal), each polled twice (queued -> working -> completed).
    assert by_name(zendesk) == {"show_many_organizations": 1, "search_export": 5, "update_many_tickets": 3,
                                "job_status": 6}
    assert_ranked(zendesk, WANTED)
    jobs = {r.body["ticket"]["priority"]: r for r in zendesk.calls("update_many_tickets")}
    assert jobs["high"].body == {"ticket": {"priority": "high", "additional_tags": ["vip"]}}
    assert jobs["normal"].body == {"ticket": {"priority": "normal"}}  # no tags mapped for it: none sent
    high = [int(i) for i in jobs["high"].query["ids"][0].split(",")]
    assert len(high) == 8  # the 4 open tickets of accounts 2 and 4, not 2's already ranked one
    assert all(zendesk.ticket(t).organization_id in (org_id(zendesk, "2"), org_id(zendesk, "4")) for t in high)
    assert "organization:" in zendesk.calls("search_export")[0].query["query"][0]
    assert state.scalar("SELECT dest_ref FROM " + keys_table(state) + " WHERE key_text = '3'") == str(
        org_id(zendesk, "3"))  # the organization's id is the key's ref: later runs skip the look-up

    mark = zendesk.mark()
    status, unchanged = sync()
    assert status == "success" and unchanged["counts"]["unchanged"] == 6  # account 6 too: missing, kept
    assert zendesk.calls(since=mark) == [] and unchanged["requests"] == {"total": 0}

    source.execute("UPDATE accounts SET total_spend = 1100 WHERE account_id = 3")  # normal -> high + vip
    mark = zendesk.mark()
    status, dry = sync(dry_run=True)
    assert status == "success" and dry["counts"]["changed"] == 1 and dry["requests"] == {"upsert": 4}
    assert zendesk.calls(since=mark) == []  # estimated, nothing read or written
    status, one = sync()
    assert status == "success" and (one["counts"]["changed"], one["counts"]["unchanged"]) == (1, 5)
    calls = zendesk.calls(since=mark)
    assert [r.name for r in calls] == ["search_export", "update_many_tickets", "job_status", "job_status"]
    assert calls[0].query["query"] == [f"organization:{org_id(zendesk, '3')} status<solved"]
    assert sorted(int(i) for i in calls[1].query["ids"][0].split(",")) == sorted(
        t.id for t in tickets_of(zendesk, "3") if t.status in OPEN)  # the ranked one too: it lacks the tag
    assert_ranked(zendesk, {**WANTED, "3": ("high", ["vip"])})

    mark = zendesk.mark()
    assert sync()[1]["counts"]["unchanged"] == 6 and zendesk.calls(since=mark) == []


def keys_table(db: Database) -> str:
    return "zd_rank_sync_keys" if db.dialect == "postgres" else "opsflow_sync_keys"


def test_a_ticket_closed_between_listing_and_update_is_no_error(zendesk: FakeZendesk, sqlite_state: Database,
                                                                 source: Database) -> None:
    zendesk.search_delay(300)  # the search index has not seen the close yet: the ticket is listed as open
    closing = next(t for t in tickets_of(zendesk, "1") if t.status == "open")
    zendesk.client().tickets.update(_ticket(closing.id, status="closed"))
    status, run = sync()
    assert status == "success" and run["counts"]["added"] == 5 and run["counts"]["failed"] == 0
    [urgent] = [r for r in zendesk.calls("update_many_tickets") if r.body["ticket"]["priority"] == "urgent"]
    assert str(closing.id) in urgent.query["ids"][0].split(",")  # sent, and refused by Zendesk
    results = [r for j in zendesk.jobs.jobs.values() for r in j.results if r["id"] == closing.id]
    assert results[0]["details"] == "Status: closed prevents ticket update"
    assert (zendesk.ticket(closing.id).status, zendesk.ticket(closing.id).priority) == ("closed", None)
    mark = zendesk.mark()
    assert sync()[1]["counts"]["unchanged"] == 6 and zendesk.calls(since=mark) == []


def _ticket(ticket_id: int, **fields: Any) -> Any:
    from zenpy.lib.api_objects import Ticket

    return Ticket(id=ticket_id, **fields)


def test_a_429_on_update_many_is_waited_out(zendesk: FakeZendesk, sqlite_state: Database, source: Database) -> None:
    zendesk.fail_next("update_many_tickets", status=429, retry_after=1)
    status, run = sync()
    assert status == "success" and run["counts"]["added"] == 5 and run["counts"]["failed"] == 0
    assert run["rate_limited"] == 1 and run["retries"] == 0  # a wait, not a failed attempt
    # The batch was sent again: its look-up and export pages were reused, only the refused job re-sent.
    assert by_name(zendesk) == {"show_many_organizations": 1, "search_export": 5, "update_many_tickets": 4,
                                "job_status": 6}
    assert [r.status for r in zendesk.calls("update_many_tickets")] == [429, 200, 200, 200]
    assert_ranked(zendesk, WANTED)


def test_a_lost_answer_to_update_many_breaks_nothing(zendesk: FakeZendesk, state: Database,
                                                     source: Database) -> None:
    zendesk.job_pace(polls=None, seconds=0.05)  # jobs run on their own, the one whose answer was lost too
    zendesk.drop_response_next("update_many_tickets")
    status, run = sync()
    assert status == "success" and run["counts"]["added"] == 5 and run["counts"]["failed"] == 0
    # libcurl sends a request again by itself when a kept-alive connection closes unanswered: the same job twice.
    sent = zendesk.calls("update_many_tickets")
    assert len(sent) == 4 and sent[0].status is None and sent[1].body == sent[0].body
    assert by_name(zendesk)["search_export"] == 5
    assert_ranked(zendesk, WANTED)  # the same values, set twice
    mark = zendesk.mark()
    assert sync()[1]["counts"]["unchanged"] == 6 and zendesk.calls(since=mark) == []


def test_an_answer_too_late_sends_the_batch_again(zendesk: FakeZendesk, sqlite_state: Database,
                                                 source: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "AIRFLOW_CONN_ZENDESK_DEFAULT"
    conn = json.loads(os.environ[name])
    conn["extra"] = {**conn["extra"], "timeout": 1}  # the client gives up on an answer after 2 s...
    monkeypatch.setenv(name, json.dumps(conn))
    zendesk.job_pace(polls=None, seconds=0.05)
    zendesk.delay_next("update_many_tickets", seconds=3)  # ... the first job is queued, its answer comes late
    status, run = sync()
    assert status == "success" and run["counts"]["added"] == 5 and run["counts"]["failed"] == 0
    assert run["retries"] == 1  # the engine sent the batch again: the look-up and listings were reused
    assert by_name(zendesk) == {"show_many_organizations": 1, "search_export": 5, "update_many_tickets": 4,
                                "job_status": 3}
    sent = sorted(zendesk.calls("update_many_tickets"), key=lambda r: r.at)  # logged as answered: by arrival
    assert sent[1].body == sent[0].body and sent[1].query == sent[0].query
    assert_ranked(zendesk, WANTED)
    mark = zendesk.mark()
    assert sync()[1]["counts"]["unchanged"] == 6 and zendesk.calls(since=mark) == []


def test_mirror_is_refused_and_the_declaration_checks_its_settings() -> None:
    from airflow_opsflow.destinations.zendesk import ZendeskObjects
    from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
    from airflow_opsflow.sync.destinations.zendesk_tickets import ZendeskTicketsClient

    assert ZendeskObjects("organization_tickets", open_statuses=("open", "pending")).open_statuses == (
        "open", "pending")
    assert ZendeskObjects("organization_tickets").describe() == (
        "Zendesk tickets (new, open, pending, hold) of organizations (zendesk_default) by organization external_id")
    with pytest.raises(ValueError, match="open_statuses must be some of"):
        ZendeskObjects("organization_tickets", open_statuses=("open", "solved"))
    with pytest.raises(ValueError, match="applies to object_type='organization_tickets' only"):
        ZendeskObjects("organizations", open_statuses=("open",))
    client = ZendeskTicketsClient(HttpTransport(HttpTarget("https://acme.zendesk.com/api/v2")))
    assert client.preflight(["external_id", "priority"], "upsert") == []
    assert client.preflight(["external_id", "tier"], "mirror") == [
        "map priority and/or tags: they are what is set on the organization's open tickets",
        "only external_id, priority and tags can be mapped, not ['tier'] (organization fields belong to the "
        "organizations sync)",
        "mode='mirror' is refused: a row leaving the source has nothing to undo (its tickets keep their "
        "priority); use mode='upsert'"]
    assert client.preflight(["tags"], "insert") == [
        "external_id must be mapped (the organization's, which finds it)"]
    assert "delete" not in client.operations


def test_per_record_errors(fake_zendesk: FakeZendesk) -> None:
    """The client on its own: a priority Zendesk does not have, an empty external id, a ticket Zendesk refuses
    for another reason than being closed (the record's error, sent again by the next run)."""
    import base64

    from airflow_opsflow.sync.destinations.base import Outcome, Record
    from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
    from airflow_opsflow.sync.destinations.zendesk_tickets import ZendeskTicketsClient

    org = fake_zendesk.add_organization("Acme", external_id="acme")
    ticket = fake_zendesk.add_ticket("help", organization_id=org.id)
    auth = "Basic " + base64.b64encode(f"{fake_zendesk.email}/token:{fake_zendesk.token}".encode()).decode()
    client = ZendeskTicketsClient(HttpTransport(HttpTarget(f"{fake_zendesk.url}/api/v2", {"Authorization": auth})),
                                  first_poll=0.01)

    def record(key: str, **fields: Any) -> Record:
        return Record(key, (key,), {"external_id": key, **fields}, "h")

    refused = {"job_status": {"id": "f" * 32, "status": "completed", "total": 1, "progress": 1, "results": [
        {"id": ticket.id, "index": 0, "action": "update", "status": "Failed", "success": False,
         "error": "RecordInvalid", "details": "Priority: is locked by a ticket form"}]}}
    fake_zendesk.fail_next("job_status", status=200, body=refused)
    out = client.send("upsert", [record("acme", priority="URGENT "), record("bad", priority="hgih"),
                                 Record("none", ("none",), {"external_id": None, "tags": "x"}, "h"),
                                 record("nothing", priority=None, tags=None)])
    assert out == [
        Outcome("error", f"ticket {ticket.id}: RecordInvalid: Priority: is locked by a ticket form", ref=str(org.id)),
        Outcome("error", "priority must be one of low, normal, high, urgent (Zendesk's), got 'hgih'"),
        Outcome("error", "external_id is empty: the organization is found by it"),
        Outcome()]  # nothing to set: nothing sent
    assert [r.name for r in fake_zendesk.requests] == ["show_many_organizations", "search_export",
                                                       "update_many_tickets", "job_status"]
    again = client.send("update", [Record("acme", ("acme",), {"external_id": "acme", "priority": "urgent",
                                                              "tags": "vip gold"}, "h", ref=str(org.id))])
    assert again == [Outcome(ref=str(org.id))]
    assert (fake_zendesk.ticket(ticket.id).priority, fake_zendesk.ticket(ticket.id).tags) == ("urgent",
                                                                                              ["vip", "gold"])
    assert fake_zendesk.calls("show_many_organizations")[1:] == []  # the ref named the organization
    client.close()
