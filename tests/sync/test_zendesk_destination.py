"""ReverseSyncOperator into the fake Zendesk's organizations and users, through real DAG runs.

The source is a SQLite file (120 accounts); the sync's state is on SQLite or on PostgreSQL. Every write is a
Zendesk bulk job: checked are the requests per run (full, one record changed, nothing changed: none), per-item
``RecordInvalid`` results kept with their key and sent again by the next run, a 429 storm waited out, a lost
answer to a job's create (no organization or user made twice), a failed job, dry runs, and mirror deletes
under the mass-delete guard.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from tests.conftest import Database
from tests.helpers import DAGS, load_module, state_on
from tests.sync.conftest import account

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "zendesk_sync.py")
CONF = {"conn_id": "zd_source", "dry_run": False, "full_resync": False}
TIERS = ["silver", "gold", "platinum"]
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def _define_fields(fake: FakeZendesk) -> None:
    fake.define_field("organization", "tier", "dropdown", options=TIERS)
    fake.define_field("organization", "total_spend", "decimal")
    fake.define_field("organization", "customer_since", "date")
    fake.define_field("user", "plan", "dropdown", options=TIERS)


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk, zendesk_conn: str) -> FakeZendesk:
    _define_fields(fake_zendesk)
    return fake_zendesk


@pytest.fixture
def deleting_zendesk(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeZendesk]:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    with FakeZendesk() as fake:
        for name, value in fake.zendesk_connection("zendesk_default").items():
            monkeypatch.setenv(name, value)
        _define_fields(fake)
        yield fake


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """Accounts 1..120 in a SQLite file of their own (the state store is elsewhere)."""
    path = tmp_path / "source.db"
    monkeypatch.setenv("AIRFLOW_CONN_ZD_SOURCE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    conn = sqlite3.connect(path)
    db = Database("source", "sqlite", conn, "zd_source")
    db.execute("CREATE TABLE accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100), email VARCHAR(100), "
               "total_spend NUMERIC(12, 2), tier VARCHAR(20), customer_since DATE)")
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                     [tuple(str(v) if isinstance(v, Decimal) else v for v in account(i)) for i in range(1, 121)])
    conn.commit()
    yield db
    conn.close()


@pytest.fixture
def state(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The state store on SQLite or PostgreSQL (tables of their own there, dropped first)."""
    return state_on(db, monkeypatch, "zd_sync_")


@pytest.fixture
def sqlite_state(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    return sqlite_db


def fast_requests(monkeypatch: pytest.MonkeyPatch, per_minute: int = 60_000) -> None:
    """The connection's request budget raised (the default paces at 200 a minute, Zendesk's smallest plan)."""
    name = "AIRFLOW_CONN_ZENDESK_DEFAULT"
    conn = json.loads(os.environ[name])
    conn["extra"] = {**conn.get("extra", {}), "requests_per_minute": per_minute}
    monkeypatch.setenv(name, json.dumps(conn))


def organizations(zd: FakeZendesk) -> dict[str, Any]:
    orgs = zd.organizations
    assert len(orgs) == len({(o.external_id or "").lower() for o in orgs}), "an organization was made twice"
    return {o.external_id: o for o in orgs if o.external_id}


def users(zd: FakeZendesk) -> dict[str, Any]:
    people = [u for u in zd.users if u.id != zd.agent.id]
    assert len(people) == len({(u.external_id or "").lower() for u in people}), "a user was made twice"
    return {u.external_id: u for u in people if u.external_id}


def sync(dag: Any, task: str, **conf: Any) -> tuple[str, dict[str, Any]]:
    run = run_dag(dag, conf={**CONF, **conf})
    return run.task_states[task], run.xcom(task, key="sync")


# -- full, one changed, nothing changed -------------------------------------------------------------------


@pytest.mark.usefixtures("source")
def test_organizations_full_one_changed_and_unchanged(zendesk: FakeZendesk, state: Database,
                                                      source: Database) -> None:
    status, first = sync(dags.organizations_dag, "organizations")
    assert status == "success" and first["counts"]["added"] == 120 and first["counts"]["failed"] == 0
    # 100 + 20: a create_many each, polled twice (queued -> working -> completed): the fewest requests
    assert Counter(r.name for r in zendesk.requests) == {"create_many_organizations": 2, "job_status": 4}
    orgs = organizations(zendesk)
    assert len(orgs) == 120
    assert (orgs["60"].name, orgs["60"].fields) == ("Account 60", {"tier": "gold", "total_spend": 1100.0,
                                                                  "customer_since": "2023-01-05"})

    source.execute("UPDATE accounts SET name = 'Account 60 (renamed)' WHERE account_id = 60")
    mark = zendesk.mark()
    status, dry = sync(dags.organizations_dag, "organizations", dry_run=True)
    assert status == "success" and dry["counts"]["changed"] == 1 and dry["requests"] == {"upsert": 2}
    assert dry["preview"] == [{"op": "upsert", "key": "60",
                               "diff": {"name": {"old": "Account 60", "new": "Account 60 (renamed)"}}}]
    assert zendesk.writes(since=mark) == []  # the dry run read (show_many), wrote nothing

    mark = zendesk.mark()
    status, second = sync(dags.organizations_dag, "organizations")
    assert status == "success" and (second["counts"]["changed"], second["counts"]["unchanged"]) == (1, 119)
    calls = zendesk.calls(since=mark)
    assert [r.name for r in calls] == ["update_many_organizations", "job_status", "job_status"]
    assert calls[0].body == {"organizations": [{"external_id": "60", "name": "Account 60 (renamed)",
                                                "id": orgs["60"].id, "organization_fields": {
                                                    "tier": "gold", "total_spend": "1100",
                                                    "customer_since": "2023-01-05"}}]}
    assert organizations(zendesk)["60"].name == "Account 60 (renamed)"

    mark = zendesk.mark()
    status, third = sync(dags.organizations_dag, "organizations")
    assert status == "success" and third["counts"]["unchanged"] == 120
    assert zendesk.calls(since=mark) == [] and third["requests"] == {"total": 0}


def test_users_full_one_changed_and_unchanged(zendesk: FakeZendesk, state: Database, source: Database) -> None:
    status, first = sync(dags.users_dag, "users")
    assert status == "success" and first["counts"]["added"] == 120
    assert Counter(r.name for r in zendesk.requests) == {"create_or_update_many_users": 2, "job_status": 4}
    people = users(zendesk)
    assert len(people) == 120
    assert (people["9"].name, people["9"].email, people["9"].fields) == ("Account 9", "ops9@example9.com",
                                                                         {"plan": "gold"})

    source.execute("UPDATE accounts SET tier = 'platinum' WHERE account_id = 9")
    mark = zendesk.mark()
    status, second = sync(dags.users_dag, "users")
    assert status == "success" and second["counts"]["changed"] == 1
    assert [r.name for r in zendesk.calls(since=mark)] == ["create_or_update_many_users", "job_status", "job_status"]
    assert users(zendesk)["9"].fields == {"plan": "platinum"}

    mark = zendesk.mark()
    sync(dags.users_dag, "users")
    assert zendesk.calls(since=mark) == []


# -- per-item errors ---------------------------------------------------------------------------------------


def test_record_invalid_is_kept_with_its_key_and_sent_again(zendesk: FakeZendesk, sqlite_state: Database,
                                                            source: Database) -> None:
    assert sync(dags.organizations_dag, "organizations")[0] == "success"
    source.execute("UPDATE accounts SET tier = 'bronze' WHERE account_id = 61",  # not an option of the field
                   "UPDATE accounts SET tier = 'platinum' WHERE account_id = 62",
                   "UPDATE accounts SET name = 'Account 63 (renamed)' WHERE account_id = 63")
    status, run = sync(dags.organizations_dag, "organizations")
    assert status == "success" and (run["counts"]["changed"], run["counts"]["failed"]) == (2, 1)
    assert run["failures"] == [{"key": "61", "kind": "changed",
                                "error": "RecordInvalid: tier: bronze is not a valid option"}]
    orgs = organizations(zendesk)
    assert (orgs["61"].fields["tier"], orgs["62"].fields["tier"], orgs["63"].name) == (
        "silver", "platinum", "Account 63 (renamed)")
    assert sqlite_state.scalar("SELECT last_error FROM opsflow_sync_keys WHERE key_text = '61'").startswith(
        "RecordInvalid")

    mark = zendesk.mark()
    status, again = sync(dags.organizations_dag, "organizations")  # unchanged, but rejected: sent again
    assert status == "failed" and again["counts"]["failed"] == 1 and again["counts"]["changed"] == 0  # 1 of 1
    assert [r.body["organizations"][0]["external_id"] for r in zendesk.calls("update_many_organizations",
                                                                             since=mark)] == ["61"]

    source.execute("UPDATE accounts SET tier = 'gold' WHERE account_id = 61")
    status, fixed = sync(dags.organizations_dag, "organizations")
    assert status == "success" and (fixed["counts"]["changed"], fixed["counts"]["failed"]) == (1, 0)
    assert organizations(zendesk)["61"].fields["tier"] == "gold"
    assert sqlite_state.scalar("SELECT COUNT(*) FROM opsflow_sync_keys WHERE status <> 'ok'") == 0
    mark = zendesk.mark()
    sync(dags.organizations_dag, "organizations")
    assert zendesk.calls(since=mark) == []


# -- rate limits, lost answers, failed jobs ---------------------------------------------------------------


def test_a_429_storm_is_waited_out(zendesk: FakeZendesk, sqlite_state: Database, source: Database,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fast_requests(monkeypatch)  # we would send far faster than the account allows...
    zendesk.set_rate_limit(3, 1.0)  # ... 3 requests a second, then 429 + Retry-After
    zendesk.fail_next("create_or_update_many_users", status=429, retry_after=1, times=2)
    status, run = sync(dags.users_dag, "users")
    assert status == "success" and run["counts"]["added"] == 120 and run["counts"]["failed"] == 0
    assert run["rate_limited"] >= 2 and run["retries"] == 0  # waits, not failed attempts
    statuses = Counter(r.status for r in zendesk.requests)
    assert statuses[429] >= 3, statuses
    assert len(users(zendesk)) == 120
    applied = [r for r in zendesk.calls("create_or_update_many_users") if r.status == 200]
    assert sorted(len(r.body["users"]) for r in applied) == [20, 100]  # each batch's job queued once

    mark = zendesk.mark()
    sync(dags.users_dag, "users")
    assert zendesk.calls(since=mark) == []


def test_lost_answer_to_a_create_makes_no_duplicate_organization(zendesk: FakeZendesk, state: Database,
                                                                 source: Database) -> None:
    zendesk.job_pace(polls=None, seconds=0.05)  # jobs run on their own, the one whose answer was lost too
    zendesk.drop_response_next("create_many_organizations")
    status, run = sync(dags.organizations_dag, "organizations")
    assert status == "success" and run["counts"]["added"] == 120 and run["counts"]["failed"] == 0
    creates = zendesk.calls("create_many_organizations")
    assert len(creates) == 3 and creates[0].status is None  # applied, unanswered; sent again
    # The re-sent create is refused (the lost one made them: external ids and names are unique), so the
    # organizations are looked up by external id and updated.
    assert [r.name for r in zendesk.requests if r.name != "job_status"][-3:] == [
        "create_many_organizations", "show_many_organizations", "update_many_organizations"]
    orgs = organizations(zendesk)  # (asserts each external id once)
    assert len(orgs) == 120 and orgs["7"].name == "Account 7"
    mark = zendesk.mark()
    assert sync(dags.organizations_dag, "organizations")[1]["counts"]["unchanged"] == 120
    assert zendesk.calls(since=mark) == []


def test_lost_answer_to_a_create_makes_no_duplicate_user(zendesk: FakeZendesk, sqlite_state: Database,
                                                         source: Database) -> None:
    zendesk.job_pace(polls=None, seconds=0.05)
    zendesk.drop_response_next("create_or_update_many_users")
    status, run = sync(dags.users_dag, "users")
    assert status == "success" and run["counts"]["added"] == 120
    assert len(zendesk.calls("create_or_update_many_users")) == 3
    assert len(users(zendesk)) == 120


def test_a_failed_job_leaves_its_records_to_the_next_run(zendesk: FakeZendesk, sqlite_state: Database,
                                                         source: Database) -> None:
    zendesk.job_pace(polls=None, seconds=0.05)  # the jobs do run: Zendesk only says they failed
    failed = {"job_status": {"id": "0" * 32, "status": "failed", "message": "Internal error", "results": None,
                             "total": 100, "progress": 0}}
    zendesk.fail_next("job_status", status=200, body=failed, times=2)  # each batch's first poll
    status, run = sync(dags.organizations_dag, "organizations")
    assert status == "failed" and run["counts"]["failed"] == 120 and run["counts"]["added"] == 0
    assert run["failures"][0]["error"].startswith(f"Zendesk job {'0' * 32} failed: Internal error")
    assert sqlite_state.scalar("SELECT COUNT(*) FROM opsflow_sync_keys WHERE status = 'failed'") == 120

    mark = zendesk.mark()
    status, again = sync(dags.organizations_dag, "organizations")
    assert status == "success" and again["counts"]["added"] == 120 and again["counts"]["failed"] == 0
    # The failed jobs had created them: the creates are refused (taken), looked up and updated instead.
    assert Counter(r.name for r in zendesk.writes(since=mark)) == {"create_many_organizations": 2,
                                                                  "update_many_organizations": 2}
    assert len(organizations(zendesk)) == 120


# -- mirror deletes -----------------------------------------------------------------------------------------


def test_mirror_deletes_and_the_mass_delete_guard(deleting_zendesk: FakeZendesk, sqlite_state: Database,
                                                  source: Database) -> None:
    zd = deleting_zendesk
    assert sync(dags.organizations_dag, "organizations")[1]["counts"]["added"] == 120
    gone = sorted(str(o.id) for key, o in organizations(zd).items() if key in ("5", "6", "7"))
    source.execute("DELETE FROM accounts WHERE account_id IN (5, 6, 7)")
    mark = zd.mark()
    status, run = sync(dags.organizations_dag, "organizations")
    assert status == "success" and run["counts"]["deleted"] == 3
    [destroy] = zd.calls("destroy_many_organizations", since=mark)
    assert sorted(destroy.query["ids"][0].split(",")) == gone  # by the ids the creates answered
    assert sorted(organizations(zd)) == sorted(str(i) for i in range(1, 121) if i not in (5, 6, 7))

    source.execute("DELETE FROM accounts WHERE account_id > 80")  # 40 of 117: over max_delete_share=0.2
    mark = zd.mark()
    status, refused = sync(dags.organizations_dag, "organizations")
    assert status == "failed" and "mirror would delete 40 of 117" in (refused["refused"] or "")
    assert zd.calls("destroy_many_organizations", since=mark) == [] and len(organizations(zd)) == 117


def test_sharded_organizations_over_mapped_tasks(deleting_zendesk: FakeZendesk, state: Database,
                                                 source: Database) -> None:
    """Three mapped tasks, each its shard of the keys with its own state: together every organization once,
    later only what changed, a deleted key deleted once, by the one shard that holds it."""
    zd = deleting_zendesk
    run = run_dag(dags.sharded_dag, conf={"conn_id": CONF["conn_id"]})
    assert run.task_states == {"organizations_shard": "success"}
    created = [o["external_id"] for c in zd.calls("create_many_organizations") for o in c.body["organizations"]]
    assert sorted(created, key=int) == [str(i) for i in range(1, 121)]  # shards never overlap
    assert len(organizations(zd)) == 120  # and none made twice

    source.execute("DELETE FROM accounts WHERE account_id IN (5, 6, 7)")
    source.execute("UPDATE accounts SET name = 'Account 60 (renamed)' WHERE account_id = 60")
    mark = zd.mark()
    run = run_dag(dags.sharded_dag, conf={"conn_id": CONF["conn_id"]})
    assert run.task_states == {"organizations_shard": "success"}
    writes = zd.writes(since=mark)
    updated = [o["external_id"] for c in writes if c.name == "update_many_organizations"
               for o in c.body["organizations"]]
    assert updated == ["60"] and sum(c.name == "destroy_many_organizations" for c in writes) >= 1
    assert sorted(organizations(zd), key=int) == [str(i) for i in range(1, 121) if i not in (5, 6, 7)]
    assert organizations(zd)["60"].name == "Account 60 (renamed)"

    mark = zd.mark()
    assert run_dag(dags.sharded_dag, conf={"conn_id": CONF["conn_id"]}).task_states == {
        "organizations_shard": "success"}
    assert zd.calls(since=mark) == []  # nothing changed: no shard sends anything


# -- the connection -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["token", "token_extra", "oauth", "password"])
def test_every_auth_of_the_zendesk_connection(fake_zendesk: FakeZendesk, monkeypatch: pytest.MonkeyPatch,
                                              auth: Any) -> None:
    from airflow_opsflow.connections.zendesk import zendesk_requests_per_minute, zendesk_target
    from airflow_opsflow.sync.destinations.transport import HttpTransport

    for name, value in fake_zendesk.zendesk_connection("zd_auth", auth=auth).items():
        monkeypatch.setenv(name, value)
    target = zendesk_target("zd_auth", "dag 'd', task 't'")
    assert target.base_url == f"{fake_zendesk.url}/api/v2"  # ZENPY_FORCE_SCHEME=http, as zenpy honours it
    transport = HttpTransport(target, 1, what="Zendesk")
    try:
        assert transport.request("GET", "users/me").json()["user"]["id"] == fake_zendesk.agent.id
    finally:
        transport.close()
    assert zendesk_requests_per_minute("zd_auth") is None


def test_a_connection_without_login_or_host_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_opsflow.connections.zendesk import zendesk_target

    monkeypatch.setenv("AIRFLOW_CONN_ZD_NOLOGIN", json.dumps({"conn_type": "zendesk", "host": "acme.zendesk.com",
                                                              "password": "t", "extra": {"use_token": True}}))
    with pytest.raises(AirflowFailException, match="'zd_nologin' has no login: set it to the Zendesk agent's email"):
        zendesk_target("zd_nologin", "dag 'd', task 't'")
    monkeypatch.setenv("AIRFLOW_CONN_ZD_NOHOST", json.dumps({"conn_type": "zendesk", "login": "a@b.c",
                                                             "extra": {"token": "t"}}))
    with pytest.raises(AirflowFailException, match="'zd_nohost' has no host"):
        zendesk_target("zd_nohost")
    monkeypatch.setenv("AIRFLOW_CONN_ZD_PLAIN", json.dumps({"conn_type": "zendesk", "host": "https://acme.zendesk.com/",
                                                            "login": "a@b.c", "extra": {"token": "t"}}))
    monkeypatch.delenv("ZENPY_FORCE_SCHEME", raising=False)
    assert zendesk_target("zd_plain").base_url == "https://acme.zendesk.com/api/v2"


def test_the_declaration_checks_its_settings() -> None:
    from airflow_opsflow.destinations.zendesk import ZendeskObjects

    with pytest.raises(ValueError, match="object_type must be one of"):
        ZendeskObjects("tickets")
    with pytest.raises(ValueError, match="requests_per_minute must be >= 1"):
        ZendeskObjects("users", requests_per_minute=0)
    assert ZendeskObjects("users").describe() == "Zendesk users (zendesk_default) by external_id"


# -- the engine side on its own -----------------------------------------------------------------------------


def _client(object_type: str = "organizations") -> Any:
    from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
    from airflow_opsflow.sync.destinations.zendesk import ZendeskObjectsClient

    return ZendeskObjectsClient(HttpTransport(HttpTarget("https://acme.zendesk.com/api/v2")), object_type)


def test_preflight_and_payloads() -> None:
    from airflow_opsflow.sync.destinations.base import Outcome, Record

    client = _client("users")
    assert client.preflight(["name", "email"], "upsert") == [
        "external_id must be mapped (Zendesk records are found by it)"]
    assert client.preflight(["external_id", "id"], "update") == [
        "id is Zendesk's own: map your key to external_id instead"]
    assert client.preflight(["external_id"], "mirror") == ["name must be mapped (Zendesk needs it to create users)"]
    record = Record("7", (7,), {"external_id": 7, "name": "Ann", "tags": "vip, gold", "plan": "pro",
                                "user_fields.notes": "custom", "notes": "standard"}, "h", ref="123")
    assert client._payload(record, by_id=True) == {
        "external_id": "7", "name": "Ann", "tags": ["vip", "gold"], "notes": "standard", "id": 123,
        "user_fields": {"plan": "pro", "notes": "custom"}}
    assert client.planned_ref(record) == "@7"
    assert client.send("upsert", [Record("8", (8,), {"external_id": None, "name": "x"}, "h")]) == [
        Outcome("error", "external_id is empty: Zendesk finds records by it")]  # never sent


def test_job_results_are_matched_without_an_index() -> None:
    client = _client("users")
    items = [{"external_id": "a", "email": "a@x.com"}, {"external_id": "b"}, {"external_id": "c"}]
    job = {"id": "j1", "status": "completed", "results": [  # Zendesk's shapes: no index, in any order
        {"id": 3, "external_id": "C", "action": "update", "status": "Updated", "success": True},
        {"email": "a@x.com", "status": "Failed", "error": "RecordInvalid",
         "details": {"email": [{"description": "Email: a@x.com is already being used"}]}}]}
    results = client._results(job, items)
    assert [(r.ok, r.zid, r.error) for r in results] == [
        (False, None, "RecordInvalid: Email: a@x.com is already being used"),
        (False, None, "Zendesk job j1 completed: no result for this record"),
        (True, "3", None)]
    positional = client._results({"id": "j2", "status": "completed", "results": [{"id": 1}, {"id": 2}, {"id": 5}]},
                                 items)
    assert [r.zid for r in positional] == ["1", "2", "5"]  # bulk create: one result per item, in order
    whole = client._results({"id": "j3", "status": "completed", "results": {"success": True}}, items)
    assert all(r.ok for r in whole)
    late = client._results({"id": "j4", "status": "working", "results": [{"index": 0, "id": 9}]}, items)
    assert [r.ok for r in late] == [True, False, False]
    assert late[1].error == "Zendesk job j4 working after 600 s (retried next run): no result for this record"


def _fake_client(fake: FakeZendesk, object_type: str) -> Any:
    import base64

    from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
    from airflow_opsflow.sync.destinations.zendesk import ZendeskObjectsClient

    auth = "Basic " + base64.b64encode(f"{fake.email}/token:{fake.token}".encode()).decode()
    return ZendeskObjectsClient(HttpTransport(HttpTarget(f"{fake.url}/api/v2", {"Authorization": auth}), 2),
                                object_type, first_poll=0.01)


def test_insert_update_and_delete_by_external_id(deleting_zendesk: FakeZendesk) -> None:
    from airflow_opsflow.sync.destinations.base import Outcome, Record

    zd = deleting_zendesk
    old = zd.add_user("Old Ann", "ann@example.com", external_id="u1")
    users_client = _fake_client(zd, "users")

    def user(key: str, name: str, **more: Any) -> Record:
        return Record(key, (key,), {"external_id": key, "name": name, **more}, "h")

    # insert: an existing user is left as it is (and confirmed), a new one created
    inserted = users_client.send("insert", [user("u1", "Ann"), user("u2", "Bob", email="bob@example.com")])
    bob = zd.user(external_id="u2")
    assert bob is not None and inserted == [Outcome(ref=str(old.id)), Outcome(ref=str(bob.id))]
    assert zd.user(external_id="u1").name == "Old Ann"  # type: ignore[union-attr]
    # update: looked up by external id (no id known yet); one Zendesk lacks is missing
    updated = users_client.send("update", [user("u1", "Ann Lee"), user("u9", "Nobody")])
    assert updated == [Outcome(ref=str(old.id)), Outcome("missing")]
    assert zd.user(external_id="u1").name == "Ann Lee"  # type: ignore[union-attr]
    # delete: by id, by external id (a killed run's write), already gone: all done; users are soft-deleted
    deleted = users_client.send("delete", [Record("u1", ("u1",), None, None, ref=str(old.id)),
                                           Record("u2", ("u2",), None, None, ref="@u2"),
                                           Record("u3", ("u3",), None, None, ref="@u3"),
                                           Record("u4", ("u4",), None, None)])
    assert deleted[:3] == [Outcome()] * 3 and deleted[3].status == "error"
    assert [r.query for r in zd.calls("destroy_many_users")] == [{"ids": [str(old.id)]},
                                                                 {"external_ids": ["u2,u3"]}]
    assert not zd.user(external_id="u1").active and not zd.user(external_id="u2").active  # type: ignore[union-attr]
    users_client.close()


def test_a_killed_runs_job_still_queued_is_waited_for_before_its_records_are_sent_again(
        fake_zendesk: FakeZendesk) -> None:
    """A job a killed run left queued would write its older values after this run's newer ones (Zendesk runs
    jobs in no promised order): a run re-sending a record left unanswered waits for it first; a run without
    such records does not even list the jobs."""
    from airflow_opsflow.sync.destinations.base import Record

    zd = fake_zendesk
    ann = zd.add_user("Ann", "ann@example.com", external_id="u1")
    killed = _fake_client(zd, "users")
    # The killed run's write: sent, answered with a job_status, never polled (its worker died).
    killed.transport.request("POST", "users/create_or_update_many",
                             {"users": [{"external_id": "u1", "name": "Ann (old)", "email": "ann@example.com"}]})
    killed.close()

    client = _fake_client(zd, "users")
    mark = zd.mark()
    assert client.send("upsert", [Record("u2", ("u2",), {"external_id": "u2", "name": "Bob"}, "h")])[0].status == "ok"
    assert zd.calls("list_job_statuses", since=mark) == []  # nothing pending: no listing
    [queued] = [j for j in zd.jobs.jobs.values() if j.status == "queued"]

    resent = Record("u1", ("u1",), {"external_id": "u1", "name": "Ann Lee", "email": "ann@example.com"}, "h",
                    pending=True)
    assert client.send("upsert", [resent])[0].status == "ok"
    assert queued.status == "completed"  # waited for (its polls moved it on) before this run's write
    zd.run_jobs()
    assert zd.user(external_id="u1").name == "Ann Lee" and zd.user(external_id="u1").id == ann.id  # type: ignore[union-attr]
    assert len(zd.calls("list_job_statuses")) == 1  # once a run, however many batches
    assert client.send("upsert", [resent])[0].status == "ok" and len(zd.calls("list_job_statuses")) == 1
    client.close()



# -- wrong credentials --------------------------------------------------------------------------------------


WRONG_TOKEN = "zd-wrong-token-3f9a1c7e5b"  # must never reach a log


def _task_error(out: str) -> str:
    """The exception the task ended with (``dag.test()`` logs it to stdout)."""
    [error] = [line.split("AirflowException: ", 1)[1] for line in out.splitlines() if "AirflowException: " in line]
    return error


def test_wrong_credentials_fail_the_task_naming_it_and_write_nothing(zendesk: FakeZendesk, state: Database,
                                                                     source: Database,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    right = os.environ["AIRFLOW_CONN_ZENDESK_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_ZENDESK_DEFAULT", json.dumps({**json.loads(right), "password": WRONG_TOKEN}))
    capsys.readouterr()
    assert run_dag(dags.organizations_dag, conf=CONF).task_states == {"organizations": "failed"}
    out = capsys.readouterr()
    error = _task_error(out.out)
    assert error.startswith("dag 'test_zendesk_organizations', task 'organizations': ")
    assert "Zendesk organizations (zendesk_default)" in error and "HTTP 401: the credentials were refused" in error
    assert error.count("Zendesk organizations (zendesk_default)") == 1  # named once
    assert "Check the destination connection's credentials" in error and "up and reachable" not in error
    basic = base64.b64encode(f"{zendesk.email}/token:{WRONG_TOKEN}".encode()).decode()
    for secret in (WRONG_TOKEN, basic, zendesk.token):
        assert secret not in out.out and secret not in out.err
    assert {r.status for r in zendesk.requests} == {401} and zendesk.organizations == []  # refused, nothing made
    keys = "zd_sync_sync_keys" if state.dialect == "postgres" else "opsflow_sync_keys"
    assert state.scalar(f"SELECT COUNT(*) FROM {keys} WHERE status = 'ok' OR row_hash IS NOT NULL") == 0

    monkeypatch.setenv("AIRFLOW_CONN_ZENDESK_DEFAULT", right)
    mark = zendesk.mark()
    status, run = sync(dags.organizations_dag, "organizations")
    assert status == "success" and run["counts"]["added"] == 120 and run["counts"]["failed"] == 0
    sent = [o["external_id"] for r in zendesk.calls("create_many_organizations", since=mark)
            for o in r.body["organizations"]]
    assert sorted(sent, key=int) == [str(i) for i in range(1, 121)]  # every record once
    assert len(organizations(zendesk)) == 120  # (asserts each external id once)
    assert state.scalar(f"SELECT COUNT(*) FROM {keys} WHERE status = 'ok' AND row_hash IS NOT NULL") == 120
