"""ReverseSyncOperator into Salesforce (the fake org, logged into through Airflow's SalesforceHook), upserting
Accounts by the external id Warehouse_Id__c: real DAG runs with the state on SQLite and on PostgreSQL.

Full, 1 % changed and unchanged runs through sObject Collections, Bulk API 2.0 and the automatic choice (each
counted in requests: nothing changed, not one request, not even a login); a restricted picklist value refused
for one record, mapped to its key and sent again by the next run; the daily API limit; a session expiring
mid-run; lost answers to upserts and to every step of a Bulk job (nothing run twice, nothing duplicated);
mirror deletes behind the mass-delete guard; dry runs; shards. The client's own corners (deletes by external id,
describe problems, a real session expiry, bad credentials) are driven directly, without Airflow.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from airflow_opsflow_testing.dag_runner import DagRunResult, run_dag
from airflow_opsflow_testing.salesforce_server import FakeSalesforce

from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.destinations.base import DestinationFailed, Record, TransientError
from airflow_opsflow.sync.destinations.salesforce import SalesforceObjectsClient
from airflow_opsflow.sync.destinations.salesforce_api import Login, SalesforceApi
from tests.conftest import Database
from tests.helpers import DAGS, load_module

dags = load_module(DAGS / "salesforce_sync.py")
EXT = "Warehouse_Id__c"
TIERS = ["silver", "gold", "platinum"]
FIELDS = [EXT, "Name", "Tier__c", "Total_Spend__c", "Customer_Since__c"]


def define_fields(sf: FakeSalesforce, tiers: list[str] = TIERS) -> None:
    sf.define_field("Account", EXT, external_id=True, unique=True)
    sf.define_field("Account", "Tier__c", "picklist", picklist=tiers, restricted=True)
    sf.define_field("Account", "Total_Spend__c", "currency")
    sf.define_field("Account", "Customer_Since__c", "date")


@pytest.fixture
def salesforce(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> FakeSalesforce:
    define_fields(fake_salesforce)
    return fake_salesforce


@dataclass
class World:
    """The source table ``sf_accounts`` in ``db``, the state store, the fake org and the DAG runs."""

    db: Database
    sf: FakeSalesforce

    def seed(self, n: int) -> None:
        self.db.execute("DROP TABLE IF EXISTS sf_accounts",
                        "CREATE TABLE sf_accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100), "
                        "tier VARCHAR(20), total_spend NUMERIC(12, 2), customer_since DATE)")
        if self.db.dialect == "postgres":
            self.db.execute("INSERT INTO sf_accounts SELECT g, 'Account ' || g, CASE WHEN g % 3 = 0 THEN 'gold' "
                            "ELSE 'silver' END, 500 + 10 * g, DATE '2023-01-01' + (g % 28) "
                            f"FROM generate_series(1, {n}) g")
        else:
            cur = self.db.conn.cursor()
            cur.executemany("INSERT INTO sf_accounts VALUES (?, ?, ?, ?, ?)",
                            [(i, f"Account {i}", "gold" if i % 3 == 0 else "silver", 500 + 10 * i,
                              f"2023-01-{1 + i % 28:02d}") for i in range(1, n + 1)])
            self.db.conn.commit()

    def run(self, api: str, **conf: Any) -> DagRunResult:
        return run_dag(dags.dags[api], conf={"conn_id": self.db.conn_id, **conf})

    def accounts(self) -> dict[str, dict[str, Any]]:
        return {str(r[EXT]): r for r in self.sf.records("Account")}

    def created_once(self) -> bool:
        counts = Counter(str(w.values.get(EXT)).lower() for w in self.sf.creates("Account"))
        return not counts or max(counts.values()) == 1


@pytest.fixture
def world(db: Database, salesforce: FakeSalesforce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """Source in ``db`` (SQLite or PostgreSQL); the state in the same PostgreSQL database (the diff pushed
    down) or, beside a SQLite source, in another SQLite file (SQLite lets a writer block readers)."""
    if db.dialect == "postgres":
        db.execute("DROP TABLE IF EXISTS opsflow_sync_keys", "DROP TABLE IF EXISTS opsflow_sync_meta")
        try:  # the sync tables were dropped: let the store re-create them
            db.execute("UPDATE opsflow_schema_version SET version = 1 WHERE component = 'state' AND version > 1")
        except Exception:
            db.conn.rollback()
        monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_SF_STATE", json.dumps({"conn_type": "sqlite",
                                                                "host": str(tmp_path / "state.db")}))
        monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "sf_state")
    return World(db, salesforce)


@pytest.fixture
def sqlite_world(sqlite_db: Database, salesforce: FakeSalesforce, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> World:
    """The fault tests' world: SQLite source, SQLite state (no service needed)."""
    monkeypatch.setenv("AIRFLOW_CONN_SF_STATE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "s.db")}))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "sf_state")
    return World(sqlite_db, salesforce)


def names(sf: FakeSalesforce, since: int) -> Counter[str]:
    return Counter(r.name for r in sf.calls(since=since))


# -- full, 1 % changed, no change ---------------------------------------------------------------------------

@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("api", ["collections", "bulk"])
def test_full_then_one_percent_then_nothing(world: World, api: str) -> None:
    sf = world.sf
    world.seed(1000)
    mark = sf.mark()
    first = world.run(api)
    assert first.task_states == {"accounts": "success"}
    assert first.xcom("accounts")["counts"]["added"] == 1000
    got = world.accounts()
    assert len(got) == 1000 and world.created_once()
    assert (got["60"]["Name"], got["60"]["Tier__c"], got["60"]["Total_Spend__c"]) == ("Account 60", "gold", 1100.0)
    assert got["60"]["Customer_Since__c"] == "2023-01-05"
    calls = names(sf, mark)
    if api == "collections":
        assert calls == {"login": 1, "collection_upsert": 5}  # 1,000 records, 200 a request, nothing else
    else:  # one job: create, upload, UploadComplete, two status reads, its successful results (it has no failed
        # ones); no describe (nothing was refused), no look for jobs a killed run left (none was)
        assert calls == {"login": 1, "ingest_create": 1, "ingest_upload": 1, "ingest_state": 1, "ingest_job": 2,
                         "ingest_results": 1}

    world.db.execute("UPDATE sf_accounts SET name = name || ' (renamed)' WHERE account_id % 100 = 0")
    mark = sf.mark()
    second = world.run(api).xcom("accounts")
    assert (second["counts"]["changed"], second["counts"]["unchanged"]) == (10, 990)
    calls = names(sf, mark)
    assert calls["collection_upsert" if api == "collections" else "ingest_create"] == 1
    assert world.accounts()["300"]["Name"] == "Account 300 (renamed)" and len(world.accounts()) == 1000

    mark = sf.mark()
    third = world.run(api).xcom("accounts")
    assert third["counts"]["unchanged"] == 1000 and sf.calls(since=mark) == []  # not even a login
    assert world.created_once()


@pytest.mark.usefixtures("airflow_db")
def test_auto_sends_full_batches_by_bulk_and_the_rest_by_collections(world: World) -> None:
    # (bulk_threshold 2,500: the fake org's upserts scan its records, so 10,000-record batches would crawl)
    sf = world.sf
    world.seed(6000)
    mark = sf.mark()
    first = world.run("auto_2500").xcom("accounts")
    assert first["counts"]["added"] == 6000
    calls = names(sf, mark)
    # two full batches of 2,500 as Bulk jobs, the last 1,000 through Collections (5 requests)
    assert (calls["ingest_create"], calls["collection_upsert"]) == (2, 5)
    assert len(sf.records("Account")) == 6000 and world.created_once()

    world.db.execute("UPDATE sf_accounts SET tier = 'platinum' WHERE account_id % 100 = 0")  # 60 changed
    mark = sf.mark()
    assert world.run("auto_2500").xcom("accounts")["counts"]["changed"] == 60
    calls = names(sf, mark)
    assert (calls["ingest_create"], calls["collection_upsert"]) == (0, 1)
    assert world.accounts()["5900"]["Tier__c"] == "platinum"

    mark = sf.mark()
    world.run("auto_2500")
    assert sf.calls(since=mark) == []


@pytest.mark.usefixtures("airflow_db")
def test_auto_sends_a_run_of_changes_as_one_bulk_job_whatever_the_threshold(world: World) -> None:
    # The threshold decides the API, not the job's size: 6,000 changes over a threshold of 2,500 are one job.
    sf = world.sf
    world.seed(6000)
    mark = sf.mark()
    assert world.run("auto_low").xcom("accounts")["counts"]["added"] == 6000
    assert names(sf, mark) == {"login": 1, "ingest_create": 1, "ingest_upload": 1, "ingest_state": 1,
                               "ingest_job": 2, "ingest_results": 1}
    assert len(sf.records("Account")) == 6000 and world.created_once()

    world.db.execute("UPDATE sf_accounts SET tier = 'platinum' WHERE account_id % 100 = 0")  # 60: Collections
    mark = sf.mark()
    assert world.run("auto_low").xcom("accounts")["counts"]["changed"] == 60
    assert names(sf, mark) == {"login": 1, "collection_upsert": 1}


# -- refused records, limits, sessions -----------------------------------------------------------------------

@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("api", ["collections", "bulk"])
def test_refused_picklist_value_is_mapped_to_its_key_and_sent_again(sqlite_world: World, api: str) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(300)
    world.db.execute("UPDATE sf_accounts SET tier = 'bronze' WHERE account_id = 7")
    run = world.run(api).xcom("accounts")
    assert (run["counts"]["added"], run["counts"]["failed"]) == (299, 1)
    [failure] = run["failures"]
    assert failure["key"] == "7" and failure["error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert "bronze" in failure["error"] and "7" not in world.accounts()

    define_fields(sf, [*TIERS, "bronze"])  # the admin adds the value; the source did not change
    mark = sf.mark()
    again = world.run(api).xcom("accounts")
    assert (again["counts"]["added"], again["counts"]["failed"], again["counts"]["unchanged"]) == (1, 0, 299)
    assert world.accounts()["7"]["Tier__c"] == "bronze"
    assert names(sf, mark)["collection_upsert" if api == "collections" else "ingest_create"] == 1


@pytest.mark.usefixtures("airflow_db")
def test_daily_api_limit_stops_the_run_and_the_next_sends_the_rest(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(1000)
    sf.set_api_limit(3)  # three upserts of 200, then REQUEST_LIMIT_EXCEEDED
    run = world.run("collections")
    assert run.task_states == {"accounts": "failed"}
    assert len(sf.records("Account")) == 600
    refused = [c.error_code for c in sf.calls("collection_upsert") if c.status == 403]
    # the fifth batch is refused too, or never sent (the run was stopping by then)
    assert refused in (["REQUEST_LIMIT_EXCEEDED"], ["REQUEST_LIMIT_EXCEEDED"] * 2)

    sf.set_api_limit(15_000)
    mark = sf.mark()
    again = world.run("collections").xcom("accounts")
    assert (again["counts"]["added"], again["counts"]["unchanged"]) == (400, 600)  # what was confirmed was kept
    assert names(sf, mark)["collection_upsert"] == 2 and len(sf.records("Account")) == 1000 and world.created_once()


@pytest.mark.usefixtures("airflow_db")
def test_concurrent_request_limit_is_waited_out(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(100)
    sf.fail_next(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}],
                 target="collection_upsert")
    run = world.run("collections")
    assert run.task_states == {"accounts": "success"} and run.xcom("accounts")["rate_limited"] == 1
    assert len(sf.records("Account")) == 100


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize(("api", "target"), [("collections", "collection_upsert"), ("bulk", "ingest_job")])
def test_session_expiring_mid_run_logs_in_again_once(sqlite_world: World, api: str, target: str) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(500)
    sf.fail_next(401, target=target)  # INVALID_SESSION_ID, as an expired session answers
    mark = sf.mark()
    run = world.run(api)
    assert run.task_states == {"accounts": "success"} and run.xcom("accounts")["counts"]["added"] == 500
    assert names(sf, mark)["login"] == 2 and len(sf.records("Account")) == 500 and world.created_once()
    assert run.xcom("accounts")["retries"] == 0  # a new session is not a failed attempt


@pytest.mark.usefixtures("airflow_db")
def test_a_session_refused_after_a_fresh_login_stops_the_run(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(100)
    sf.fail_next(401, target="collection_upsert", times=2)
    assert world.run("collections").task_states == {"accounts": "failed"}
    assert [c.status for c in sf.calls("collection_upsert")] == [401, 401] and len(sf.calls("login")) == 2
    assert sf.records("Account") == []



WRONG_PASSWORD = "sf-wrong-password-8d31c0"  # must never reach a log


@pytest.mark.usefixtures("airflow_db")
def test_wrong_credentials_fail_the_task_naming_it_and_write_nothing(world: World, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sf = world.sf
    world.seed(300)
    [(name, right)] = sf.salesforce_connection("salesforce_default").items()
    monkeypatch.setenv(name, json.dumps({**json.loads(right), "password": WRONG_PASSWORD}))
    capsys.readouterr()
    refused = world.run("collections")
    assert refused.task_states == {"accounts": "failed"}
    out = capsys.readouterr()
    [error] = [line.split("AirflowException: ", 1)[1] for line in out.out.splitlines() if "AirflowException: " in line]
    assert error.startswith("dag 'test_salesforce_sync_collections', task 'accounts': ")
    assert "Salesforce Account (salesforce_default)" in error and "INVALID_LOGIN" in error
    for secret in (WRONG_PASSWORD, sf.credentials.password, sf.credentials.security_token):
        assert secret not in out.out and secret not in out.err
    # refused at the login: nothing else sent, and one login a try, whatever the senders (Salesforce locks a
    # user out after a few refused logins)
    assert names(sf, 0) == {"login": refused.tries["accounts"]} and sf.records("Account") == []
    keys = world.db.conn.cursor() if world.db.dialect == "postgres" else None
    if keys is not None:  # (the SQLite state is a file of its own: the next run's counts say the rest)
        keys.execute("SELECT COUNT(*) FROM opsflow_sync_keys WHERE status = 'ok' OR row_hash IS NOT NULL")
        assert keys.fetchone() == (0,)
        world.db.conn.commit()

    monkeypatch.setenv(name, right)
    mark = sf.mark()
    run = world.run("collections")
    assert run.task_states == {"accounts": "success"}
    counts = run.xcom("accounts")["counts"]
    assert (counts["added"], counts["changed"], counts["failed"]) == (300, 0, 0)
    # 200 + 100: each record once (the refused run had marked them started: reads, such as the listing of Bulk
    # jobs a killed run might have left running, may come first)
    sent = names(sf, mark)
    assert sent["collection_upsert"] == 2 and set(sent) <= {"login", "describe", "ingest_jobs", "collection_upsert"}
    assert len(world.accounts()) == 300 and world.created_once()


# -- lost answers --------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("airflow_db")
def test_lost_answer_to_an_upsert_is_harmless(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(1000)
    sf.drop_response_next("collection_upsert")  # processed, never answered: the batch is sent again
    run = world.run("collections")
    assert run.task_states == {"accounts": "success"} and run.xcom("accounts")["counts"]["added"] == 1000
    assert len(sf.calls("collection_upsert")) == 6 and sf.calls("collection_upsert")[0].status is None
    assert len(sf.records("Account")) == 1000 and world.created_once()


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("target", ["ingest_create", "ingest_upload", "ingest_state", "ingest_job",
                                    "ingest_results"])
def test_lost_answer_in_a_bulk_job_never_runs_it_twice(sqlite_world: World, target: str) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(1000)
    sf.drop_response_next(target)
    run = world.run("bulk")
    assert run.task_states == {"accounts": "success"} and run.xcom("accounts")["counts"]["added"] == 1000
    states = Counter(job.state for job in sf.bulk.jobs.values())
    assert states["JobComplete"] == 1  # processed once: the job was resumed, or never ran
    # a lost create leaves an empty Open job behind; a lost upload, an aborted one (its data was uncertain)
    expected = {"ingest_create": {"Open": 1}, "ingest_upload": {"Aborted": 1}}.get(target, {})
    assert {s: n for s, n in states.items() if s != "JobComplete"} == expected
    assert len(sf.writes("Account")) == 1000 and world.created_once()


@pytest.mark.usefixtures("airflow_db")
def test_rows_a_failed_bulk_job_left_unprocessed_go_in_a_new_job(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(300)
    sf.fail_next_bulk_job()
    run = world.run("bulk")
    assert run.task_states == {"accounts": "success"} and run.xcom("accounts")["counts"]["added"] == 300
    assert sorted(job.state for job in sf.bulk.jobs.values()) == ["Failed", "JobComplete"]
    assert len(sf.records("Account")) == 300


# -- mirror, dry runs, shards --------------------------------------------------------------------------------

@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("api", ["collections", "bulk"])
def test_mirror_deletes_by_id_behind_the_mass_delete_guard(world: World, api: str) -> None:
    sf = world.sf
    world.seed(100)
    world.run(api)
    world.db.execute("DELETE FROM sf_accounts WHERE account_id > 50")
    refused = world.run(api)
    assert refused.task_states == {"accounts": "failed"}
    assert len(sf.records("Account")) == 100 and sf.writes("Account", "delete") == []

    world.seed(100)
    world.db.execute("DELETE FROM sf_accounts WHERE account_id > 95")  # 5 %: within max_delete_share
    run = world.run(api).xcom("accounts")
    assert run["counts"]["deleted"] == 5 and len(sf.records("Account")) == 95
    assert sorted(int(r[EXT]) for r in sf.records("Account", deleted=True) if r["IsDeleted"]) == [96, 97, 98, 99, 100]
    assert sf.calls("query") == []  # by the Ids the upserts answered: no lookup


@pytest.mark.usefixtures("airflow_db")
def test_dry_run_previews_and_sends_nothing(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(50)
    world.run("collections")
    world.db.execute("UPDATE sf_accounts SET name = 'Renamed' WHERE account_id = 3")
    writes = len(sf.writes())
    dry = world.run("collections", dry_run=True).xcom("accounts")
    assert dry["dry_run"] and dry["counts"]["changed"] == 1 and dry["requests"] == {"upsert": 1}
    [preview] = dry["preview"]
    assert preview["key"] == "3" and preview["diff"] == {"Name": {"old": "Account 3", "new": "Renamed"}}
    assert len(sf.writes()) == writes
    assert world.run("collections").xcom("accounts")["counts"]["changed"] == 1  # the state was left alone


@pytest.mark.usefixtures("airflow_db")
def test_sharded_sync_over_mapped_tasks(sqlite_world: World) -> None:
    world, sf = sqlite_world, sqlite_world.sf
    world.seed(600)
    run = run_dag(dags.sharded_dag, conf={"conn_id": world.db.conn_id})
    assert run.task_states == {"accounts_shard": "success"}
    assert len(sf.records("Account")) == 600 and world.created_once()  # shards never overlap


# -- the client on its own (no Airflow) ---------------------------------------------------------------------

@pytest.fixture
def org(fake_salesforce: FakeSalesforce) -> FakeSalesforce:
    define_fields(fake_salesforce)
    return fake_salesforce


def client(sf: FakeSalesforce, api: str = "collections", fields: list[str] = FIELDS,
           login: Any = None, **kwargs: Any) -> SalesforceObjectsClient:
    api_ = SalesforceApi(login or (lambda: Login(sf.issue_session(), sf.url, "59.0", sf.ca_bundle)), 4)
    c = SalesforceObjectsClient(api_, kwargs.pop("object_name", "Account"), kwargs.pop("external_id", EXT), api,
                                poll=(0.01, 0.05), **kwargs)
    assert c.preflight(fields, "mirror") == [] or fields == []
    return c


def account(sf: FakeSalesforce, ext: str) -> dict[str, Any]:
    found = sf.record_by("Account", EXT, ext)
    assert found is not None, ext
    return found


def records_with(extra: dict[str, Any], ids: range) -> list[Record]:
    return [Record(str(i), (i,), {EXT: str(i), "Name": f"A{i}", **extra}, "h") for i in ids]


def records(ids: range, write_id: str = "w1", pending: bool = False) -> list[Record]:
    return [Record(str(i), (i,), {EXT: str(i), "Name": f"A{i}", "Tier__c": "gold"}, "h", write_id=write_id,
                   pending=pending) for i in ids]


def test_deletes_find_records_a_killed_run_left_by_external_id(org: FakeSalesforce) -> None:
    c = client(org, fields=[EXT, "Name", "Tier__c"])
    c.send("upsert", records(range(1, 6)))
    gone = [Record("1", (), None, None, ref="@1"), Record("2", (), None, None, ref="@2"),  # never told the Id
            Record("9", (), None, None, ref="@9")]  # a killed run's write that never reached Salesforce
    assert [o.status for o in c.send("delete", gone)] == ["ok", "ok", "ok"]
    assert sorted(r[EXT] for r in org.records("Account")) == ["3", "4", "5"]
    assert len(org.calls("query")) == 1  # one SOQL lookup for the batch
    three = account(org, "3")["Id"]
    assert c.send("delete", [Record("3", (), None, None, ref=three)])[0].status == "ok"
    twice = c.send("delete", [Record("3", (), None, None, ref=three), Record("x", (), None, None, ref=None)])
    assert [o.status for o in twice] == ["ok", "error"]  # already gone: done; no ref: nothing to go by
    c.close()


def test_a_bulk_job_a_killed_run_left_running_is_waited_for(org: FakeSalesforce) -> None:
    other = SalesforceApi(lambda: Login(org.issue_session(), org.url, "59.0", org.ca_bundle))  # the killed worker
    job = other.request("POST", "jobs/ingest", {"object": "Account", "operation": "upsert", "externalIdFieldName": EXT,
                                                "contentType": "CSV"}).json()["id"]
    other.request("PUT", f"jobs/ingest/{job}/batches", raw=f"{EXT},Name\n5,stale\n".encode(),
                  headers={"Content-Type": "text/csv"})
    other.request("PATCH", f"jobs/ingest/{job}", {"state": "UploadComplete"})  # queued, then the worker died
    c = client(org, "bulk", fields=[EXT, "Name", "Tier__c"])
    mark = org.mark()
    c.send("upsert", records(range(1, 5)))  # nothing pending (the killed run's keys are not in this batch)
    assert "ingest_jobs" not in names(org, mark)  # so no look for jobs it left
    c.send("upsert", records(range(5, 10), pending=True))  # key 5's earlier write may be running still
    assert org.bulk.jobs[job].state == "JobComplete"  # it ran first, so this run's newer values stay
    assert account(org, "5")["Name"] == "A5" and names(org, mark)["ingest_jobs"] == 1
    c.close()
    other.close()


def test_real_session_expiry_between_requests(org: FakeSalesforce) -> None:
    c = client(org, fields=[EXT, "Name", "Tier__c"])
    c.send("upsert", records(range(1, 3)))
    org.expire_sessions()
    assert [o.status for o in c.send("upsert", records(range(3, 5), "w2"))] == ["ok", "ok"]
    assert c.api.logins == 2 and len(org.records("Account")) == 4
    c.close()


def test_describe_problems_are_named_with_nothing_written(org: FakeSalesforce) -> None:
    # The describe is read only when Salesforce refuses something (no request of a healthy run is spent on it).
    org.define_field("Account", "Plain__c")
    cases = [
        ({"object_name": "Nope__c"}, "has no sObject 'Nope__c'"),
        ({"external_id": "Plain__c"}, "Plain__c is not an External ID field"),
        ({"external_id": "Missing__c"}, "it has no field 'Missing__c'"),
    ]
    for kwargs, message in cases:
        ext = kwargs.get("external_id", EXT)
        c = client(org, fields=[ext, "Name"], **kwargs)
        with pytest.raises(DestinationFailed, match=message):
            c.send("upsert", [Record("1", (1,), {ext: "1", "Name": "x"}, "h")])
        c.close()
    c = client(org, fields=[EXT, "Name", "Colour__c", "CreatedDate"])
    with pytest.raises(DestinationFailed) as e:
        c.send("upsert", [Record("1", (1,), {EXT: "1", "Name": "x", "Colour__c": 1, "CreatedDate": 1}, "h")])
    assert "no field(s) Colour__c" in str(e.value) and "CreatedDate cannot be written" in str(e.value)
    c.close()
    c = client(org, fields=[EXT, "Name", "CreatedDate"])  # refused record by record, not as a whole
    mark = org.mark()
    with pytest.raises(DestinationFailed, match="CreatedDate cannot be written"):
        c.send("upsert", records_with({"CreatedDate": 1}, range(1, 4)))
    assert names(org, mark)["describe"] == 1 and org.records("Account") == []
    assert SalesforceObjectsClient(c.api, "Account", EXT).preflight(["Name"], "mirror") == [
        "external_id_field 'Warehouse_Id__c' must be mapped (Salesforce upserts by it)"]
    c.close()


@pytest.mark.parametrize("api", ["collections", "bulk"])
def test_a_config_error_on_some_records_keeps_the_records_salesforce_wrote(org: FakeSalesforce, api: str) -> None:
    # CreatedDate is mapped but only key 3 sets it: Salesforce writes the others and refuses that one
    c = client(org, api, fields=[EXT, "Name", "CreatedDate"])
    batch = records_with({}, range(1, 5))
    batch[2] = records_with({"CreatedDate": "2024-05-01T00:00:00Z"}, range(3, 4))[0]
    mark = org.mark()
    outcomes = c.send("upsert", batch)
    assert [o.status for o in outcomes] == ["ok", "ok", "error", "ok"]
    for key, outcome in zip(["1", "2", "4"], [outcomes[0], outcomes[1], outcomes[3]], strict=True):
        assert outcome.ref == account(org, key)["Id"]  # the refs of what was written are kept
    error = outcomes[2].error or ""
    assert error.startswith("INVALID_FIELD_FOR_INSERT_UPDATE") and "CreatedDate cannot be written" in error
    assert org.record_by("Account", EXT, "3") is None and names(org, mark)["describe"] == 1
    # a batch with nothing written still stops the run, without a second describe
    with pytest.raises(DestinationFailed, match="CreatedDate cannot be written"):
        c.send("upsert", records_with({"CreatedDate": "2024-05-01T00:00:00Z"}, range(5, 7)))
    assert names(org, mark)["describe"] == 1
    c.close()


def test_bad_credentials_and_an_unreachable_login_are_told_apart(org: FakeSalesforce) -> None:
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    def refused() -> Login:
        raise SalesforceAuthenticationFailed("INVALID_LOGIN", "Invalid username, password, security token")

    def unreachable() -> Login:
        raise ConnectionError("connection refused")

    with pytest.raises(DestinationFailed, match=r"logging in failed: SalesforceAuthenticationFailed.*INVALID_LOGIN"):
        client(org, login=refused).send("upsert", records(range(1, 2)))
    with pytest.raises(TransientError, match="logging in failed: ConnectionError"):
        client(org, login=unreachable).send("upsert", records(range(1, 2)))


def test_empty_external_ids_and_duplicates_are_refused_per_record(org: FakeSalesforce) -> None:
    for api in ("collections", "bulk"):
        org.reset()
        c = client(org, api, fields=[EXT, "Name"])
        batch = [Record("1", (1,), {EXT: "a-1", "Name": "x"}, "h"), Record("2", (2,), {EXT: None, "Name": "y"}, "h"),
                 Record("3", (3,), {EXT: "A-1", "Name": "z"}, "h")]
        outcomes = c.send("upsert", batch)
        assert outcomes[0].status == "ok" and outcomes[0].ref == account(org, "a-1")["Id"]
        assert outcomes[1].error == f"{EXT} is empty: Salesforce upserts records by it"
        if api == "bulk":  # results are matched by external id: the second is refused before sending
            assert outcomes[2].error is not None and outcomes[2].error.startswith("DUPLICATE_EXTERNAL_ID")
        c.close()


def test_a_whole_collections_request_refused_is_split_to_the_bad_record(org: FakeSalesforce) -> None:
    c = client(org, "auto", fields=[EXT, "Name"], bulk_threshold=1000)
    org.fail_next(400, [{"errorCode": "JSON_PARSER_ERROR", "message": "Cannot deserialize"}],
                  target="collection_upsert")
    outcomes = c.send("upsert", [Record(str(i), (i,), {EXT: str(i), "Name": f"A{i}"}, "h") for i in range(450)])
    # 450 records in three requests; the refused one is split in halves, which go through (the fault was once)
    assert all(o.status == "ok" for o in outcomes) and len(org.records("Account")) == 450
    assert [c.status for c in org.calls("collection_upsert")].count(400) == 1
    assert len(org.calls("collection_upsert")) == 5
    org.fail_next(503, target="collection_upsert")
    batch = [Record(str(i), (i,), {EXT: str(i), "Name": f"B{i}"}, "h", write_id="w9") for i in range(450)]
    with pytest.raises(TransientError):
        c.send("upsert", batch)
    mark = org.mark()
    assert all(o.status == "ok" for o in c.send("upsert", batch))  # the engine repeats the batch...
    assert len(org.calls("collection_upsert", since=mark)) == 1  # ... and only the failed request goes again
    c.close()


def test_dry_run_estimates(org: FakeSalesforce) -> None:
    auto = client(org, "auto", fields=[EXT])
    assert auto.requests_for("upsert", 25_000, 100_000) == 6  # one Bulk 2.0 job above the threshold (2,000)
    assert auto.requests_for("upsert", 25_000, 10_000) == 3 * 6  # a smaller operator batch: a job per batch
    assert auto.requests_for("upsert", 1_500, 100_000) == 8  # below the threshold: Collections of 200
    assert client(org, "collections", fields=[EXT]).requests_for("upsert", 1000, 200) == 5
    assert client(org, "bulk", fields=[EXT]).requests_for("upsert", 1000, 10_000) == 6



# -- a worker killed at random points ------------------------------------------------------------------------

CRASH_WORKER = Path(__file__).with_name("salesforce_crash_worker.py")


@dataclass
class CrashHarness:
    """Sync runs in worker processes (tests/sync/salesforce_crash_worker.py), some SIGKILLed at random points,
    between random changes to the source (new, changed, deleted and re-added keys)."""

    uri: str
    sf: FakeSalesforce
    api: str
    rng: random.Random

    def __post_init__(self) -> None:
        self.table, self.sync_id = f"sf_crash_{self.api}", f"sf-crash-{uuid.uuid4().hex[:8]}"
        self.conn = psycopg2.connect(self.uri)
        self.conn.autocommit = True
        self.session = self.sf.issue_session()
        self.values: dict[int, str] = {}
        self.gone: set[int] = set()
        self.readded: Counter[str] = Counter()
        self.next_id = 1
        self.phases: Counter[str] = Counter()

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(statement, params)
        rows = cur.fetchall() if cur.description else []
        cur.close()
        return rows

    def setup(self, rows: int) -> None:
        store = StateStore(lambda: psycopg2.connect(self.uri), "postgres")
        store.migrate()
        store.close()
        self.sql(f"DROP TABLE IF EXISTS {self.table}")
        self.sql(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        self.change(new=rows, updates=0, deletes=0, back=0)

    def change(self, new: int, updates: int, deletes: int, back: int) -> None:
        rng, present = self.rng, sorted(self.values)
        upserts = {i: f"v{rng.getrandbits(32):x}" for i in rng.sample(present, min(updates, len(present)))}
        for i in rng.sample(sorted(self.gone), min(back, len(self.gone))):
            upserts[i] = f"back{rng.getrandbits(32):x}"
            self.readded[str(i)] += 1
        for _ in range(new):
            upserts[self.next_id] = f"new{rng.getrandbits(32):x}"
            self.next_id += 1
        dropped = [i for i in rng.sample(present, min(deletes, len(present))) if i not in upserts]
        self.sql(f"DELETE FROM {self.table} WHERE id = ANY(%s)", (dropped,))
        self.sql(f"INSERT INTO {self.table} SELECT * FROM unnest(%s::int[], %s::text[]) ON CONFLICT (id) DO UPDATE "
                 "SET v = excluded.v", (list(upserts), list(upserts.values())))
        self.values.update(upserts)
        for i in dropped:
            self.values.pop(i)
        self.gone = (self.gone - set(upserts)) | set(dropped)

    def start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, str(CRASH_WORKER), self.uri, self.sf.url, self.session,
                                 self.sf.ca_bundle, self.api, self.sync_id, self.table], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "started\n", (line, proc.communicate()[1][-3000:])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return proc

    def run(self, kill_after: float | None = None) -> dict[str, Any] | None:
        for _ in range(50):
            proc = self.start()
            started = time.monotonic()
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.kill()
            out, err = proc.communicate(timeout=60)
            self.seconds = time.monotonic() - started
            if proc.returncode == 75:  # the killed run's lock is not released yet
                time.sleep(0.2)
                continue
            if proc.returncode != 0:
                assert kill_after is not None, f"worker failed ({proc.returncode}):\n{err[-3000:]}"
                self.phases["sending" if "send " in out else "planning"] += 1
                time.sleep(0.05)  # what reached the fake before the kill is still being applied
                return None
            self.phases["finished" if kill_after is not None else "clean"] += 1
            report: dict[str, Any] = json.loads(out.splitlines()[-1].removeprefix("report "))
            return report
        raise AssertionError("the sync's lock was never released")


@pytest.mark.parametrize("api", ["collections", "bulk"])
def test_killed_at_random_points_ends_equal(pg_uri: str, org: FakeSalesforce, api: str) -> None:
    org.bulk_progress(polls=1, seconds=0.05)
    h = CrashHarness(pg_uri, org, api, random.Random(20240611))
    h.setup(800)
    assert (h.run() or {})["counts"]["added"] == 800
    h.change(new=20, updates=100, deletes=20, back=0)
    h.run()
    typical = h.seconds
    for i in range(16):  # the last one killed: the final run repairs what it left
        h.change(new=h.rng.randint(0, 40), updates=h.rng.randint(0, 200), deletes=h.rng.randint(0, 30),
                 back=h.rng.randint(0, 10))
        h.run(None if i % 4 == 1 else h.rng.uniform(0, typical))

    final = h.run()
    live = {str(r[EXT]): r["Name"] for r in org.records("Account")}
    assert live == {str(i): v for i, v in h.values.items()}  # no lost update, nothing left over
    rows = h.sql("SELECT key_text, status FROM opsflow_sync_keys WHERE sync_id = %s", (h.sync_id,))
    assert {k for k, s in rows if s == "ok"} == set(live) and len(rows) == len(live)
    creates = Counter(str(w.values.get(EXT)) for w in org.creates("Account"))
    assert not {k: n for k, n in creates.items() if n > 1 + h.readded[k]}  # each created once per comeback
    mark = org.mark()
    again = h.run() or {}
    assert (again["counts"]["added"], again["counts"]["changed"], again["counts"]["deleted"]) == (0, 0, 0)
    assert org.calls(since=mark) == []
    print(f"\n{api}: clean run {typical:.2f} s, {dict(h.phases)}; final run {(final or {}).get('counts')}")
    assert h.phases["sending"] >= 2, h.phases
