"""The state store on SQLite, PostgreSQL and MariaDB: migrations, atomic updates, concurrency, the outbox."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.schema import MIGRATIONS, SCHEMA_VERSION, ddl
from airflow_opsflow.state.store import StateStore, StateStoreError
from airflow_opsflow.sync.repo import Answers, SyncRepo
from tests.conftest import Database

FP = fingerprint("payments", "check_payments", "amount_positive")
SUBJECT = Subject(FP, "payments", "check_payments", "amount_positive")


@pytest.fixture(params=["sqlite", "pg", "mariadb"])
def db(request: pytest.FixtureRequest) -> Database:
    """The state store runs on SQLite, PostgreSQL and MariaDB."""
    return request.getfixturevalue(f"{request.param}_db")  # type: ignore[no-any-return]


def _factory(db: Database, request: pytest.FixtureRequest) -> Callable[[], Any]:
    if db.name == "sqlite":
        path = str(request.getfixturevalue("tmp_path") / "ops.db")
        return lambda: sqlite3.connect(path, timeout=30)
    if db.name == "mariadb":
        import pymysql

        params = {k: getattr(db.conn, k) for k in ("host", "port", "user")}
        return lambda: pymysql.connect(**params, database="opsflow")
    import psycopg2

    uri = request.getfixturevalue("pg_uri")
    return lambda: psycopg2.connect(uri)


@pytest.fixture
def connect(db: Database, request: pytest.FixtureRequest) -> Callable[[], Any]:
    if db.name in ("postgres", "mariadb"):
        db.execute("DROP TABLE IF EXISTS opsflow_incidents, opsflow_deliveries, opsflow_schema_version, "
                   "team_a_incidents, team_a_deliveries, team_a_schema_version")
    if db.name == "postgres":
        db.execute("DROP SCHEMA IF EXISTS ops_state CASCADE")
    return _factory(db, request)


@pytest.fixture
def store(db: Database, connect: Callable[[], Any]) -> StateStore:
    return StateStore(connect, db.dialect)


def test_tables_are_created_once_with_a_version(store: StateStore, db: Database) -> None:
    assert store.version() == -1
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION
    assert store.version() == SCHEMA_VERSION
    assert db.scalar("SELECT COUNT(*) FROM opsflow_incidents") == 0


def test_prefix_and_schema(db: Database, connect: Callable[[], Any]) -> None:
    schema = None
    if db.name == "postgres":
        db.execute("CREATE SCHEMA ops_state")
        schema = "ops_state"
    store = StateStore(connect, db.dialect, prefix="team_a_", schema=schema)
    store.migrate()
    table = f"{schema + '.' if schema else ''}team_a_incidents"
    assert db.scalar(f"SELECT COUNT(*) FROM {table}") == 0
    with pytest.raises(StateStoreError, match="letters, digits"):
        StateStore(connect, db.dialect, prefix="x; drop table y")


def test_a_newer_schema_is_refused(store: StateStore, db: Database) -> None:
    store.migrate()
    db.execute(f"UPDATE opsflow_schema_version SET version = {SCHEMA_VERSION + 1}")
    fresh = StateStore(store._connect, db.dialect)
    with pytest.raises(StateStoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this opsflow"):
        IncidentRepo(fresh).get(FP)


def test_unreachable_and_unsupported() -> None:
    def refuse() -> Any:
        import psycopg2

        return psycopg2.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)

    with pytest.raises(StateStoreError, match="the state database is unreachable: OperationalError"):
        IncidentRepo(StateStore(refuse, "postgres")).get(FP)
    with pytest.raises(StateStoreError, match="supports postgres, mysql, sqlite, not 'snowflake'"):
        StateStore(refuse, "snowflake")


def test_transitions_queue_deliveries_once(store: StateStore) -> None:
    repo = IncidentRepo(store)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    [(inc, transitions)] = repo.record([(SUBJECT, Observation(True, "error", "run1", {"count": 2}))], Policy(),
                                       ["slack", "email"], now)
    assert [t.kind for t in transitions] == ["new"] and inc.status == "open"
    # the same run again (a task retry): no new transition, no new delivery
    assert repo.record([(SUBJECT, Observation(True, "error", "run1"))], Policy(), ["slack", "email"])[0][1] == []
    pending = repo.pending([FP])
    assert [(d.transition, d.route, d.status) for d in pending] == [("new", "email", "pending"),
                                                                   ("new", "slack", "pending")]
    assert repo.claim(pending[0]) and repo.claim(pending[1])
    assert not repo.claim(pending[0])  # another sender cannot take it while it is being sent
    repo.mark_failed(pending[0].delivery_id, "SMTP down")
    repo.mark_sent(pending[1].delivery_id, {"ts": "1.2"})
    [left] = repo.pending([FP])
    assert (left.route, left.status, left.attempts, left.last_error) == ("email", "failed", 1, "SMTP down")
    assert not repo.claim(pending[0])  # a stale view (attempts=0) loses to the newer state
    assert repo.claim(left)
    stored = repo.get(FP)
    assert stored is not None and stored.summary == {"count": 2} and stored.first_seen == now
    assert repo.set_refs(FP, {"slack": {"channel": "C1", "ts": "1.2"}}).refs["slack"]["ts"] == "1.2"
    assert repo.get(FP).refs == {"slack": {"channel": "C1", "ts": "1.2"}}  # type: ignore[union-attr]


def test_a_failure_mid_update_leaves_no_half_written_state(store: StateStore) -> None:
    repo = IncidentRepo(store)
    # the incident row is written, then the second delivery collides with the first: all rolled back
    with pytest.raises(Exception, match=r"(?i)unique|duplicate|constraint"):
        repo.record([(SUBJECT, Observation(True, "error", "run1"))], Policy(), ["slack", "slack"])
    assert repo.get(FP) is None
    assert repo.pending([FP]) == []


def test_concurrent_writers_lose_no_update(db: Database, connect: Callable[[], Any]) -> None:
    StateStore(connect, db.dialect).migrate()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        store = StateStore(connect, db.dialect)
        try:
            for i in range(5):
                IncidentRepo(store).record([(SUBJECT, Observation(True, "error", f"w{n}-run{i}"))], Policy(),
                                           ["slack"])
        except BaseException as e:
            errors.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    incident = IncidentRepo(StateStore(connect, db.dialect)).get(FP)
    assert incident is not None and incident.occurrences == 30  # 6 writers x 5 runs, none lost
    assert len(IncidentRepo(StateStore(connect, db.dialect)).pending([FP])) == 1  # one "new" alert


def test_healthy_checks_write_nothing(store: StateStore, db: Database) -> None:
    repo = IncidentRepo(store)
    for run in range(3):
        repo.record([(SUBJECT, Observation(False, "error", f"run{run}"))], Policy(), ["slack"])
    assert repo.get(FP) is None
    assert db.scalar("SELECT COUNT(*) FROM opsflow_incidents") == 0


def test_a_v2_sync_state_is_upgraded_in_place(db: Database, connect: Callable[[], Any]) -> None:
    # Schema v3 adds write ids and the marks table; on MySQL/MariaDB it also makes the sync tables compare
    # keys byte-wise (v2 took the server's default collation: "Ab" and "ab" could collide).
    if db.name in ("postgres", "mariadb"):
        db.execute("DROP TABLE IF EXISTS opsflow_sync_keys, opsflow_sync_meta, opsflow_sync_marks")
    old = StateStore(connect, db.dialect)
    with old._raw_transaction() as cur:
        for statement in ddl(old, "schema_version", db.dialect):
            cur.execute(statement)
        for version in (1, 2):
            for statement in MIGRATIONS[version](old, db.dialect):
                cur.execute(statement)
        old._set_version(cur, 2)
        cur.execute("INSERT INTO opsflow_sync_keys (sync_id, key_text, row_hash, status, attempts, updated_at) "
                    "VALUES ('s', 'Ab', 'h1', 'ok', 0, 'now')")
    old.close()
    store = StateStore(connect, db.dialect)
    assert store.migrate() == SCHEMA_VERSION
    repo = SyncRepo(store, "s")
    repo.record(Answers(confirmed=[("ab", "h2", None, "ok", "w1", True)]))
    known = repo.lookup(["Ab", "ab"])
    assert (known["Ab"].row_hash, known["Ab"].write_id) == ("h1", None)
    assert (known["ab"].row_hash, known["ab"].write_id) == ("h2", "w1")
    repo.mark([("w2", "upsert", ["Ab"], None)])
    assert repo.resolve_marks() == 1 and repo.lookup(["Ab"])["Ab"].status == "pending"
    store.close()


def test_a_v3_store_gains_metric_history_entities_and_reports(db: Database, connect: Callable[[], Any]) -> None:
    # v4 adds the metric history, v5 the per-entity state, v6 report deliveries; a v3 incident survives.
    from datetime import timedelta

    from airflow_opsflow.incidents.entities import Changes, Tracked
    from airflow_opsflow.incidents.entity_repo import EntityRepo
    from airflow_opsflow.monitors.detect import Point
    from airflow_opsflow.monitors.metric import Series
    from airflow_opsflow.monitors.repo import MetricRepo

    if db.name in ("postgres", "mariadb"):
        db.execute("DROP TABLE IF EXISTS opsflow_sync_keys, opsflow_sync_meta, opsflow_sync_marks, "
                   "opsflow_metric_series, opsflow_metric_points, opsflow_entity_state, opsflow_report_deliveries")
    old = StateStore(connect, db.dialect)
    with old._raw_transaction() as cur:
        for statement in ddl(old, "schema_version", db.dialect):
            cur.execute(statement)
        for version in (1, 2, 3):
            for statement in MIGRATIONS[version](old, db.dialect):
                cur.execute(statement)
        old._set_version(cur, 3)
    IncidentRepo(old).record([(SUBJECT, Observation(True, "error", "run1"))], Policy(), ["slack"])
    old.close()

    store = StateStore(connect, db.dialect)
    assert store.migrate() == SCHEMA_VERSION
    assert IncidentRepo(store).get(FP).status == "open"  # type: ignore[union-attr]
    series = Series("dag/task/orders", ("DE",))
    day = datetime(2026, 3, 2, tzinfo=UTC)
    MetricRepo(store).save(series.key, [(series, Point(day + timedelta(days=i), 10.0 + i, None, False, False))
                                        for i in range(3)])
    loaded = MetricRepo(store).load([series], day + timedelta(days=10), 2, "UTC")[series.series_id]
    assert [p.value for p in loaded] == [11.0, 12.0]
    repo = EntityRepo(store)
    opened = [Tracked(k, "open", day, "run1", None, 1.5) for k in ('["Ab"]', '["ab"]')]  # keys are case-exact
    repo.apply(FP, Changes(upsert=opened))
    repo.apply(FP, Changes(upsert=[Tracked('["ab"]', "resolved", day, "run1", None, 1.5, day, "run2")]))
    state = repo.load(FP)
    assert {k: t.status for k, t in state.items()} == {'["Ab"]': "open", '["ab"]': "resolved"}
    assert state['["Ab"]'].first_seen == day and state['["Ab"]'].amount == 1.5
    repo.apply(FP, Changes(delete=['["ab"]']))
    assert list(repo.load(FP)) == ['["Ab"]']
    from airflow_opsflow.reports.repo import ReportDeliveryRepo

    reports = ReportDeliveryRepo(store)
    reports.mark("dag/task", "run1", "slack:#finance", {"ts": "1.2"})
    reports.mark("dag/task", "run1", "slack:#finance", {"ts": "1.2"})  # a retry marking again: still one row
    assert reports.sent("dag/task", "run1", ["slack:#finance", "email:cfo"]) == {"slack:#finance"}
    assert reports.sent("dag/task", "run2", ["slack:#finance"]) == set()
    store.close()


class _FlakyConnection:
    """A SQLite connection whose first ``failures`` CREATE TABLEs raise a non-driver error (not a StateStoreError,
    so migrate() tries again); everything else passes through."""

    def __init__(self, path: str, failures: int) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.failures = failures

    def cursor(self) -> _FlakyCursor:
        return _FlakyCursor(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class _FlakyCursor:
    def __init__(self, owner: _FlakyConnection) -> None:
        self.owner = owner
        self.cur = owner.conn.cursor()

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.lstrip().upper().startswith("CREATE TABLE") and self.owner.failures > 0:
            self.owner.failures -= 1
            raise RuntimeError("flaky DDL")
        return self.cur.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)


@pytest.mark.parametrize("failures", [2, 3])
def test_migrate_tries_three_times(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    flaky = _FlakyConnection(str(tmp_path / "ops.db"), failures)
    store = StateStore(lambda: flaky, "sqlite", paramstyle="qmark")
    if failures < 3:
        assert store.migrate() == SCHEMA_VERSION and store.version() == SCHEMA_VERSION
    else:
        with pytest.raises(StateStoreError, match=f"migrating the state store to version {SCHEMA_VERSION} failed: "
                                                  "flaky DDL") as caught:
            store.migrate()
        assert isinstance(caught.value.__cause__, RuntimeError) and store.version() == -1
    assert sleeps == pytest.approx([0.2, 0.4])  # and no wait after the last try
