"""The plan hash and the change guard, in real DAG runs: PostgreSQL source and state, the recording HTTP API."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from airflow_opsflow.sync.report import plan_markdown
from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "http_conn")
dag = load_module(DAGS / "approved_syncs.py").change_guard_dag
PATH = "/v1/accounts"
CONF = {"dry_run": False}


def sync(dry_run: bool = False) -> dict[str, object]:
    run = run_dag(dag, conf={"dry_run": dry_run})
    assert run.task_states == {"push_accounts": "success"}, run.task_states
    return run.xcom("push_accounts")  # type: ignore[no-any-return]


def test_plan_hash_is_the_same_in_the_dry_run_and_the_real_run(api: RecordingHTTPServer,
                                                               pg_source: Database) -> None:
    first = sync()
    assert first["counts"]["added"] == 71 and first["plan_hash"]  # type: ignore[index]
    nothing = sync(dry_run=True)
    pg_source.execute("UPDATE accounts SET tier = 'platinum' WHERE account_id IN (60, 61)",
                      "DELETE FROM accounts WHERE account_id = 62")
    dry = sync(dry_run=True)
    assert (dry["counts"]["changed"], dry["counts"]["deleted"]) == (2, 1)  # type: ignore[index]
    assert dry["plan_hash"] != nothing["plan_hash"]
    assert sync(dry_run=True)["plan_hash"] == dry["plan_hash"]  # nothing moved: the same plan

    pg_source.execute("UPDATE accounts SET name = 'Renamed' WHERE account_id = 63")  # the source changes
    moved = sync(dry_run=True)
    assert moved["plan_hash"] not in (dry["plan_hash"], nothing["plan_hash"])
    real = sync()
    assert (real["counts"]["changed"], real["counts"]["deleted"]) == (3, 1)  # type: ignore[index]
    assert real["plan_hash"] == moved["plan_hash"]
    assert sync(dry_run=True)["plan_hash"] == nothing["plan_hash"]  # all sent: the empty plan again


def test_max_change_share_refuses_before_anything_is_sent(api: RecordingHTTPServer, pg_source: Database,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    sync()
    pg_source.execute("UPDATE accounts SET tier = 'bronze' WHERE account_id BETWEEN 50 AND 64",  # 15 changed
                      "DELETE FROM accounts WHERE account_id = 65")  # and 1 deleted: 16 of 71, over 14
    dry = sync(dry_run=True)
    why = ("the run would change 15 and delete 1 of 71 synced records (22.5%), over max_change_share=0.2 (at most "
           "14 of 71); raise it if the changes are intended, or have the plan approved (docs/sync.md, 'Approval "
           "of risky syncs')")
    assert dry["refused"] == f"a real run would be refused: {why}"
    body = plan_markdown(dry)  # what an approver would read
    assert "15 changed, 1 deleted" in body and "**Deletes** (1): `65`" in body
    assert "| upsert | `50` | tier |  | bronze |" in body  # an HTTP API cannot be read back: no old value
    assert f"Plan `{dry['plan_hash']}`" in body

    before = len(api.requests)
    capfd.readouterr()
    run = run_dag(dag, conf=CONF)
    text = "".join(capfd.readouterr())
    assert run.task_states == {"push_accounts": "failed"} and run.tries["push_accounts"] == 1  # not retried
    assert len(api.requests) == before  # nothing sent: not the changes either
    report = run.xcom("push_accounts", key="sync")
    assert report["refused"] == f"{why}; nothing was sent" and report["plan_hash"] == dry["plan_hash"]
    assert report["counts"]["changed"] == 0
    assert ("dag 'test_sync_change_guard', task 'push_accounts': sync 'test_sync_change_guard.push_accounts': the "
            "run would change 15 and delete 1 of 71 synced records (22.5%), over max_change_share=0.2") in text

    pg_source.execute("UPDATE accounts SET tier = CASE WHEN account_id % 3 = 0 THEN 'gold' ELSE 'silver' END "
                      "WHERE account_id BETWEEN 50 AND 52")  # three back as they were: 13 of 71 is within
    ok = sync()
    assert (ok["counts"]["changed"], ok["counts"]["deleted"]) == (12, 1)  # type: ignore[index]
