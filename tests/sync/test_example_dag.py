"""The reverse-ETL example DAG runs for real: accounts ranked by spend into HubSpot, broken invoices to billing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.recording_http import RecordingHTTPServer
from airflow_opsflow_testing.sample_data import repair, seed

from tests.conftest import Database
from tests.helpers import EXAMPLES, load_module

pytestmark = pytest.mark.usefixtures("airflow_db")
example = load_module(EXAMPLES / "reverse_sync.py")


@pytest.fixture
def stand_ins(fake_hubspot: FakeHubSpot, hubspot_conn: str, recording_http: RecordingHTTPServer,
              monkeypatch: pytest.MonkeyPatch) -> tuple[FakeHubSpot, RecordingHTTPServer]:
    for name, kind in (("opsflow_account_id", "string"), ("plan", "string"), ("total_spend", "number"),
                       ("spend_rank", "number")):
        fake_hubspot.define_property("companies", name, kind, unique=name == "opsflow_account_id")
    fake_hubspot.define_property("companies", "priority", "enumeration", options=["critical", "high"])
    for name, value in recording_http.http_connection("billing_api").items():
        monkeypatch.setenv(name, value)
    return fake_hubspot, recording_http


def test_high_priority_accounts_and_invoice_calls(db: Database, stand_ins: tuple[FakeHubSpot, RecordingHTTPServer],
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hubspot, billing = stand_ins
    # The state in its own SQLite file: the diff streams, on both source engines.
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_STATE", json.dumps({"conn_type": "sqlite",
                                                                 "host": str(tmp_path / "state.db")}))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "opsflow_state")
    seed(db.conn, problems=True)
    conf = {"conn_id": db.conn_id, "dry_run": False}
    run = run_dag(example.dag, conf=conf)
    assert run.task_states == {"sync_high_priority_accounts": "success", "regenerate_broken_invoices": "success"}
    companies = {o.properties["opsflow_account_id"]: o.properties for o in hubspot.objects("companies")}
    cur = db.conn.cursor()
    cur.execute("SELECT customer_id FROM payments WHERE status = 'succeeded' GROUP BY customer_id "
                "HAVING SUM(amount) >= 6000")
    expected = {str(r[0]) for r in cur.fetchall()}
    db.conn.rollback()
    assert set(companies) == expected and len(expected) > 10
    assert {p["priority"] for p in companies.values()} <= {"critical", "high"}
    # the three planted invoices that do not add up, one idempotent call each
    assert sorted(r.path for r in billing.requests) == sorted(f"/v1/invoices/{i}/regenerate" for i in (42, 314, 777))
    assert all(r.headers.get("Idempotency-Key") for r in billing.requests)

    calls = len(hubspot.calls()), len(billing.requests)
    run_dag(example.dag, conf=conf)  # nothing changed: nothing sent
    assert (len(hubspot.calls()), len(billing.requests)) == calls

    repair(db.conn)  # refunds reversed etc.: some accounts' spend changes
    db.execute("UPDATE payments SET status = 'refunded' WHERE customer_id = "
               f"{min(expected, key=int)} AND status = 'succeeded'")  # this account drops out
    result = run_dag(example.dag, conf=conf).xcom("sync_high_priority_accounts")
    assert result["counts"]["deleted"] == 1 and result["counts"]["failed"] == 0
    assert min(expected, key=int) in {o.properties["opsflow_account_id"]
                                      for o in hubspot.objects("companies", archived=True)}
    assert max(hubspot.create_counts("companies", "opsflow_account_id").values()) == 1


def test_sharded_example_parses_into_mapped_tasks() -> None:
    task = example.sharded_dag.get_task("sync_contacts")
    assert type(task).__name__ == "MappedOperator"
    assert task.expand_input.value["shard"] == [(i, 4) for i in range(4)]
