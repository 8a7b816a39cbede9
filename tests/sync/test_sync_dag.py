"""ReverseSyncOperator in real DAG runs: PostgreSQL source and state, the recording HTTP API as destination."""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "http_conn")
dags = load_module(DAGS / "syncs.py")
PATH = "/v1/accounts"
# Every param, every run: dag.test() keeps a conf override in the DAG's params for later runs in the process.
CONF = {"conn_id": "opsflow_pg", "dry_run": False, "full_resync": False}


def expected(db: Database) -> dict[str, dict[str, object]]:
    cur = db.conn.cursor()
    cur.execute("SELECT account_id, name, email, total_spend, tier, customer_since FROM accounts "
                "WHERE total_spend >= 1000")
    rows = cur.fetchall()
    db.conn.rollback()
    return {str(r[0]): {"id": r[0], "name": r[1], "email": r[2], "spend": str(r[3]), "tier": r[4],
                        "since": r[5].isoformat()} for r in rows}


def sync(dag_key: str, **conf: object) -> dict[str, object]:
    run = run_dag(dags.dags[dag_key], conf={**CONF, **conf})
    assert run.task_states == {"push_accounts": "success"}, run.task_states
    return run.xcom("push_accounts")  # type: ignore[no-any-return]


def test_upsert_sends_only_what_changed(api: RecordingHTTPServer, pg_source: Database) -> None:
    first = sync("upsert")
    assert first["counts"]["added"] == 71 and first["diff"] == "pushdown"
    assert api.state(PATH) == expected(pg_source)
    assert len(api.requests_to(PATH)) == 2  # 71 records in batches of 50
    assert all("Idempotency-Key" in r.headers for r in api.requests_to(PATH))

    again = sync("upsert")
    assert again["counts"] == {**again["counts"], "added": 0, "changed": 0, "unchanged": 71}
    assert len(api.requests_to(PATH)) == 2  # nothing re-sent

    pg_source.execute("UPDATE accounts SET tier = 'platinum' WHERE account_id IN (60, 61)",
                      "UPDATE accounts SET updated_at = updated_at WHERE account_id = 62",  # no mapped change
                      "UPDATE accounts SET total_spend = 2000 WHERE account_id = 10")  # newly high priority
    third = sync("upsert")
    assert (third["counts"]["added"], third["counts"]["changed"], third["counts"]["unchanged"]) == (1, 2, 69)
    assert api.state(PATH) == expected(pg_source)
    assert max(api.inserts(PATH).values()) == 1


def test_modes_insert_update_and_mirror(api: RecordingHTTPServer, pg_source: Database) -> None:
    assert sync("insert")["counts"]["added"] == 71
    pg_source.execute("UPDATE accounts SET name = 'Renamed' WHERE account_id = 70")
    inserted = sync("insert")
    assert inserted["counts"]["changed"] == 0 and inserted["counts"]["skipped"] == 1  # insert ignores changes
    assert api.state(PATH)["70"]["name"] == "Account 70"

    api.reset()
    api.keyed(PATH, key_field="id")
    sync("update")  # first run of another sync: every key is new, sent as updates
    assert api.state(PATH)["70"]["name"] == "Renamed"

    mirror = sync("mirror")
    assert mirror["counts"]["added"] == 71
    pg_source.execute("DELETE FROM accounts WHERE account_id IN (100, 101, 102)")
    pg_source.execute("UPDATE accounts SET total_spend = 5 WHERE account_id = 103")  # leaves the query
    gone = sync("mirror")
    assert gone["counts"]["deleted"] == 4 and gone["counts"]["unchanged"] == 67
    assert sorted(api.state(PATH), key=int) == sorted(expected(pg_source), key=int)
    assert sorted(r.path for r in api.requests_to(PATH, "DELETE")) == [f"{PATH}/{k}" for k in (100, 101, 102, 103)]


def test_dry_run_sends_nothing_and_keeps_state(api: RecordingHTTPServer, pg_source: Database) -> None:
    sync("mirror")
    pg_source.execute("UPDATE accounts SET tier = 'platinum' WHERE account_id = 80",
                      "DELETE FROM accounts WHERE account_id = 81")
    before = len(api.requests)
    dry = sync("mirror", dry_run=True)
    assert len(api.requests) == before  # nothing sent (HTTP destinations cannot be read back either)
    assert dry["dry_run"] and (dry["counts"]["changed"], dry["counts"]["deleted"]) == (1, 1)
    assert dry["requests"] == {"upsert": 1, "delete": 1}
    assert dry["preview"][0]["key"] == "80" and dry["preview"][0]["diff"]["tier"] == {"new": "platinum"}
    real = sync("mirror")  # the state was untouched: the real run finds the same changes
    assert (real["counts"]["changed"], real["counts"]["deleted"]) == (1, 1)


def test_mirror_refuses_mass_delete_and_empty_source(api: RecordingHTTPServer, pg_source: Database) -> None:
    sync("mirror")
    pg_source.execute("UPDATE accounts SET total_spend = 0 WHERE account_id > 60")  # 60 of 71 leave
    run = run_dag(dags.dags["mirror"], conf=CONF)
    assert run.task_states == {"push_accounts": "failed"}
    assert run.tries["push_accounts"] == 1  # a refusal is not retried
    report = run.xcom("push_accounts", key="sync")
    assert report["refused"] == ("mirror would delete 60 of 71 synced records (84.5%), over both limits: "
                                 "max_delete_share=0.2 (at most 14 of 71) and max_delete_rows=1; raise either if "
                                 "the deletes are intended; no record was deleted")
    assert report["rows_read"] == 11  # the summary's "full read of 11 rows"
    assert len(api.requests_to(PATH, "DELETE")) == 0 and len(api.state(PATH)) == 71

    # A dry run shows what the real run would delete, and that it would be refused; it does not fail.
    dry = sync("mirror", dry_run=True)
    assert dry["counts"]["deleted"] == 60 and dry["requests"] == {"delete": 60}
    assert sorted(dry["delete_keys"], key=int) == [str(i) for i in range(61, 121)]
    assert dry["refused"].startswith("a real run would be refused: mirror would delete 60 of 71 synced records")
    assert len(api.requests_to(PATH, "DELETE")) == 0

    pg_source.execute("DELETE FROM accounts")
    run = run_dag(dags.dags["mirror"], conf=CONF)
    assert run.task_states == {"push_accounts": "failed"}
    assert "no rows" in run.xcom("push_accounts", key="sync")["refused"] and len(api.state(PATH)) == 71
    dry = sync("mirror", dry_run=True)
    assert dry["counts"]["deleted"] == 71 and dry["refused"].startswith("a real run would be refused: the source")


def test_mirror_deletes_in_a_small_sync(api: RecordingHTTPServer, pg_source: Database) -> None:
    pg_source.execute("DELETE FROM accounts WHERE account_id > 52")  # 3 high-priority accounts: 50, 51, 52
    assert sync("mirror")["counts"]["added"] == 3
    pg_source.execute("DELETE FROM accounts WHERE account_id = 51")
    # 1 of 3 is a third of the sync, but one record: within max_delete_rows (1), it goes.
    result = sync("mirror")
    assert result["counts"]["deleted"] == 1 and result["refused"] is None and result["rows_read"] == 2
    assert sorted(api.state(PATH)) == ["50", "52"]


def test_rejected_records_are_isolated_and_retried(api: RecordingHTTPServer, pg_source: Database) -> None:
    api.reject_when(lambda r: r.get("id") in (55, 77), status=422, message="invalid account")
    first = sync("upsert")  # max_failed_share=0.5: two rejections do not fail the task
    assert first["counts"]["added"] == 69 and first["counts"]["failed"] == 2 and first["splits"] > 0
    assert sorted(f["key"] for f in first["failures"]) == ["55", "77"]
    assert "HTTP 422" in first["failures"][0]["error"]
    assert "55" not in api.state(PATH) and len(api.state(PATH)) == 69

    again = run_dag(dags.dags["upsert"], conf=CONF)  # still rejected: retried, not lost
    assert again.task_states == {"push_accounts": "failed"}  # 2 of 2 attempted were rejected: over 50 %
    assert again.xcom("push_accounts", key="sync")["counts"]["failed"] == 2
    api.reset()
    api.keyed(PATH, key_field="id")
    fixed = sync("upsert")  # the destination accepts them now: only the two are sent
    assert fixed["counts"]["added"] == 2 and sorted(api.state(PATH), key=int) == ["55", "77"]


def test_rate_limits_and_5xx_are_waited_out(api: RecordingHTTPServer, pg_source: Database) -> None:
    api.fail_next(2, status=503)
    api.fail_next(3, status=429, retry_after=1)
    result = sync("upsert")
    assert result["counts"]["added"] == 71 and result["counts"]["failed"] == 0
    assert result["rate_limited"] == 3 and result["retries"] == 2
    assert api.state(PATH) == expected(pg_source)


def test_strict_sync_fails_the_task_after_delivering_the_good_rows(api: RecordingHTTPServer,
                                                                   pg_source: Database) -> None:
    api.reject_when(lambda r: r.get("id") == 3, status=400, message="bad")
    run = run_dag(dags.strict_dag, conf=CONF)
    assert run.task_states == {"push_accounts": "failed"}
    assert len(api.state(PATH)) == 119  # everything but the bad one was delivered
    report = run.xcom("push_accounts", key="sync")
    assert report["counts"]["failed"] == 1 and report["failures"][0]["key"] == "3"


def test_null_and_duplicate_keys_are_invalid(api: RecordingHTTPServer, pg_source: Database) -> None:
    pg_source.execute("INSERT INTO accounts VALUES (NULL, 'No key', 'x@y.z', 5000, 'gold', '2023-01-01', NULL)",
                      "INSERT INTO accounts VALUES (90, 'Twin', 'twin@y.z', 5000, 'gold', '2023-01-01', NULL)")
    result = sync("upsert")
    assert result["invalid_reasons"] == {"null key": 1, "duplicate key": 2}
    assert result["counts"]["added"] == 70 and "90" not in api.state(PATH)


def test_asset_event_and_streaming_diff_with_state_elsewhere(api: RecordingHTTPServer, pg_source: Database,
                                                            sqlite_db: Database,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", sqlite_db.conn_id)
    first = sync("upsert")
    assert first["diff"] == "streaming" and first["counts"]["added"] == 71
    from airflow.models.asset import AssetEvent, AssetModel  # test side: reading the run back from the metadata DB
    from airflow.utils.session import create_session

    with create_session() as session:
        event = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                 .filter(AssetModel.uri == "opsflow://test/crm_accounts").order_by(AssetEvent.id.desc()).first())
        assert event is not None and event.extra["added"] == 71 and event.extra["sync_id"].endswith("push_accounts")
    assert sync("upsert")["counts"]["unchanged"] == 71
    assert sqlite_db.scalar("SELECT COUNT(*) FROM opsflow_sync_keys") == 71

