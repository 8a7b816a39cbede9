"""The result history's tables on SQLite, PostgreSQL and MariaDB: rows as documented, a retry replacing its
run's rows, retention, sync runs, and every example query of docs/history.md run against them."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_opsflow.core.results import CheckResult
from airflow_opsflow.history.repo import ResultHistory, RunRef
from airflow_opsflow.state.store import StateStore
from tests.conftest import Database

PREFIX = "hist_"
DOC = Path(__file__).resolve().parents[2] / "docs" / "history.md"
T0 = datetime(2026, 2, 27, 23, 30, tzinfo=UTC)  # runs cross Feb 28 -> Mar 1 (not a leap year)


@pytest.fixture(params=["sqlite", "pg", "mariadb"])
def db(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(f"{request.param}_db")  # type: ignore[no-any-return]


@pytest.fixture
def connect(db: Database, request: pytest.FixtureRequest) -> Callable[[], Any]:
    if db.name == "sqlite":
        path = str(request.getfixturevalue("tmp_path") / "state.db")
        return lambda: sqlite3.connect(path, timeout=30)
    db.execute(*(f"DROP TABLE IF EXISTS {PREFIX}{t}" for t in ("check_results", "sync_runs", "schema_version")))
    if db.name == "mariadb":
        import pymysql

        params = {k: getattr(db.conn, k) for k in ("host", "port", "user")}
        return lambda: pymysql.connect(**params, database="opsflow")
    import psycopg2

    uri = request.getfixturevalue("pg_uri")
    return lambda: psycopg2.connect(uri)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(db: Database, connect: Callable[[], Any]) -> StateStore:
    return StateStore(connect, db.dialect, prefix=PREFIX)


def query(store: StateStore, sql: str) -> list[dict[str, Any]]:
    with store.transaction() as cur:
        cur.execute(sql.replace("opsflow_", PREFIX))
        names = [d[0].lower() for d in cur.raw.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def result(name: str, status: str, **kw: Any) -> CheckResult:
    return CheckResult(name=name, kind=kw.pop("kind", "not_null"), table="payments", status=status,  # type: ignore[arg-type]
                       **kw)


def test_rows_as_documented_and_a_retry_replaces_them(store: StateStore, clock: Clock) -> None:
    history = ResultHistory(store, clock=clock)
    run = RunRef("payments", "check", "scheduled__1", 1, T0)
    r = result("amount_positive", "fail", kind="between", observed={"min": -5, "max": 990}, violating_count=2,
               violating_share=0.001, rows_checked=2000, threshold="0 rows", message="2 violating rows",
               sql=["SELECT 1"], duration_s=0.25, column="amount")
    assert history.record_checks(run, [r, result("rows", "pass", kind="row_count", observed=2000)],
                                 {"amount_positive": "f" * 64}) == 2
    rows = {row["check_name"]: row for row in query(store, "SELECT * FROM opsflow_check_results")}
    row = rows["amount_positive"]
    assert json.loads(row["observed"]) == {"max": 990, "min": -5} and row["observed_value"] is None
    assert (row["violating_count"], row["rows_checked"], row["column_name"]) == (2, 2000, "amount")
    assert row["violating_share"] == pytest.approx(0.001) and row["duration_s"] == pytest.approx(0.25)
    assert (row["fingerprint"], row["try_number"], row["status"]) == ("f" * 64, 1, "fail")
    assert row["run_at"] == row["recorded_at"] == "2026-02-27T23:30:00+00:00"
    assert rows["rows"]["observed_value"] == 2000 and rows["rows"]["fingerprint"] is None

    clock.at += timedelta(minutes=5)
    retry = RunRef("payments", "check", "scheduled__1", 2, T0)
    history.record_checks(retry, [result("amount_positive", "pass"), result("rows", "pass")])
    rows = query(store, "SELECT check_name, status, try_number, recorded_at FROM opsflow_check_results")
    assert sorted((r["check_name"], r["status"], r["try_number"]) for r in rows) == [
        ("amount_positive", "pass", 2), ("rows", "pass", 2)]


def test_retention_deletes_the_tasks_old_rows_only(store: StateStore, clock: Clock) -> None:
    history = ResultHistory(store, retention=timedelta(days=30), clock=clock)
    for day in range(40):
        clock.at = T0 + timedelta(days=day)
        history.record_checks(RunRef("d", "t", f"run{day}", 1, clock.at), [result("c", "pass")])
        if day == 0:  # another task's row, written once: not this task's to delete
            history.record_checks(RunRef("d", "other", "run0", 1, clock.at), [result("c", "pass")])
    kept = query(store, "SELECT task_id, run_id FROM opsflow_check_results ORDER BY recorded_at")
    mine = [r["run_id"] for r in kept if r["task_id"] == "t"]
    assert mine == [f"run{d}" for d in range(9, 40)]  # 39 - 30 = day 9 is exactly at the cutoff: kept
    assert [r["run_id"] for r in kept if r["task_id"] == "other"] == ["run0"]
    forever = ResultHistory(store, retention=None, clock=clock)
    clock.at += timedelta(days=400)
    forever.record_checks(RunRef("d", "t", "late", 1, clock.at), [result("c", "pass")])
    assert len(query(store, "SELECT run_id FROM opsflow_check_results WHERE task_id = 't'")) == 32


def test_a_suite_of_hundreds_of_checks_is_written_whole(store: StateStore, clock: Clock) -> None:
    history = ResultHistory(store, clock=clock)
    many = [result(f"check_{i}", "pass", message="x" * 5000) for i in range(450)]  # over one INSERT's rows
    assert history.record_checks(RunRef("d", "t", "r", 1, T0), many) == 450
    rows = query(store, "SELECT check_name, message FROM opsflow_check_results")
    assert len(rows) == 450 and all(len(r["message"]) == 2000 for r in rows)


def test_sync_runs_and_their_rejections(store: StateStore, clock: Clock) -> None:
    history = ResultHistory(store, clock=clock)
    run = RunRef("crm", "push_accounts", "scheduled__1", 1, T0)
    report = {"sync_id": "crm.push_accounts", "mode": "upsert", "full": True, "rows_read": 71,
              "counts": {"added": 70, "changed": 0, "deleted": 0, "unchanged": 0, "failed": 1, "invalid": 0,
                         "skipped": 0},
              "failures": [{"key": "42", "error": "422 email is not valid"}], "requests": {"POST": 2},
              "retries": 1, "rate_limited": 3, "seconds": 1.5}
    history.record_sync(run, "crm.push_accounts", "partial", report, "http_default /v1/accounts")
    history.record_sync(RunRef("crm", "push_accounts", "scheduled__1", 2, T0), "crm.push_accounts", "partial",
                        report, "http_default /v1/accounts")  # the retry replaces the row
    [row] = query(store, "SELECT * FROM opsflow_sync_runs")
    assert (row["status"], row["added"], row["failed"], row["requests"], row["try_number"]) == (
        "partial", 70, 1, 2, 2)
    assert (row["rate_limited"], row["full_read"], row["destination"]) == (3, 1, "http_default /v1/accounts")
    assert json.loads(row["failures"]) == [{"key": "42", "error": "422 email is not valid"}]


def _doc_queries() -> dict[str, str]:
    text = DOC.read_text()
    return dict(re.findall(r"<!-- query: (\w+) -->\n```sql\n(.*?)```", text, re.S))


def test_the_documented_queries_answer(store: StateStore, clock: Clock, db: Database) -> None:
    """Flakiness, streaks, time to resolve: on a history where 'amount_positive' went
    pass, fail, fail, error (could not run), pass, warn, pass, and 'rows' always passed."""
    queries = _doc_queries()
    assert set(queries) == {"flaky", "streaks", "resolve", "share", "sync_rejections"}
    history = ResultHistory(store, clock=clock)
    statuses = ["pass", "fail", "fail", "error", "pass", "warn", "pass"]
    for i, status in enumerate(statuses):
        at = T0 + timedelta(hours=i)
        clock.at = at
        history.record_checks(RunRef("payments_checks", "check", f"r{i}", 1, at), [
            result("amount_positive", status, violating_count=i, rows_checked=100, violating_share=i / 100),
            result("rows", "pass", kind="row_count")])
    history.record_sync(RunRef("crm", "push", "r0", 1, T0), "crm.push", "refused",
                        {"counts": {"deleted": 60}}, "hubspot", "mirror would delete 60 of 71")

    flaky = {r["check_name"]: r for r in query(store, queries["flaky"])}
    assert (flaky["amount_positive"]["runs"], flaky["amount_positive"]["failing_runs"],
            flaky["amount_positive"]["flips"]) == (6, 3, 4)
    assert (flaky["rows"]["runs"], flaky["rows"]["flips"]) == (7, 0)

    streaks = query(store, queries["streaks"])
    assert [(r["check_name"], r["started"], r["last_failing"], r["failing_runs"]) for r in streaks] == [
        ("amount_positive", _at(1), _at(2), 2), ("amount_positive", _at(5), _at(5), 1)]

    resolved = query(store, queries["resolve"])
    assert [(r["started"], r["resolved"]) for r in resolved] == [(_at(1), _at(4)), (_at(5), _at(6))]
    hours = {"postgres": "EXTRACT(EPOCH FROM CAST(resolved AS TIMESTAMPTZ) - CAST(started AS TIMESTAMPTZ)) / 3600",
             "sqlite": "(julianday(resolved) - julianday(started)) * 24",
             "mysql": "TIMESTAMPDIFF(SECOND, CAST(LEFT(started, 19) AS DATETIME), "
                      "CAST(LEFT(resolved, 19) AS DATETIME)) / 3600"}[db.dialect]
    durations = query(store, f"SELECT {hours} AS hours FROM ({queries['resolve'].replace('ORDER BY s.started', '')}) x "
                             "ORDER BY started")
    assert [float(r["hours"]) for r in durations] == pytest.approx([3.0, 1.0])

    share = query(store, queries["share"])
    assert [float(r["violating_share"]) for r in share] == pytest.approx([i / 100 for i in range(7)])
    [sync] = query(store, queries["sync_rejections"])
    assert (sync["status"], sync["deleted"]) == ("refused", 60)


def _at(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()
