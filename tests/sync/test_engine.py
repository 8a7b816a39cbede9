"""The sync engine without Airflow: SQLite source and state, destinations implementing the interface."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from airflow_opsflow.core.retry_after import parse_retry_after
from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.deliver import DeliveryPolicy, DestinationDown
from airflow_opsflow.sync.destinations.base import (
    OK,
    BatchRejected,
    DestinationClient,
    Operation,
    Outcome,
    Record,
    TransientError,
)
from airflow_opsflow.sync.destinations.table import DatabaseTableClient
from airflow_opsflow.sync.engine import SyncFailed, SyncRefused, SyncRun
from airflow_opsflow.sync.mapping import Field, Mapping, MappingError
from airflow_opsflow.sync.plan import Plan, source_query
from airflow_opsflow.sync.ratelimit import RateLimiter
from airflow_opsflow.sync.report import SyncReport
from airflow_opsflow.sync.spec import SyncSpec, SyncSpecError


class Store(DestinationClient):
    """An in-memory destination: applies upserts/deletes, can reject keys, fail transiently, rate limit."""

    name = "memory"

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, int]] = []
        self.reject: set[str] = set()
        self.transient = 0
        self.rate_limited = 0
        self._lock = threading.Lock()

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        with self._lock:
            self.calls.append((op, len(records)))
            if self.rate_limited:
                self.rate_limited -= 1
                raise TransientError("429", retry_after=0.01, rate_limited=True)
            if self.transient:
                self.transient -= 1
                raise TransientError("503")
            if any(r.key in self.reject for r in records):
                raise BatchRejected("HTTP 422: invalid record")
            for r in records:
                if op == "delete":
                    self.rows.pop(r.key, None)
                else:
                    self.rows[r.key] = dict(r.fields or {})
        return [OK] * len(records)


@pytest.fixture
def dbs(tmp_path: Path) -> tuple[Path, Path]:
    src, state = tmp_path / "src.db", tmp_path / "state.db"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE accounts (id INTEGER, name TEXT, spend NUMERIC, tier TEXT)")
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?)", [(i, f"a{i}", i * 10, "gold") for i in range(1, 201)])
    conn.commit()
    conn.close()
    return src, state


def run(dbs: tuple[Path, Path], dest: DestinationClient, **settings: Any) -> Any:
    src, state = dbs
    settings.setdefault("max_failed", None)
    spec = SyncSpec.build("s", "id", {"id": "id", "name": "name", "spend": Field("spend", "integer")}, **settings)
    return SyncRun(spec, SqlSource(lambda: sqlite3.connect(src), "sqlite"),
                   source_query("sqlite", None, "accounts", "t"),
                   lambda: StateStore(lambda: sqlite3.connect(state), "sqlite"), dest,
                   DeliveryPolicy(batch_size=16, concurrency=3, backoff=0.01)).run()


def execute(dbs: tuple[Path, Path], *sql: str) -> None:
    conn = sqlite3.connect(dbs[0])
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


def test_only_changes_are_sent_and_mirror_deletes(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    assert run(dbs, dest, mode="mirror").counts["added"] == 200
    assert run(dbs, dest, mode="mirror").counts["unchanged"] == 200
    execute(dbs, "UPDATE accounts SET name = 'x' WHERE id <= 3", "UPDATE accounts SET tier = 'silver'",
            "DELETE FROM accounts WHERE id > 190")
    report = run(dbs, dest, mode="mirror")
    assert (report.counts["changed"], report.counts["deleted"]) == (3, 10)  # tier is not mapped: no change
    assert sorted(dest.rows, key=int) == [str(i) for i in range(1, 191)] and dest.rows["2"]["name"] == "x"


def test_rejections_are_isolated_kept_and_retried(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    dest.reject = {"7", "150"}
    report = run(dbs, dest)
    assert report.counts["failed"] == 2 and report.counts["added"] == 198 and report.splits > 0
    assert {f["key"] for f in report.failures} == {"7", "150"}
    dest.reject = set()
    dest.calls.clear()
    again = run(dbs, dest)
    assert again.counts["added"] == 2 and sum(n for _, n in dest.calls) == 2


def test_failure_threshold_fails_after_delivering(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    dest.reject = {"9"}
    with pytest.raises(SyncFailed) as failed:
        run(dbs, dest, max_failed=0)
    assert failed.value.report.counts["added"] == 199 and len(dest.rows) == 199


def test_transient_errors_and_rate_limits_are_retried(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    dest.transient, dest.rate_limited = 2, 5
    report = run(dbs, dest)
    assert report.counts["added"] == 200 and report.retries == 2 and report.rate_limited == 5


def test_a_dead_destination_stops_the_run_and_loses_nothing(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    dest.transient = 10_000
    with pytest.raises(DestinationDown, match="kept failing"):
        run(dbs, dest)
    dest.transient = 0
    assert run(dbs, dest).counts["added"] == 200  # nothing was confirmed: everything goes now


def test_mirror_guard_and_dry_run(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    run(dbs, dest, mode="mirror")
    execute(dbs, "DELETE FROM accounts WHERE id > 100")
    with pytest.raises(SyncRefused, match=r"max_delete_share=0\.2"):
        run(dbs, dest, mode="mirror")
    assert len(dest.rows) == 200
    dry = run(dbs, dest, mode="mirror", dry_run=True, max_delete_share=1.0)
    assert dry.counts["deleted"] == 100 and dry.requests == {"delete": 7} and len(dest.rows) == 200
    execute(dbs, "DELETE FROM accounts")
    with pytest.raises(SyncRefused, match="no rows"):
        run(dbs, dest, mode="mirror", max_delete_share=1.0)


def test_mirror_guard_on_a_small_sync(dbs: tuple[Path, Path]) -> None:
    execute(dbs, "DELETE FROM accounts WHERE id > 3")
    dest = Store()
    run(dbs, dest, mode="mirror")
    execute(dbs, "DELETE FROM accounts WHERE id = 2")
    with pytest.raises(SyncRefused) as refused:  # the share alone (no rows always allowed): 1 of 3 is over 20 %
        run(dbs, dest, mode="mirror", max_delete_rows=0)
    report = refused.value.report
    assert report.refused == ("mirror would delete 1 of 3 synced records (33.3%), over both limits: "
                              "max_delete_share=0.2 (at most 0 of 3) and max_delete_rows=0; raise either if the "
                              "deletes are intended; no record was deleted")
    assert "full read of 2 rows" in report.summary() and "\n  REFUSED: mirror would delete 1 of 3" in report.summary()
    dry = run(dbs, dest, mode="mirror", max_delete_rows=0, dry_run=True)  # shows the deletes, does not fail
    assert dry.counts["deleted"] == 1 and dry.delete_keys == ["2"] and dry.requests == {"delete": 1}
    assert "\n  would delete 1 record: 2" in dry.summary()
    assert "\n  WOULD BE REFUSED: a real run would be refused: mirror would delete 1 of 3" in dry.summary()
    assert len(dest.rows) == 3
    # Compared as a share, not as a count rounded down (int(3 * 0.4) = 1 would refuse 2 of 3 at 40 %, too).
    assert run(dbs, dest, mode="mirror", max_delete_share=0.4, max_delete_rows=0).counts["deleted"] == 1
    execute(dbs, "DELETE FROM accounts", *(f"INSERT INTO accounts VALUES ({i}, 'a{i}', {i}, 'g')"
                                           for i in range(10, 30)))
    with pytest.raises(SyncRefused, match=r"delete 2 of 2 synced records \(100\.0%\)") as refused:
        run(dbs, dest, mode="mirror")  # both synced keys leave: over one record and over the share
    assert {"1", "3"} <= set(dest.rows)
    replaced = run(dbs, dest, mode="mirror", max_delete_rows=2).counts  # intended: allowed
    assert (replaced["added"], replaced["deleted"]) == (20, 2)
    execute(dbs, "DELETE FROM accounts WHERE id >= 26")  # 4 of 20 is 20 %: within the share
    assert run(dbs, dest, mode="mirror").counts["deleted"] == 4 and sorted(dest.rows, key=int) == [
        str(i) for i in range(10, 26)]


def test_mirror_guard_refuses_most_of_a_small_sync_by_default(dbs: tuple[Path, Path]) -> None:
    """A broken source query that still returns one row must not empty a small mirror (10 of 11 is 91 %)."""
    execute(dbs, "DELETE FROM accounts WHERE id > 11")
    dest = Store()
    assert run(dbs, dest, mode="mirror").counts["added"] == 11
    execute(dbs, "DELETE FROM accounts WHERE id > 1")
    with pytest.raises(SyncRefused) as refused:
        run(dbs, dest, mode="mirror")
    report = refused.value.report
    assert report.refused == ("mirror would delete 10 of 11 synced records (90.9%), over both limits: "
                              "max_delete_share=0.2 (at most 2 of 11) and max_delete_rows=1; raise either if the "
                              "deletes are intended; no record was deleted")
    assert sorted(report.delete_keys, key=int) == [str(i) for i in range(2, 12)] and len(dest.rows) == 11
    assert "\n  refused deletes, e.g. " in report.summary()
    execute(dbs, *(f"INSERT INTO accounts VALUES ({i}, 'a{i}', {i * 10}, 'gold')" for i in (2, 3)))
    with pytest.raises(SyncRefused, match="delete 8 of 11"):
        run(dbs, dest, mode="mirror")
    execute(dbs, *(f"INSERT INTO accounts VALUES ({i}, 'a{i}', {i * 10}, 'gold')" for i in range(4, 10)))
    assert run(dbs, dest, mode="mirror").counts["deleted"] == 2  # 2 of 11 (18 %): within the share
    execute(dbs, "DELETE FROM accounts WHERE id > 1")
    assert run(dbs, dest, mode="mirror", max_delete_rows=10).counts["deleted"] == 8  # raised: intended
    assert list(dest.rows) == ["1"]


def test_a_mass_delete_is_refused_with_bounded_keys(dbs: tuple[Path, Path]) -> None:
    """A broken source on a large mirror: the refusal counts every delete but keeps only the first keys."""
    execute(dbs, *(f"INSERT INTO accounts VALUES ({i}, 'a{i}', {i}, 'g')" for i in range(201, 20_001)))
    dest = Store()
    src, state = dbs

    def sync(**settings: Any) -> Any:
        spec = SyncSpec.build("s", "id", {"id": "id", "name": "name"}, mode="mirror", max_failed=None, **settings)
        return SyncRun(spec, SqlSource(lambda: sqlite3.connect(src), "sqlite"),
                       source_query("sqlite", None, "accounts", "t"),
                       lambda: StateStore(lambda: sqlite3.connect(state), "sqlite"), dest,
                       DeliveryPolicy(batch_size=1000, concurrency=2, backoff=0.01)).run()

    assert sync().counts["added"] == 20_000
    execute(dbs, "DELETE FROM accounts WHERE id > 10")
    with pytest.raises(SyncRefused) as refused:
        sync()
    report = refused.value.report
    assert report.refused.startswith("mirror would delete 19,990 of 20,000 synced records (100.0%), over both "
                                     "limits: max_delete_share=0.2 (at most 4,000 of 20,000) and max_delete_rows=1")
    assert len(report.delete_keys) == 100 and len(dest.rows) == 20_000
    dry = sync(dry_run=True)  # streams its deletes: the full count, the first keys
    assert dry.counts["deleted"] == 19_990 and dry.requests == {"delete": 20} and len(dry.delete_keys) == 100
    assert dry.refused.startswith("a real run would be refused: mirror would delete 19,990 of 20,000")


def test_the_delete_guard_keeps_a_count_not_the_keys() -> None:
    """Past the allowed number the engine keeps a count and 100 keys, whatever the number of deletes."""
    import tracemalloc

    class Deletes:  # the state's answer to "which synced keys left the source", for a 500,000-key mirror
        def deletes(self) -> Any:
            return ((f"customer-{i:012d}", f"{i:032x}", None, "ok") for i in range(500_000))

    spec = SyncSpec.build("big", "id", mode="mirror", max_delete_share=0.01)  # allowed: 10,000
    engine = SyncRun(spec, None, "", lambda: None, Store(), DeliveryPolicy())  # type: ignore[arg-type]
    report = SyncReport("big", "mirror", "streaming", True)
    tracemalloc.start()
    try:
        with pytest.raises(SyncRefused, match=r"delete 500,000 of 1,000,000 synced records \(50\.0%\)"):
            list(engine._deletes(Deletes(), 1_000_000, None, report))  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(report.delete_keys) == 100 and report.delete_keys[0] == "customer-000000000000"
    assert peak < 15_000_000, f"{peak:,} bytes"  # keeping every delete took over 90 MB

    report = SyncReport("big", "mirror", "streaming", True, dry_run=True)
    dry = SyncRun(SyncSpec.build("big", "id", mode="mirror", dry_run=True), None, "", lambda: None,  # type: ignore[arg-type]
                  Store(), DeliveryPolicy())
    groups = dry._deletes(Deletes(), 1_000_000, None, report)  # type: ignore[arg-type]
    assert sum(len(items) for _, _, items in groups) == 500_000 and report.refused.startswith(
        "a real run would be refused: mirror would delete 500,000 of 1,000,000")


def test_invalid_rows_are_never_sent(dbs: tuple[Path, Path]) -> None:
    execute(dbs, "INSERT INTO accounts VALUES (NULL, 'n', 1, 'g')", "INSERT INTO accounts VALUES (5, 'd', 1, 'g')",
            "INSERT INTO accounts VALUES (300, 'bad', 'not a number', 'g')")
    dest = Store()
    report = run(dbs, dest)
    assert report.invalid_reasons == {"null key": 1, "duplicate key": 2, "uncastable value": 1}
    assert "5" not in dest.rows and "300" not in dest.rows and report.counts["added"] == 199
    assert any(i.get("detail") == "field 'spend': 'not a number' is not a number" for i in report.invalid)


def test_table_destination_on_sqlite(dbs: tuple[Path, Path], tmp_path: Path) -> None:
    target = tmp_path / "crm.db"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE crm (id INTEGER PRIMARY KEY, name TEXT, spend INTEGER)")
    conn.commit()
    dest = DatabaseTableClient(lambda: sqlite3.connect(target, check_same_thread=False), "sqlite", "crm", ["id"])
    run(dbs, dest, mode="mirror")
    execute(dbs, "DELETE FROM accounts WHERE id > 180", "UPDATE accounts SET spend = 7 WHERE id = 1")
    report = run(dbs, dest, mode="mirror")
    dest.close()
    assert (report.counts["changed"], report.counts["deleted"]) == (1, 20)
    assert conn.execute("SELECT COUNT(*), SUM(spend = 7) FROM crm").fetchone() == (180, 1)


def test_settings_are_validated_with_names() -> None:
    with pytest.raises(SyncSpecError, match="mode must be one of"):
        SyncSpec.build("s", "id", mode="merge")  # type: ignore[arg-type]
    with pytest.raises(SyncSpecError, match="shard must be"):
        SyncSpec.build("s", "id", shard=(3, 3))
    with pytest.raises(SyncSpecError, match="primary_key"):
        SyncSpec.build("s", [])
    with pytest.raises(SyncSpecError, match="unknown type 'money'"):
        SyncSpec.build("s", "id", {"a": {"column": "b", "type": "money"}})
    with pytest.raises(MappingError, match="spend <- total"):
        Mapping.parse({"spend": "total"}, columns=["id"])


def test_plan_quotes_identifiers_and_values() -> None:
    plan = Plan("postgres", 'SELECT * FROM "t"', ('a"b',), ("x",), "d'g", shard=(1, 4))
    sql = plan.pushdown_sql("opsflow_sync_keys", "it's")
    assert '"a""b"' in sql and "'it''s'" in sql and "'d''g'" in sql and "% 4) = 1" in sql
    mysql = Plan("mysql", "SELECT * FROM t", ("id",), ("x",), "d")
    assert "`id`" in mysql.select_sql() and "MD5(CONCAT_WS" in mysql.select_sql()
    with pytest.raises(ValueError, match="exactly one query"):
        source_query("postgres", "SELECT 1; DROP TABLE t", None, "task 't'")


def test_retry_after_and_rate_limit_headers() -> None:
    assert parse_retry_after("3", maximum=60) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", maximum=60, now=1445412470.0) == 10.0
    limiter = RateLimiter()
    limiter.observe({"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "200"})
    import time

    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started >= 0.15


def test_full_resync_sends_everything_again(dbs: tuple[Path, Path]) -> None:
    dest = Store()
    run(dbs, dest)
    dest.calls.clear()
    report = run(dbs, dest, full_resync=True)
    assert report.counts["changed"] == 200 and sum(n for _, n in dest.calls) == 200


def test_preflight_names_missing_columns_before_sending(dbs: tuple[Path, Path]) -> None:
    src, state = dbs
    spec = SyncSpec.build("s", "id", {"id": "id", "revenue": "total_revenue"})
    dest = Store()
    with pytest.raises(SyncSpecError, match="revenue <- total_revenue"):
        SyncRun(spec, SqlSource(lambda: sqlite3.connect(src), "sqlite"), source_query("sqlite", None, "accounts", "t"),
                lambda: StateStore(lambda: sqlite3.connect(state), "sqlite"), dest, DeliveryPolicy()).run()
    assert dest.calls == []


def test_unreachable_state_store_sends_nothing(dbs: tuple[Path, Path]) -> None:
    from airflow_opsflow.state.store import StateStoreError

    def refuse() -> Any:
        raise OSError("connection refused")

    spec = SyncSpec.build("s", "id")
    dest = Store()
    with pytest.raises(StateStoreError, match="unreachable"):
        SyncRun(spec, SqlSource(lambda: sqlite3.connect(dbs[0]), "sqlite"),
                source_query("sqlite", None, "accounts", "t"), lambda: StateStore(refuse, "sqlite"), dest,
                DeliveryPolicy()).run()
    assert dest.calls == []


def test_http_errors_never_carry_credentials() -> None:
    from airflow_opsflow_testing.recording_http import RecordingHTTPServer

    from airflow_opsflow.sync.destinations.base import DestinationFailed
    from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport

    with RecordingHTTPServer() as api:
        api.require_auth("Bearer right-token")
        transport = HttpTransport(HttpTarget(api.url, {"Authorization": "Bearer s3cret-token"}), 1)
        with pytest.raises(DestinationFailed) as refused:
            transport.request("POST", "/v1/items", [{"id": 1}])
        assert "401" in str(refused.value) and "s3cret" not in str(refused.value)
        assert api.requests[0].headers["Authorization"] == "Bearer s3cret-token"  # it was sent, only not logged


class DiesAfterApplying(Store):
    """Applies the first ``batches`` batches, then dies mid-request (a SIGKILL, as the run sees it: the
    write reached the destination, its answer never came back)."""

    def __init__(self, base: Store, batches: int = 0) -> None:
        super().__init__()
        self.rows, self.left = base.rows, batches

    def fingerprint(self) -> Any:
        return "Store"  # the same destination, as far as the sync can tell

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        outcomes = super().send(op, records)
        with self._lock:
            if self.left <= 0:
                raise KeyboardInterrupt("killed")
            self.left -= 1
        return outcomes


def marks(dbs: tuple[Path, Path]) -> int:
    conn = sqlite3.connect(dbs[1])
    try:
        return int(conn.execute("SELECT COUNT(*) FROM opsflow_sync_marks").fetchone()[0])
    finally:
        conn.close()


def killed_after(dbs: tuple[Path, Path], *changes: str) -> Store:
    """A synced mirror; then ``changes`` to the source and a run killed right after its first batch applied."""
    dest = Store()
    run(dbs, dest, mode="mirror")
    execute(dbs, *changes)
    with pytest.raises(DestinationDown):
        run(dbs, DiesAfterApplying(dest), mode="mirror")
    return dest


def test_a_write_killed_before_its_answer_is_sent_again_even_after_a_revert(dbs: tuple[Path, Path]) -> None:
    dest = killed_after(dbs, "UPDATE accounts SET name = 'B' WHERE id = 7")
    assert dest.rows["7"]["name"] == "B" and marks(dbs) == 1  # applied, unconfirmed, marked
    execute(dbs, "UPDATE accounts SET name = 'a7' WHERE id = 7")  # back to the confirmed value
    report = run(dbs, dest, mode="mirror")
    assert dest.rows["7"]["name"] == "a7"  # the pending key was sent again although its hash matched
    assert report.counts["changed"] == 1 and marks(dbs) == 0
    assert run(dbs, dest, mode="mirror").counts["changed"] == 0


def test_a_key_created_by_a_killed_run_is_deleted_when_it_leaves_the_source(dbs: tuple[Path, Path]) -> None:
    dest = killed_after(dbs, "INSERT INTO accounts VALUES (500, 'new', 5, 'gold')")
    assert "500" in dest.rows
    execute(dbs, "DELETE FROM accounts WHERE id = 500")
    report = run(dbs, dest, mode="mirror")
    assert "500" not in dest.rows and report.counts["deleted"] == 1
    assert len(dest.rows) == 200


def test_a_killed_delete_is_repeated_or_undone(dbs: tuple[Path, Path]) -> None:
    dest = killed_after(dbs, "DELETE FROM accounts WHERE id IN (1, 2)")
    assert "1" not in dest.rows  # the delete reached the destination, unconfirmed
    execute(dbs, "INSERT INTO accounts VALUES (1, 'a1', 10, 'gold')")  # back, unchanged
    run(dbs, dest, mode="mirror")
    assert dest.rows["1"]["name"] == "a1" and "2" not in dest.rows  # 1 sent again, 2 deleted (again)
    again = run(dbs, dest, mode="mirror").counts
    assert (again["added"], again["changed"], again["deleted"]) == (0, 0, 0)


def test_a_sqlite_source_is_read_past_its_first_fetch(dbs: tuple[Path, Path]) -> None:
    """A SQLite source streamed in chunks: every chunk is read, not only the first (a mirror would
    otherwise see every row past the first fetch as gone)."""
    with SqlSource(lambda: sqlite3.connect(dbs[0]), "sqlite", fetch_size=64) as src:
        chunks = list(src.stream("SELECT id FROM accounts ORDER BY id", "reading the accounts"))
    assert [r[0] for _, rows in chunks for r in rows] == list(range(1, 201)) and len(chunks) == 4
