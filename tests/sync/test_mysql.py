"""The engine on MariaDB: source, state store (the diff pushed down) and a table destination all in one
database, every mode, and a run killed after the destination applied a batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore, StateStoreError
from airflow_opsflow.sync.deliver import DeliveryPolicy, DestinationDown
from airflow_opsflow.sync.destinations.base import Operation, Outcome, Record
from airflow_opsflow.sync.destinations.table import DatabaseTableClient
from airflow_opsflow.sync.engine import SyncRun
from airflow_opsflow.sync.mapping import Field
from airflow_opsflow.sync.plan import source_query
from airflow_opsflow.sync.spec import SyncSpec, SyncSpecError

pytestmark = pytest.mark.mariadb


@pytest.fixture
def connect(mariadb_uri: str) -> Iterator[Any]:
    import pymysql

    url = urlsplit(mariadb_uri)

    def make() -> Any:
        return pymysql.connect(host=url.hostname, port=url.port, user=url.username, database=url.path.lstrip("/"))

    conn = make()
    with conn.cursor() as cur:
        for table in ("src_accounts", "crm_accounts", "opsflow_sync_keys", "opsflow_sync_meta", "opsflow_sync_marks"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute("DELETE FROM opsflow_schema_version") if _exists(cur, "opsflow_schema_version") else None
        cur.execute("CREATE TABLE src_accounts (id INT PRIMARY KEY, name VARCHAR(50), spend DECIMAL(12, 2), "
                    "active BOOLEAN, since DATE)")
        cur.executemany("INSERT INTO src_accounts VALUES (%s, %s, %s, %s, %s)",
                        [(i, f"a{i}", i * 10.5, i % 2, f"2024-01-{i % 28 + 1:02d}") for i in range(1, 121)])
        cur.execute("CREATE TABLE crm_accounts (id INT PRIMARY KEY, name VARCHAR(50), spend VARCHAR(20), "
                    "active BOOLEAN, since DATE)")
    conn.commit()
    yield make
    conn.close()


def _exists(cur: Any, table: str) -> bool:
    cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
                (table,))
    return bool(cur.fetchone()[0])


class Killed(DatabaseTableClient):
    """Writes the first batch to the table, then dies before answering."""

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        super().send(op, records)
        raise KeyboardInterrupt("killed")


def sync(connect: Any, mode: str, dest_class: type[DatabaseTableClient] = DatabaseTableClient) -> Any:
    spec = SyncSpec.build("mysql-table", "id", {"id": "id", "name": "name", "spend": Field("spend", "decimal"),
                                                "active": Field("active", "boolean"), "since": Field("since", "date")},
                          mode=mode, max_failed=0, max_delete_share=1.0)
    dest = dest_class(connect, "mysql", "crm_accounts", ["id"])
    try:
        return SyncRun(spec, SqlSource(connect, "mysql"), source_query("mysql", None, "src_accounts", "t"),
                       lambda: StateStore(connect, "mysql"), dest, DeliveryPolicy(batch_size=25, concurrency=2),
                       pushdown_ok=True, source_table="src_accounts").run()
    finally:
        dest.close()


def rows(connect: Any, table: str) -> dict[int, tuple[Any, ...]]:
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT id, name, CAST(spend AS CHAR), active, since FROM {table}")
            return {r[0]: (r[1], str(r[2]), bool(r[3]), r[4]) for r in cur.fetchall()}
    finally:
        conn.close()


def sql(connect: Any, *statements: str) -> None:
    conn = connect()
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
    conn.commit()
    conn.close()


def test_every_mode_into_a_mariadb_table(connect: Any) -> None:
    first = sync(connect, "insert")
    assert first.diff == "pushdown" and first.counts["added"] == 120
    assert rows(connect, "crm_accounts") == rows(connect, "src_accounts")
    sql(connect, "UPDATE src_accounts SET name = 'renamed' WHERE id <= 5", "INSERT INTO src_accounts VALUES "
        "(500, 'new', 1.25, 1, '2024-02-01')")
    assert sync(connect, "insert").counts["added"] == 1  # insert: new keys only
    assert rows(connect, "crm_accounts")[1][0] == "a1"
    assert sync(connect, "update").counts["changed"] == 5  # update: changed keys
    sql(connect, "DELETE FROM src_accounts WHERE id > 110", "UPDATE src_accounts SET spend = 0 WHERE id = 7")
    report = sync(connect, "mirror")
    assert (report.counts["changed"], report.counts["deleted"]) == (1, 11)
    assert rows(connect, "crm_accounts") == rows(connect, "src_accounts")
    again = sync(connect, "upsert").counts
    assert (again["added"], again["changed"], again["deleted"]) == (0, 0, 0)


def test_a_killed_run_on_mariadb_is_repaired(connect: Any) -> None:
    sync(connect, "mirror")
    sql(connect, "UPDATE src_accounts SET name = 'B' WHERE id = 3", "INSERT INTO src_accounts VALUES "
        "(600, 'x', 1, 0, '2024-03-01')")
    with pytest.raises(DestinationDown):
        sync(connect, "mirror", Killed)
    assert rows(connect, "crm_accounts")[3][0] == "B" and 600 in rows(connect, "crm_accounts")
    sql(connect, "UPDATE src_accounts SET name = 'a3' WHERE id = 3", "DELETE FROM src_accounts WHERE id = 600")
    report = sync(connect, "mirror")  # 3 back to its confirmed value, 600 gone: both were pending
    assert (report.counts["changed"], report.counts["deleted"]) == (1, 1)
    assert rows(connect, "crm_accounts") == rows(connect, "src_accounts")


def kill(connect: Any, thread_ids: Sequence[int]) -> None:
    """``KILL`` sessions from another one (what an operator or a failover does to a worker's connection)."""
    import pymysql

    conn = connect()
    with conn.cursor() as cur:
        for thread_id in thread_ids:
            try:
                cur.execute(f"KILL {int(thread_id)}")
            except pymysql.err.OperationalError as e:
                if e.args[0] != 1094:  # unknown thread id: that session had ended already
                    raise
    conn.close()


def test_state_connection_killed_mid_sync_is_named_and_the_next_run_converges(connect: Any) -> None:
    sync(connect, "mirror")
    sql(connect, "UPDATE src_accounts SET name = 'changed' WHERE id <= 60", "DELETE FROM src_accounts WHERE id > 115")
    state_sessions: list[int] = []

    def state_connect() -> Any:
        conn = connect()
        state_sessions.append(conn.thread_id())
        return conn

    class KillsTheState(DatabaseTableClient):
        """Kills every state-store session open when each of the first two batches arrives."""

        sends = 0

        def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
            KillsTheState.sends += 1
            if KillsTheState.sends <= 2:
                kill(connect, list(state_sessions))
                state_sessions.clear()
            return super().send(op, records)

    spec = SyncSpec.build("mysql-table", "id", {"id": "id", "name": "name", "spend": Field("spend", "decimal"),
                                                "active": Field("active", "boolean"), "since": Field("since", "date")},
                          mode="mirror", max_failed=0, max_delete_share=1.0)
    dest = KillsTheState(connect, "mysql", "crm_accounts", ["id"])
    with pytest.raises(StateStoreError) as lost:
        SyncRun(spec, SqlSource(connect, "mysql"), source_query("mysql", None, "src_accounts", "t"),
                lambda: StateStore(state_connect, "mysql", label="connection 'ops_state'"), dest,
                DeliveryPolicy(batch_size=25, concurrency=2), pushdown_ok=True, source_table="src_accounts").run()
    dest.close()
    assert str(lost.value).startswith("the state database (connection 'ops_state') lost the connection while ")
    assert "OperationalError: (2013, 'Lost connection" in str(lost.value) or "(2006," in str(lost.value) \
        or "(1927," in str(lost.value)
    # Nothing half-written: the next run (the database is fine again) ends equal to the source.
    report = sync(connect, "mirror")
    assert report.counts["failed"] == 0
    assert rows(connect, "crm_accounts") == rows(connect, "src_accounts")
    again = sync(connect, "mirror").counts
    assert (again["added"], again["changed"], again["deleted"]) == (0, 0, 0)


def test_destination_connection_killed_mid_batch_is_replaced(connect: Any) -> None:
    class KilledOnce(DatabaseTableClient):
        """Its first batch finds its connection killed (by another session) just before it writes."""

        killed = False

        def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
            conn, _ = self._cursor()
            if not KilledOnce.killed:
                KilledOnce.killed = True
                kill(connect, [conn.thread_id()])
            return super().send(op, records)

    spec = SyncSpec.build("mysql-table", "id", {"id": "id", "name": "name", "spend": Field("spend", "decimal"),
                                                "active": Field("active", "boolean"), "since": Field("since", "date")})
    dest = KilledOnce(connect, "mysql", "crm_accounts", ["id"])
    try:
        report = SyncRun(spec, SqlSource(connect, "mysql"), source_query("mysql", None, "src_accounts", "t"),
                         lambda: StateStore(connect, "mysql"), dest,
                         DeliveryPolicy(batch_size=25, concurrency=2, backoff=0.01)).run()
    finally:
        dest.close()
    assert KilledOnce.killed and report.retries >= 1 and report.counts["added"] == 120
    assert rows(connect, "crm_accounts") == rows(connect, "src_accounts")


def test_missing_destination_table_fails_before_anything_is_sent(connect: Any) -> None:
    spec = SyncSpec.build("mysql-table", "id", {"id": "id", "name": "name", "nickname": "name"})
    for table, problem in (("crm_missing", "the table does not exist (ProgrammingError: (1146, "),
                           ("crm_accounts", "the table has no column(s) ['nickname']")):
        dest = DatabaseTableClient(connect, "mysql", table, ["id"], name=f"table {table!r} on connection 'crm'")
        with pytest.raises(SyncSpecError) as error:
            SyncRun(spec, SqlSource(connect, "mysql"), source_query("mysql", None, "src_accounts", "t"),
                    lambda: StateStore(connect, "mysql"), dest, DeliveryPolicy(batch_size=25)).run()
        dest.close()
        assert str(error.value).startswith(f"destination table {table!r} on connection 'crm': {problem}")
    assert rows(connect, "crm_accounts") == {}
