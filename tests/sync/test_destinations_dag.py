"""ReverseSyncOperator into the fake HubSpot and a PostgreSQL table, sharded over mapped tasks, per invoice."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "syncs.py")
CONF = {"conn_id": "opsflow_pg", "dry_run": False, "full_resync": False}


@pytest.fixture
def state_in_pg(pg_source: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_source.conn_id)
    return pg_source


@pytest.fixture
def hubspot(fake_hubspot: FakeHubSpot, hubspot_conn: str) -> FakeHubSpot:
    fake_hubspot.define_property("companies", "account_key", "string", unique=True)
    fake_hubspot.define_property("companies", "total_spend", "number")
    fake_hubspot.define_property("companies", "tier", "enumeration", options=["silver", "gold", "platinum"])
    fake_hubspot.define_property("companies", "customer_since", "date")
    return fake_hubspot


def companies(hubspot: FakeHubSpot) -> dict[str, dict[str, str]]:
    return {o.properties["account_key"]: o.properties for o in hubspot.objects("companies")}


def test_hubspot_upsert_archive_and_per_record_errors(hubspot: FakeHubSpot, state_in_pg: Database) -> None:
    db = state_in_pg
    first = run_dag(dags.hubspot_dag, conf=CONF)
    assert first.task_states == {"companies": "success"}
    result = first.xcom("companies")
    assert result["counts"]["added"] == 71 and len(hubspot.calls("batch/upsert")) == 1  # 71 <= 100 inputs
    got = companies(hubspot)
    assert got["60"]["name"] == "Account 60" and got["60"]["tier"] == "gold" and got["60"]["total_spend"] == "1100"
    assert got["60"]["customer_since"] == "2023-01-05"

    db.execute("UPDATE accounts SET tier = 'bronze' WHERE account_id = 61",  # not an option: rejected by HubSpot
               "UPDATE accounts SET tier = 'platinum' WHERE account_id = 62",
               "DELETE FROM accounts WHERE account_id = 63")
    second = run_dag(dags.hubspot_dag, conf=CONF).xcom("companies")
    assert (second["counts"]["changed"], second["counts"]["deleted"], second["counts"]["failed"]) == (1, 1, 1)
    assert second["failures"][0]["key"] == "61" and "bronze" in second["failures"][0]["error"]
    got = companies(hubspot)
    assert got["62"]["tier"] == "platinum" and got["61"]["tier"] == "silver" and "63" not in got
    assert len(hubspot.objects("companies", archived=True)) == 1
    assert max(hubspot.create_counts("companies", "account_key").values()) == 1


def test_hubspot_rate_limit_is_waited_out(hubspot: FakeHubSpot, state_in_pg: Database) -> None:
    hubspot.fail_next(2, status=429)  # HubSpot's 429 carries no Retry-After: we back off on our own
    run = run_dag(dags.hubspot_dag, conf=CONF)
    assert run.task_states == {"companies": "success"}
    assert run.xcom("companies")["rate_limited"] == 2 and len(companies(hubspot)) == 71


def test_table_destination_mirror(state_in_pg: Database) -> None:
    db = state_in_pg
    run = run_dag(dags.table_dag, conf=CONF)
    assert run.task_states == {"to_table": "success"} and run.xcom("to_table")["counts"]["added"] == 120
    assert db.scalar("SELECT COUNT(*) FROM crm_accounts") == 120
    db.execute("UPDATE accounts SET name = 'Changed' WHERE account_id <= 5",
               "DELETE FROM accounts WHERE account_id > 110")
    again = run_dag(dags.table_dag, conf=CONF).xcom("to_table")
    assert (again["counts"]["changed"], again["counts"]["deleted"]) == (5, 10)
    assert db.scalar("SELECT COUNT(*) FROM crm_accounts WHERE name = 'Changed'") == 5
    assert db.scalar("SELECT COUNT(*) FROM crm_accounts") == 110


def test_sharded_sync_over_mapped_tasks(recording_http: RecordingHTTPServer, http_conn: str,
                                        state_in_pg: Database) -> None:
    recording_http.keyed("/v1/accounts", key_field="id")
    run = run_dag(dags.sharded_dag, conf=CONF)
    assert run.task_states == {"push_shard": "success"}
    assert len(recording_http.state("/v1/accounts")) == 120
    assert max(recording_http.inserts("/v1/accounts").values()) == 1  # shards never overlap
    ids = state_in_pg.scalar("SELECT COUNT(DISTINCT sync_id) FROM opsflow_sync_keys")
    assert ids == 3  # one state per shard


def test_call_an_api_per_failed_invoice(recording_http: RecordingHTTPServer, http_conn: str,
                                        state_in_pg: Database) -> None:
    run = run_dag(dags.invoice_dag, conf=CONF)
    assert run.task_states == {"allocate": "success"}
    calls = recording_http.requests_to("/v1/invoices")
    assert sorted(r.path for r in calls) == [f"/v1/invoices/{1000 + i}/allocate" for i in range(4, 41, 4)]
    assert calls[0].body == {"account": int(calls[0].path.split("/")[3]) - 1000,
                             "amount": f"{int(calls[0].path.split('/')[3]) - 1000}.50"}
    assert len({r.headers["Idempotency-Key"] for r in calls}) == 10
    run_dag(dags.invoice_dag, conf=CONF)  # insert mode: an invoice is allocated once, ever
    assert len(recording_http.requests_to("/v1/invoices")) == 10
