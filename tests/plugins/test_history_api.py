"""The Ops view's history API (``/opsflow/api/v1/checks``, ``.../history``, ``/syncs``) in Airflow's own API server
app, over a state database seeded by real DAG runs: a row-level check that warns, passes, then warns twice (streaks,
flips, time to resolve), a metric check that flags a drop (its series), a reverse sync whose destination rejects
two records; SQLite and PostgreSQL. A user with the DAGs hidden gets none of them; no token is a 401, no state
database a 503."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer
from airflow_opsflow_testing.sample_data import repair, seed
from fastapi.testclient import TestClient

from airflow_opsflow.plugins import clock
from airflow_opsflow.sync.repo import SyncRepo
from tests.conftest import Database
from tests.helpers import DAGS, load_module, state_on
from tests.monitors.orders import DROP_DAY, START, create_orders
from tests.plugins import auth
from tests.plugins.auth import api_server
from tests.sync.conftest import ACCOUNTS_PATH, account

pytestmark = pytest.mark.usefixtures("airflow_db", "slack_conn", "http_conn")
history_dags = load_module(DAGS / "history.py")
monitor_dags = load_module(DAGS / "monitors.py")
sync_dags = load_module(DAGS / "syncs.py")
USERS = {"alice": ("viewer", "alice-secret"), "victor": ("viewer", "victor-secret")}
HIDDEN = "victor:test_history,test_sync_http_upsert"  # victor still reads test_monitors
DAY = pendulum.datetime(2026, 3, 1, tz="UTC")
NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)
SYNC_ID = "test_sync_http_upsert.push_accounts"
CHECKS, SYNCS = "/opsflow/api/v1/checks", "/opsflow/api/v1/syncs"
WARNING = "/opsflow/api/v1/checks/test_history/check_payments/amount_positive/history"
METRIC = "/opsflow/api/v1/checks/test_monitors/daily_orders/orders_per_day/history"
ALL_TIME = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def client(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Airflow's API server app with the DAG-scoped simple auth manager: victor may not read two of the DAGs."""
    with api_server(USERS, tmp_path_factory.mktemp("auth"), HIDDEN) as client:
        yield client


def login(client: TestClient, user: str) -> dict[str, str]:
    return auth.login(client, USERS, user)


def pin(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    monkeypatch.setattr(clock, "now", lambda: at)


@pytest.fixture
def seeded(db: Database, recording_http: RecordingHTTPServer, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> Iterator[Database]:
    """The real runs, into one fresh state store on ``db``."""
    state_on(db, monkeypatch, "hapi_")
    conf = {"conn_id": db.conn_id}
    # amount_positive (severity warn): warns, warns, passes, warns: a streak of 2 resolved after 2 days, 2 flips.
    for day, broken in ((0, True), (1, True), (2, False), (3, True)):
        seed(db.conn, now=DAY.naive(), problems=True)
        if not broken:
            repair(db.conn)
        run = run_dag(history_dags.dag, conf=conf, logical_date=DAY + timedelta(days=day))
        assert run.task_states == {"check_payments": "success"}
    # A metric check backfills its series on its first run and flags Monday's drop.
    orders = create_orders(db)
    drop = run_dag(monitor_dags.dag, conf={**conf, "table": orders},
                   logical_date=pendulum.instance((START + timedelta(days=DROP_DAY + 1.1)).replace(tzinfo=UTC)))
    assert drop.task_states == {"daily_orders": "failed"}
    # A sync whose destination rejects two records (max_failed_share 0.5: the run succeeds, partial).
    source = db
    if db.dialect == "sqlite":  # a sync's SQLite source must not be its state store's file
        path = tmp_path / "source.db"
        monkeypatch.setenv("AIRFLOW_CONN_HAPI_SOURCE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
        source = Database("sqlite", "sqlite", sqlite3.connect(path), "hapi_source")
    seed_accounts(source)  # ids 50..120 (71) are the high-priority ones the sync sends
    recording_http.keyed(ACCOUNTS_PATH, key_field="id")
    recording_http.reject_when(lambda r: r.get("id") in (55, 77), status=422, message="invalid account")
    sync = run_dag(sync_dags.dags["upsert"], conf={"conn_id": source.conn_id, "dry_run": False, "full_resync": False},
                   logical_date=DAY + timedelta(days=3))
    assert sync.task_states == {"push_accounts": "success"}
    # A run killed after sending: its write-ahead marks stay. The sync's next run turns them into pending keys
    # (resolve_marks, as a run does first), and a second killed run leaves marks again (unconfirmed).
    from airflow_opsflow.connections.state import state_store

    store = state_store()
    try:
        repo = SyncRepo(store, SYNC_ID)
        repo.mark([("crashed-1", "upsert", ["60", "61"], None)])
        assert repo.resolve_marks() == 2
        repo.mark([("crashed-2", "upsert", ["62"], None)])
    finally:
        store.close()
    yield db
    db.execute(f"DROP TABLE {orders}")
    source.execute("DROP TABLE accounts")
    if source is not db:
        source.conn.close()


def test_checks_history_and_syncs_as_the_view_reads_them(client: TestClient, seeded: Database,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    alice, victor = login(client, "alice"), login(client, "victor")
    pin(monkeypatch, NOW)

    # /checks: the default window starts 30 days before the pinned now (and has no end): February's runs would
    # be left out; until= leaves out June's metric run.
    listed = client.get(CHECKS, headers=alice, params={"until": NOW.isoformat()})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["now"] == "2026-03-05T12:00:00Z" and body["truncated"] is False
    names = [(c["dag_id"], c["check"]) for c in body["checks"]]
    assert names[0] == ("test_history", "amount_positive")  # failing now (and flaky) comes first
    assert set(names) == {("test_history", n) for n in ("amount_positive", "rows", "id_not_null", "pay_key_unique")}
    warn = body["checks"][0]
    run_id = warn["latest_run_id"]
    assert warn == {
        "dag_id": "test_history", "task_id": "check_payments", "check": "amount_positive", "kind": "between",
        "table": "payments", "column": "amount", "latest_status": "warn", "latest_run_time": "2026-03-04T00:00:00Z",
        "latest_run_id": run_id, "runs": 4, "failures": 3, "errors": 0, "pass_rate": 0.25, "failure_streak": 1,
        "longest_streak": 2, "flips": 2, "flakiness": pytest.approx(2 / 3),
        "mean_time_to_resolve_seconds": 2 * 86400.0,
        "links": {"task_instance_url": f"/dags/test_history/runs/{run_id.replace('+', '%2B').replace(':', '%3A')}"
                                       "/tasks/check_payments",
                  "log_url": f"/dags/test_history/runs/{run_id.replace('+', '%2B').replace(':', '%3A')}"
                             "/tasks/check_payments"}}
    rows = next(c for c in body["checks"] if c["check"] == "rows")
    assert (rows["latest_status"], rows["flips"], rows["flakiness"], rows["failure_streak"]) == ("pass", 0, 0.0, 0)
    assert rows["mean_time_to_resolve_seconds"] is None and rows["pass_rate"] == 1.0
    wide = client.get(CHECKS, headers=alice).json()["checks"]
    assert ("test_monitors", "orders_per_day") in [(c["dag_id"], c["check"]) for c in wide]
    pin(monkeypatch, NOW + timedelta(days=32))  # the window starts 2026-03-06 (after the March runs)
    assert {c["dag_id"] for c in client.get(CHECKS, headers=alice).json()["checks"]} == {"test_monitors"}
    pin(monkeypatch, NOW)
    warning = client.get(CHECKS, headers=alice, params={"status": "warn", "until": NOW.isoformat()}).json()
    assert [c["check"] for c in warning["checks"]] == ["amount_positive"]
    assert client.get(CHECKS, headers=alice, params={"table": "nowhere"}).json()["checks"] == []
    one = client.get(CHECKS, headers=alice, params={"limit": 1, "until": NOW.isoformat()}).json()
    assert len(one["checks"]) == 1 and one["truncated"] is True
    early = client.get(CHECKS, headers=alice, params={"until": "2026-03-02T12:00:00Z"}).json()["checks"]
    assert next(c for c in early if c["check"] == "amount_positive")["runs"] == 2

    # .../history: the runs oldest first, streaks of one status, no series for a row-level check.
    history = client.get(WARNING, headers=alice)
    assert history.status_code == 200, history.text
    h = history.json()
    assert [(r["run_time"], r["status"]) for r in h["results"]] == [
        ("2026-03-01T00:00:00Z", "warn"), ("2026-03-02T00:00:00Z", "warn"), ("2026-03-03T00:00:00Z", "pass"),
        ("2026-03-04T00:00:00Z", "warn")]
    first = h["results"][0]
    assert (first["violating_count"], first["try_number"], first["kind"]) == (2, 1, "between")
    assert first["rows_checked"] > 0 and 0 < first["violating_share"] < 1 and first["observed"] is not None
    assert first["task_instance_url"].startswith("/dags/test_history/runs/") and first["duration_seconds"] >= 0
    assert h["series"] is None and h["truncated"] is False
    assert h["streaks"] == [
        {"status": "warn", "from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "runs": 2},
        {"status": "pass", "from": "2026-03-03T00:00:00Z", "to": "2026-03-03T00:00:00Z", "runs": 1},
        {"status": "warn", "from": "2026-03-04T00:00:00Z", "to": "2026-03-04T00:00:00Z", "runs": 1}]
    newest = client.get(WARNING, headers=alice, params={"limit": 2}).json()
    assert [r["run_time"][:10] for r in newest["results"]] == ["2026-03-03", "2026-03-04"] and newest["truncated"]

    # A metric check: its stored series, the drop flagged; the band is not stored.
    metric = client.get(METRIC, headers=alice).json()
    [result] = metric["results"]
    assert result["status"] == "fail"
    points = metric["series"]
    assert len(points) > 50 and [p["bucket"] for p in points] == sorted(p["bucket"] for p in points)
    [flagged] = [p for p in points if p["anomalous"]]
    assert (flagged["bucket"], flagged["status"]) == ("2026-06-14T22:00:00Z", "anomalous")  # Berlin's Monday
    assert flagged["value"] < 30  # about 100 on other weekdays
    assert (flagged["expected"], flagged["low"], flagged["high"], flagged["segment"]) == (None, None, None, [])
    assert flagged["z"] is not None and flagged["marked"] is False
    june = client.get(METRIC, headers=alice, params={"since": "2026-06-10T00:00:00Z"}).json()["series"]
    assert june[0]["bucket"] >= "2026-06-10" and len(june) < len(points)

    missing = client.get(WARNING.replace("amount_positive", "no_such_check"), headers=alice)
    assert missing.status_code == 404 and "check 'no_such_check': no stored results" in missing.json()["detail"]

    # /syncs: recorded at the run's wall-clock time; the view's now is pinned an hour after it.
    recorded = seeded_recorded_at(seeded)
    pin(monkeypatch, recorded + timedelta(hours=1))
    syncs = client.get(SYNCS, headers=alice)
    assert syncs.status_code == 200, syncs.text
    s = syncs.json()
    [run] = s["runs"]
    assert (run["sync_id"], run["status"], run["added"], run["failed"], run["invalid"]) == (
        SYNC_ID, "partial", 69, 2, 0)
    assert (run["dag_id"], run["task_id"], run["requests"], run["retries"]) == (
        "test_sync_http_upsert", "push_accounts", run["requests"], run["retries"])
    assert sorted(r["key"] for r in run["rejections"]) == ["55", "77"]
    assert all("HTTP 422" in r["reason"] for r in run["rejections"])
    assert run["task_instance_url"].startswith("/dags/test_sync_http_upsert/runs/")
    assert run["task_instance_url"].endswith("/tasks/push_accounts")
    dest = run["destination"]
    assert "/v1/accounts" in dest
    assert [(p["key"], p["state"], p["write_id"], p["destination"]) for p in s["pending"]] == [
        ("60", "pending", "crashed-1", dest), ("61", "pending", "crashed-1", dest),
        ("62", "unconfirmed", "crashed-2", dest)]
    assert s["pending"][0]["since"] is not None and s["pending"][2]["since"] is None
    assert s["totals"] == {dest: {"runs": 1, "statuses": {"partial": 1}, "added": 69, "changed": 0, "deleted": 0,
                                  "unchanged": 0, "failed": 2, "invalid": 0, "pending": 3}}
    assert client.get(SYNCS, headers=alice, params={"status": "ok"}).json()["runs"] == []
    old = client.get(SYNCS, headers=alice, params={"until": "2000-01-01T00:00:00Z", "since": "1999-01-01T00:00:00Z"})
    assert old.json()["runs"] == [] and old.json()["totals"][dest]["runs"] == 0  # pending: the current state

    # victor may not read test_history nor the sync's DAG: none of their rows, counts or pending records.
    pin(monkeypatch, NOW)
    assert client.get(CHECKS, headers=victor, params={"until": NOW.isoformat()}).json()["checks"] == []
    seen = client.get(CHECKS, headers=victor, params=ALL_TIME).json()["checks"]
    assert {c["dag_id"] for c in seen} == {"test_monitors"}
    hidden = client.get(WARNING, headers=victor)
    assert hidden.status_code == 404 and hidden.json()["detail"] == missing.json()["detail"].replace(
        "no_such_check", "amount_positive")
    assert client.get(METRIC, headers=victor).status_code == 200
    assert client.get(SYNCS, headers=victor, params=ALL_TIME).json() == {
        "now": "2026-03-05T12:00:00Z", "runs": [], "pending": [], "totals": {}, "truncated": False}


def seed_accounts(db: Database) -> None:
    """The sync tests' accounts, on SQLite too (sqlite3 binds no Decimal)."""
    db.execute("DROP TABLE IF EXISTS accounts",
               "CREATE TABLE accounts (account_id INTEGER, name VARCHAR(100), email VARCHAR(100), "
               "total_spend NUMERIC(12, 2), tier VARCHAR(20), customer_since DATE, updated_at TIMESTAMP)")
    mark = "?" if db.dialect == "sqlite" else "%s"
    rows = [tuple(str(v) if db.dialect == "sqlite" and not isinstance(v, int | str) else v for v in account(i))
            for i in range(1, 121)]
    cur = db.conn.cursor()
    cur.executemany(f"INSERT INTO accounts VALUES ({', '.join([mark] * 6)}, CURRENT_TIMESTAMP)", rows)
    db.conn.commit()
    cur.close()


def seeded_recorded_at(db: Database) -> datetime:
    cur = db.conn.cursor()
    cur.execute("SELECT MAX(recorded_at) FROM " + ("hapi_" if db.dialect == "postgres" else "opsflow_") + "sync_runs")
    value: Any = cur.fetchone()[0]
    db.conn.rollback()
    return datetime.fromisoformat(value)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_no_token_is_401_and_no_state_database_is_503(client: TestClient, db: Database,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (CHECKS, SYNCS, WARNING):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    alice = login(client, "alice")
    monkeypatch.delenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", raising=False)
    for path in (CHECKS, SYNCS, WARNING):
        unset = client.get(path, headers=alice)
        assert unset.status_code == 503 and "[opsflow] state_conn_id" in unset.json()["detail"]
    assert client.get(CHECKS, headers=alice, params={"limit": 0}).status_code == 422
    backwards = client.get(CHECKS, headers=alice, params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-01"})
    assert backwards.status_code == 422 and "'since'" in backwards.json()["detail"]
