"""A database that drops the sync's connection mid-run, for real (``pg_terminate_backend`` from another
session): the state database, the source, a destination table. The task says which task and which
connection and what to do, stays retryable, and the next try converges with nothing sent twice.
Configuration errors (no state database, a destination table that is not there) fail at once, unretried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from airflow_opsflow_testing.dag_runner import DagRunResult, run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from tests.conftest import Database
from tests.helpers import DAGS, load_module
from tests.sync.test_sync_dag import CONF, PATH, expected

pytestmark = pytest.mark.usefixtures("airflow_db")
dags = load_module(DAGS / "syncs.py")
STATE_DB = "opsflow_sync_state"
SLOW = "CREATE OR REPLACE FUNCTION opsflow_test_slow() RETURNS boolean AS $$ BEGIN PERFORM pg_sleep(0.005); " \
       "RETURN true; END $$ LANGUAGE plpgsql VOLATILE"


@pytest.fixture
def source_db(pg_uri: str) -> str:
    """The name of the database holding the source (and, unless moved, the state and the tables)."""
    return urlsplit(pg_uri).path.lstrip("/")


@pytest.fixture
def admin(pg_uri: str) -> Iterator[psycopg2.extensions.connection]:
    """A session of the test's own, to terminate the sync's."""
    conn = psycopg2.connect(pg_uri)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def state_db(pg_uri: str, admin: psycopg2.extensions.connection, monkeypatch: pytest.MonkeyPatch) -> str:
    """The state store in a database of its own (connection ``opsflow_state``), so it can be cut alone."""
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {STATE_DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {STATE_DB}")
    url = urlsplit(pg_uri)
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_STATE", urlunsplit(url._replace(path=f"/{STATE_DB}")))
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "opsflow_state")
    return STATE_DB


@pytest.fixture
def api(recording_http: RecordingHTTPServer, http_conn: str, pg_source: Database) -> RecordingHTTPServer:
    recording_http.keyed(PATH, key_field="id")
    return recording_http


def terminate(admin: psycopg2.extensions.connection, where: str, *params: object) -> int:
    with admin.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND {where}",
                    params)
        return len(cur.fetchall())


def kill_when_sleeping(admin: psycopg2.extensions.connection, database: str) -> Callable[[], int]:
    """Terminate the first session of ``database`` seen inside ``pg_sleep`` (a slowed query of the sync's),
    from a thread; the returned function waits for it and says how many sessions it terminated."""
    done: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            n = terminate(admin, "datname = %s AND wait_event = 'PgSleep'", database)
            if n:
                done.append(n)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def wait() -> int:
        thread.join(130)
        return sum(done)

    return wait


def log_of(capfd: pytest.CaptureFixture[str]) -> str:
    out = capfd.readouterr()
    return out.out + out.err


def retried_sync(**conf: object) -> DagRunResult:
    return run_dag(dags.retried_dag, conf={**CONF, "source": dags.HIGH_PRIORITY, **conf})


def test_state_database_dropping_the_connection_mid_sync(api: RecordingHTTPServer, pg_source: Database,
                                                         state_db: str, admin: psycopg2.extensions.connection,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    killed: list[int] = []
    lock = threading.Lock()

    def cut_the_state_database(record: object) -> bool:  # called by the API for each record it receives
        with lock:
            if not killed:
                killed.append(terminate(admin, "datname = %s", state_db))
        return False

    api.reject_when(cut_the_state_database)
    run = retried_sync()
    text = log_of(capfd)
    assert killed and killed[0] >= 1
    assert run.task_states == {"push_accounts": "success"}, text[-3000:]
    assert run.tries["push_accounts"] == 2  # the lost connection failed the first try; the retry finished
    assert ("dag 'test_sync_retried', task 'push_accounts': the state database (connection 'opsflow_state') "
            "lost the connection while") in text
    assert "Check that the state database is up and reachable from the worker; the task is retried" in text
    assert "psycopg2.errors" not in text and "AdminShutdown: terminating connection" in text
    # Converged: every record once, nothing created twice, and the state knows all of it.
    assert api.state(PATH) == expected(pg_source) and max(api.inserts(PATH).values()) == 1
    sent = len(api.requests_to(PATH))
    again = retried_sync()
    assert again.xcom("push_accounts")["counts"]["unchanged"] == 71 and len(api.requests_to(PATH)) == sent


def test_source_dropping_the_connection_mid_read(api: RecordingHTTPServer, pg_source: Database, state_db: str,
                                                 source_db: str, admin: psycopg2.extensions.connection,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    pg_source.execute(SLOW)
    slow = dags.HIGH_PRIORITY.strip() + " AND opsflow_test_slow()"
    wait = kill_when_sleeping(admin, source_db)
    run = retried_sync(source=slow)
    text = log_of(capfd)
    assert wait() == 1
    assert run.task_states == {"push_accounts": "success"} and run.tries["push_accounts"] == 2, text[-3000:]
    assert ("dag 'test_sync_retried', task 'push_accounts': the source database (connection 'opsflow_pg') "
            "lost the connection") in text
    assert "Check that the source database is up and reachable from the worker" in text
    assert "psycopg2.errors" not in text
    assert api.state(PATH) == expected(pg_source) and max(api.inserts(PATH).values()) == 1


def test_destination_table_dropping_the_connection_mid_batch(pg_source: Database, source_db: str,
                                                             admin: psycopg2.extensions.connection,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_source.conn_id)
    pg_source.execute(SLOW.replace("opsflow_test_slow() RETURNS boolean", "opsflow_test_slow_row() RETURNS trigger")
                      .replace("RETURN true", "RETURN NEW"),
                      "CREATE TRIGGER slow BEFORE INSERT ON crm_accounts FOR EACH ROW "
                      "EXECUTE FUNCTION opsflow_test_slow_row()")
    wait = kill_when_sleeping(admin, source_db)
    run = run_dag(dags.table_dag, conf=CONF)
    assert wait() >= 1  # batches' connections were cut while they wrote
    # The batch went again on a new connection, in the same try (an upsert by key is harmless twice).
    assert run.task_states == {"to_table": "success"} and run.tries["to_table"] == 1
    assert run.xcom("to_table")["counts"]["added"] == 120 and run.xcom("to_table")["retries"] >= 1
    assert pg_source.scalar("SELECT COUNT(*) FROM crm_accounts") == 120


def test_unreachable_destination_table_names_its_connection(pg_source: Database, monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_source.conn_id)
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_SQLITE", '{"conn_type": "sqlite", "host": "/nonexistent/dir/x.db"}')
    run = run_dag(dags.missing_dag, conf=CONF)
    text = log_of(capfd)
    assert run.task_states["missing_sqlite"] == "failed" and run.tries["missing_sqlite"] == 3  # retried
    [error] = {line for line in text.splitlines() if "AirflowException: dag 'test_sync_table_missing', task "
               "'missing_sqlite'" in line}
    assert error.count("task 'missing_sqlite'") == 1 and "'opsflow_sqlite'" in error
    assert "OperationalError: unable to open database file" in error


def test_missing_destination_table_or_column_fails_at_once(pg_source: Database, sqlite_db: Database,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_source.conn_id)
    run = run_dag(dags.missing_dag, conf=CONF)
    text = log_of(capfd)
    assert run.task_states == dict.fromkeys(("missing_pg", "missing_sqlite", "missing_column"), "failed")
    assert run.tries == dict.fromkeys(("missing_pg", "missing_sqlite", "missing_column"), 1)  # not retried
    head = "dag 'test_sync_table_missing', task '{}': destination table '{}' on connection '{}': "
    assert head.format("missing_pg", "crm_missing", "opsflow_pg") + "the table does not exist (UndefinedTable" in text
    assert head.format("missing_sqlite", "crm_missing", "opsflow_sqlite") + "the table does not exist (" \
        "OperationalError: no such table: crm_missing)" in text
    assert head.format("missing_column", "crm_accounts", "opsflow_pg") + "the table has no column(s) ['email']" in text
    # Checked before anything was sent: nothing written, no key recorded as sent or rejected.
    assert pg_source.scalar("SELECT COUNT(*) FROM crm_accounts") == 0
    assert pg_source.scalar("SELECT COUNT(*) FROM opsflow_sync_keys") == 0


def test_a_sync_without_a_state_database_says_how_to_configure_it(api: RecordingHTTPServer,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", raising=False)
    run = retried_sync()
    text = log_of(capfd)
    assert run.task_states == {"push_accounts": "failed"} and run.tries["push_accounts"] == 1  # no retry fixes it
    assert ("dag 'test_sync_retried', task 'push_accounts': a sync keeps its per-key state (what the destination "
            "confirmed for each key") in text
    assert "state_conn_id=" in text and "AIRFLOW__OPSFLOW__STATE_CONN_ID" in text
    assert "incidents and alerts" not in text and api.requests == []


@pytest.mark.parametrize("down", ["state", "source"])
def test_an_unreachable_database_is_named_and_retried(api: RecordingHTTPServer, pg_source: Database, down: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OPSFLOW_DOWN", "postgresql://opsflow:s3cret-pw@127.0.0.1:1/opsflow")
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", "opsflow_down" if down == "state" else pg_source.conn_id)
    run = retried_sync(**({"conn_id": "opsflow_down"} if down == "source" else {}))
    text = log_of(capfd)
    assert run.task_states == {"push_accounts": "failed"} and run.tries["push_accounts"] == 2  # retried
    [error] = {line for line in text.splitlines() if line.startswith("airflow.sdk.exceptions.AirflowException: ")}
    assert error.count("dag 'test_sync_retried', task 'push_accounts'") == 1
    assert f"the {down} database (connection 'opsflow_down') is unreachable: " in error
    assert "Connection refused" in error and "s3cret-pw" not in text and api.requests == []
