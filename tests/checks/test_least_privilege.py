"""The least-privilege recipes of docs/security.md, applied verbatim on real servers.

For PostgreSQL and MariaDB: create the example database ``shop`` and its owner, apply the recipe's SQL
exactly as the docs show it (airflow_opsflow_testing/least_privilege.py in the testing kit), then connect
as the checks login and assert what it can do (read the tables, run a DataCheckOperator suite) and what it cannot
(write, read server files, signal other sessions, open a second connection). The assertions on what
stays possible (own sessions, set_config, advisory locks...) pin the claims the docs make about them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from airflow_opsflow_testing import least_privilege as lp
from airflow_opsflow_testing import mariadb
from airflow_opsflow_testing.dag_runner import run_dag
from airflow_opsflow_testing.sample_data import seed

from airflow_opsflow.state.schema import SCHEMA_VERSION
from airflow_opsflow.state.store import StateStore
from tests.conftest import ROOT
from tests.helpers import DAGS, load_module, results_by_name

dags = load_module(DAGS / "check_kinds.py")
ROLES = ("opsflow_checks", "opsflow_state", "app_owner")


def test_docs_show_the_tested_recipes_verbatim() -> None:
    docs = (ROOT / "docs" / "security.md").read_text()
    missing = [name for name, sql in lp.RECIPES.items() if sql not in docs]
    assert missing == [], f"docs/security.md does not carry {missing} as tested"


def test_recipes_split_into_statements() -> None:
    hardening = lp.statements(lp.POSTGRES_PUBLIC_HARDENING)
    assert hardening[0].startswith("DO $$") and hardening[0].endswith("END $$")
    assert len(hardening) == 6
    assert len(lp.statements(lp.POSTGRES_CHECKS_ROLE)) == 8


# -- PostgreSQL ----------------------------------------------------------------------------------------

@dataclass
class PgShop:
    """The ``shop`` database with the recipe applied: URIs per login, and a superuser connection."""

    host: str
    port: int
    admin: Any  # autocommit superuser connection on shop

    def uri(self, role: str) -> str:
        return f"postgresql://{role}@{self.host}:{self.port}/shop"

    def connect(self, role: str) -> Any:
        import psycopg2

        return psycopg2.connect(self.uri(role))

    def run(self, recipe: str) -> None:
        with self.admin.cursor() as cur:
            for statement in lp.statements(recipe):
                cur.execute(statement)


def _pg_admin(uri: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(uri)
    conn.autocommit = True
    return conn


def _drop_pg_shop(server: Any) -> None:
    with server.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
        for role in ROLES:
            cur.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def pg_shop(pg_uri: str) -> Iterator[PgShop]:
    """A fresh ``shop`` owned by ``app_owner``, one table before the recipe, the sample tables after it."""
    url = urlsplit(pg_uri)
    assert url.hostname and url.port
    with closing(_pg_admin(pg_uri)) as server:
        _drop_pg_shop(server)  # a run cancelled halfway left them behind
        with server.cursor() as cur:
            cur.execute("CREATE ROLE app_owner LOGIN")
            cur.execute("CREATE DATABASE shop OWNER app_owner")
        shop = PgShop(url.hostname, url.port, _pg_admin(url._replace(path="/shop").geturl()))
        try:
            with closing(shop.connect("app_owner")) as app, app.cursor() as cur:
                cur.execute("CREATE SCHEMA sales")
                cur.execute("CREATE TABLE sales.orders (id INTEGER PRIMARY KEY, total NUMERIC(12,2))")
                cur.execute("INSERT INTO sales.orders VALUES (1, 9.5)")
                app.commit()
            shop.run(lp.POSTGRES_CHECKS_ROLE)
            shop.run(lp.POSTGRES_STATE_ROLE)
            with closing(shop.connect("app_owner")) as app:
                seed(app, problems=False)  # created after the grants: the default privileges cover them
            yield shop
        finally:
            shop.admin.close()
            _drop_pg_shop(server)


def _refused(conn: Any, sql: str) -> str:
    """Run ``sql``, expect the server to refuse it, and return its message."""
    import psycopg2

    with pytest.raises(psycopg2.Error) as err, conn.cursor() as cur:
        cur.execute(sql)
    conn.rollback()
    return str(err.value).splitlines()[0]


def _value(conn: Any, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        value = cur.fetchone()[0]
    conn.rollback()
    return value


def _pid(conn: Any) -> int:
    return int(_value(conn, "SELECT pg_backend_pid()"))


def test_postgres_checks_role_reads_and_nothing_else(pg_shop: PgShop) -> None:
    with closing(pg_shop.connect("opsflow_checks")) as checks, closing(pg_shop.connect("app_owner")) as app:
        # Reads: the table that existed when the recipe ran, and those created after it.
        assert _value(checks, "SELECT COUNT(*) FROM sales.orders") == 1
        assert _value(checks, "SELECT COUNT(*) FROM payments") == 2000
        assert _value(checks, "SHOW default_transaction_read_only") == "on"
        assert _value(checks, "SHOW statement_timeout") == "5min"
        assert _value(checks, "SHOW idle_in_transaction_session_timeout") == "10min"
        # A member of no role: not pg_signal_backend, pg_read/write_server_files, pg_execute_server_program.
        assert _value(checks, "SELECT COUNT(*) FROM pg_auth_members WHERE member = 'opsflow_checks'::regrole") == 0

        # Writes: refused by the read-only default, and by the missing privileges without it.
        assert "read-only transaction" in _refused(checks, "INSERT INTO payments (id) VALUES (-1)")
        assert "read-only transaction" in _refused(checks, "CREATE TABLE x (a INTEGER)")
        for write in ("INSERT INTO payments (id) VALUES (-1)", "UPDATE payments SET amount = 0",
                      "DELETE FROM payments", "CREATE TABLE public.x (a INTEGER)",
                      "CREATE TABLE sales.x (a INTEGER)"):
            assert "permission denied" in _refused(checks, f"SET TRANSACTION READ WRITE; {write}"), write
        # Nor can it read the state store's tables.
        assert "permission denied for schema opsflow_state" in _refused(
            checks, "SELECT * FROM opsflow_state.anything")

        # Server files and programs.
        assert "permission denied for function pg_read_file" in _refused(checks, "SELECT pg_read_file('/etc/passwd')")
        assert "permission denied for function lo_export" in _refused(checks, "SELECT lo_export(1, '/tmp/x')")
        assert "pg_write_server_files" in _refused(checks, "COPY payments TO '/tmp/opsflow-lp.csv'")
        assert "pg_execute_server_program" in _refused(checks, "COPY payments TO PROGRAM 'true'")

        # Other roles' sessions cannot be signalled: an application's, a superuser's.
        for victim in (_pid(app), _pid(pg_shop.admin)):
            message = _refused(checks, f"SELECT pg_terminate_backend({victim})")
            assert "must be a member of the role" in message or "superuser" in message
            _refused(checks, f"SELECT pg_cancel_backend({victim})")
        assert _value(app, "SELECT 1") == 1  # still alive

        # A second connection from inside the database: refused for a non-superuser without a password
        # (the throwaway server trusts loopback, so none is asked); the hardening refuses the function.
        _require_dblink(pg_shop)
        assert "password is required" in _refused(
            checks, "SELECT dblink_exec('dbname=shop user=app_owner', 'DELETE FROM payments')")

        # What stays possible with the role recipe alone (docs/security.md says so, and why it matters):
        # a session can lift its own timeouts and read-only default ...
        assert _value(checks, "SELECT set_config('statement_timeout', '0', true)") == "0"
        assert _value(checks, "SELECT set_config('default_transaction_read_only', 'off', false)") == "off"
        assert "must be set before any query" in _refused(
            checks, "SELECT set_config('transaction_read_only', 'off', true)")
        with checks.cursor() as cur:  # back to the role's default for the rest of this session
            cur.execute("RESET default_transaction_read_only")
        checks.commit()
        # ... take advisory locks the application may use, and signal sessions of its own role.
        assert _value(checks, "SELECT pg_try_advisory_xact_lock(42)") is True
        with closing(pg_shop.connect("opsflow_checks")) as sibling:
            assert _value(checks, f"SELECT pg_terminate_backend({_pid(sibling)})") is True
        assert _value(checks, "SELECT pg_notify('app_events', 'from a check')") == ""
        assert _value(checks, "SELECT pg_logical_emit_message(false, 'opsflow', 'x')") is not None
        if int(_value(checks, "SHOW server_version_num")) < 160000:
            # Before PostgreSQL 16, large objects are written even in a read-only transaction.
            with checks.cursor() as cur:
                cur.execute("SELECT current_setting('transaction_read_only'), lo_from_bytea(0, 'x')")
                read_only, oid = cur.fetchone()
            checks.commit()
            assert read_only == "on"
            assert _value(pg_shop.admin, f"SELECT lomowner::regrole::text FROM pg_largeobject_metadata "
                                         f"WHERE oid = {oid}") == "opsflow_checks"


def _require_dblink(shop: PgShop) -> None:
    available = _value(shop.admin, "SELECT COUNT(*) FROM pg_available_extensions WHERE name = 'dblink'")
    if not available:
        pytest.skip("the PostgreSQL server has no dblink extension (Debian ships it in postgresql-NN)")
    with shop.admin.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS dblink")


def test_postgres_public_hardening_closes_the_rest(pg_shop: PgShop) -> None:
    _require_dblink(pg_shop)  # installed before the hardening, as on a database that has it
    pg_shop.run(lp.POSTGRES_PUBLIC_HARDENING)
    with closing(pg_shop.connect("opsflow_checks")) as checks, \
            closing(pg_shop.connect("opsflow_checks")) as sibling:
        assert _value(checks, "SELECT COUNT(*) FROM payments") == 2000
        for call in ("dblink_exec('dbname=shop user=app_owner', 'DELETE FROM payments')",
                     "dblink_connect('dbname=shop')", "lo_from_bytea(0, 'x')", "lo_create(0)",
                     "pg_notify('app_events', 'x')", "pg_logical_emit_message(false, 'opsflow', 'x')",
                     f"pg_terminate_backend({_pid(sibling)})", f"pg_cancel_backend({_pid(sibling)})"):
            assert "permission denied for function" in _refused(checks, f"SELECT {call}"), call
        assert _value(sibling, "SELECT 1") == 1
    # Members of pg_signal_backend keep the functions through the recipe's grant.
    with pg_shop.admin.cursor() as cur:
        cur.execute("GRANT pg_signal_backend TO app_owner")
    with closing(pg_shop.connect("app_owner")) as app, closing(pg_shop.connect("opsflow_checks")) as victim:
        assert _value(app, f"SELECT pg_cancel_backend({_pid(victim)})") is True
    with pg_shop.admin.cursor() as cur:
        cur.execute("REVOKE pg_signal_backend FROM app_owner")


def test_postgres_state_role_owns_its_schema_only(pg_shop: PgShop) -> None:
    import psycopg2

    store = StateStore(lambda: psycopg2.connect(pg_shop.uri("opsflow_state")), "postgres")
    try:
        assert store.migrate() == SCHEMA_VERSION
    finally:
        store.close()
    owners = _value(pg_shop.admin, "SELECT string_agg(DISTINCT schemaname || ':' || tableowner, ',') "
                                   "FROM pg_tables WHERE tablename LIKE 'opsflow\\_%'")
    assert owners == "opsflow_state:opsflow_state"
    with closing(pg_shop.connect("opsflow_state")) as state:
        assert "permission denied for table payments" in _refused(state, "SELECT * FROM public.payments")
        assert "permission denied for schema sales" in _refused(state, "SELECT * FROM sales.orders")


@pytest.mark.usefixtures("airflow_db")
def test_postgres_checks_role_runs_every_check_kind(pg_shop: PgShop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe is sufficient: every kind of check_kinds.py passes as opsflow_checks."""
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_LP_PG_CHECKS", pg_shop.uri("opsflow_checks"))
    run = run_dag(dags.dag, conf={"conn_id": "opsflow_lp_pg_checks"})
    results = results_by_name(run.xcom("all_kinds", key="results"))
    assert {n: r["status"] for n, r in results.items()} == {n: "pass" for n in results}
    assert run.task_states == {"all_kinds": "success"}
    assert results["rows"]["observed"] == 2000


# -- MariaDB --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mariadb_grants() -> Iterator[int]:
    """A private MariaDB that enforces privileges (the shared test server skips its grant tables)."""
    if not mariadb.available():
        pytest.skip("MariaDB server binaries not installed (Debian package mariadb-server)")
    with mariadb.ThrowawayMariaDB(database="shop") as server:
        with closing(_my_connect("root", port=server.port)) as root, root.cursor() as cur:
            cur.execute("FLUSH PRIVILEGES")  # loads the grant tables: privileges are checked from now on
        yield server.port


def _my_connect(user: str, port: int, password: str = "", database: str | None = None) -> Any:
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database=database,
                           autocommit=True)


@pytest.fixture
def my_shop(mariadb_grants: int) -> Iterator[int]:
    """``shop`` with the sample tables and the recipe applied; yields the server's port."""
    port = mariadb_grants
    with closing(_my_connect("root", port)) as root:
        def drop() -> None:
            with root.cursor() as cur:
                cur.execute("DROP DATABASE IF EXISTS opsflow_state")
                cur.execute("DROP USER IF EXISTS 'opsflow_checks'@'%', 'opsflow_state'@'%'")
                cur.execute("DROP DATABASE IF EXISTS shop")
                cur.execute("CREATE DATABASE shop")
        drop()
        with closing(_my_connect("root", port, database="shop")) as app:
            seed(app, problems=False)
        with root.cursor() as cur:
            for statement in [*lp.statements(lp.MARIADB_CHECKS_USER), *lp.statements(lp.MARIADB_STATE_USER)]:
                cur.execute(statement)
        try:
            yield port
        finally:
            drop()


def _my_refused(conn: Any, sql: str) -> str:
    import pymysql

    with pytest.raises(pymysql.MySQLError) as err, conn.cursor() as cur:
        cur.execute(sql)
    return str(err.value)


def _my_value(conn: Any, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def _checks_login(port: int) -> Any:
    return _my_connect("opsflow_checks", port, lp.CHECKS_PASSWORD, "shop")


def test_mariadb_checks_user_reads_and_nothing_else(my_shop: int) -> None:
    port = my_shop
    with closing(_checks_login(port)) as checks, closing(_my_connect("root", port)) as root:
        assert _my_value(checks, "SELECT COUNT(*) FROM payments") == 2000
        assert float(_my_value(checks, "SELECT @@max_statement_time")) == 300.0
        for write in ("INSERT INTO payments (id) VALUES (-1)", "UPDATE payments SET amount = 0",
                      "DELETE FROM payments", "CREATE TABLE x (a INTEGER)", "CREATE TEMPORARY TABLE t (a INTEGER)",
                      "SELECT * FROM mysql.user", "SELECT * FROM opsflow_state.anything"):
            assert "denied" in _my_refused(checks, write), write
        # No FILE privilege: LOAD_FILE reads nothing, INTO OUTFILE/DUMPFILE are refused.
        assert _my_value(checks, "SELECT LOAD_FILE('/etc/passwd')") is None
        for into in ("OUTFILE '/tmp/opsflow-lp.csv'", "DUMPFILE '/tmp/opsflow-lp.bin'"):
            assert "FILE privilege" in _my_refused(checks, f"SELECT id FROM payments LIMIT 1 INTO {into}")
        assert "SUPER" in _my_refused(checks, "SET GLOBAL max_statement_time = 0")
        # Without PROCESS it sees only its own threads; without CONNECTION ADMIN/SUPER it kills only those.
        root_id = _my_value(root, "SELECT CONNECTION_ID()")
        assert _my_value(checks, "SELECT COUNT(*) FROM information_schema.processlist "
                                 f"WHERE id = {root_id}") == 0
        assert "not owner of thread" in _my_refused(checks, f"KILL {root_id}")
        assert "not owner of thread" in _my_refused(checks, f"KILL QUERY {root_id}")
        assert _my_value(root, "SELECT 1") == 1
        with closing(_checks_login(port)) as sibling:
            with checks.cursor() as cur:
                cur.execute(f"KILL {_my_value(sibling, 'SELECT CONNECTION_ID()')}")
            with pytest.raises(Exception):  # noqa: B017 - the driver reports the lost link its own way
                _my_value(sibling, "SELECT 1")
        # Advisory locks stay possible (the application's GET_LOCK names too).
        assert _my_value(checks, "SELECT GET_LOCK('app_lock', 0)") == 1


def test_mariadb_statement_time_limit_applies_until_the_session_lifts_it(my_shop: int) -> None:
    port = my_shop
    with closing(_my_connect("root", port)) as root, root.cursor() as cur:
        cur.execute("ALTER USER 'opsflow_checks'@'%' WITH MAX_STATEMENT_TIME 0.5")  # 300 s is long for a test
    with closing(_checks_login(port)) as checks:
        assert "max_statement_time exceeded" in _my_refused(checks, "SELECT SLEEP(3) FROM payments LIMIT 1")
        # The per-user limit is only the session's default: a session may lift it (opsflow sets its own).
        with checks.cursor() as cur:
            cur.execute("SET SESSION max_statement_time = 0")
        assert _my_value(checks, "SELECT SLEEP(0.7)") == 0


def test_mariadb_state_user_owns_its_database_only(my_shop: int) -> None:
    port = my_shop
    store = StateStore(lambda: _my_connect("opsflow_state", port, lp.STATE_PASSWORD, "opsflow_state"), "mysql")
    try:
        assert store.migrate() == SCHEMA_VERSION
        assert store.migrate() == SCHEMA_VERSION
    finally:
        store.close()
    with closing(_my_connect("opsflow_state", port, lp.STATE_PASSWORD, "opsflow_state")) as state:
        assert "denied" in _my_refused(state, "SELECT * FROM shop.payments")


@pytest.mark.usefixtures("airflow_db")
def test_mariadb_checks_user_runs_every_check_kind(my_shop: int, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"mysql://opsflow_checks:{lp.CHECKS_PASSWORD}@127.0.0.1:{my_shop}/shop"
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_LP_MARIADB_CHECKS", uri)
    run = run_dag(dags.dag, conf={"conn_id": "opsflow_lp_mariadb_checks"})
    results = results_by_name(run.xcom("all_kinds", key="results"))
    assert {n: r["status"] for n, r in results.items()} == {n: "pass" for n in results}
    assert run.task_states == {"all_kinds": "success"}


# -- SQLite ---------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("airflow_db")
def test_sqlite_read_only_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection form docs/security.md gives: the file opened with ``mode=ro``."""
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as conn:
        seed(conn, problems=False)
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_LP_SQLITE_RO",
                       json.dumps({"conn_type": "sqlite", "host": str(path), "extra": {"mode": "ro"}}))
    run = run_dag(dags.dag, conf={"conn_id": "opsflow_lp_sqlite_ro"})
    assert run.task_states == {"all_kinds": "success"}

    with closing(SqliteHook(sqlite_conn_id="opsflow_lp_sqlite_ro").get_conn()) as conn:
        assert conn.execute("SELECT COUNT(*) FROM payments").fetchone() == (2000,)
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            conn.execute("DELETE FROM payments")
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_LP_SQLITE_RO",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "typo.db"), "extra": {"mode": "ro"}}))
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):  # no empty file created instead
        SqliteHook(sqlite_conn_id="opsflow_lp_sqlite_ro").get_conn()
    assert not (tmp_path / "typo.db").exists()
