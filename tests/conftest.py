"""Shared fixtures: an isolated Airflow, the throwaway PostgreSQL, a SQLite database per test and the clock.

Airflow reads its settings once, at import, so the environment of a private AIRFLOW_HOME is set here,
before any test module imports airflow. The metadata DB is migrated lazily, only for tests that run
DAGs (``airflow_db``), so the engine's unit tests stay fast and Airflow-free.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_opsflow_testing import mariadb
from airflow_opsflow_testing.dag_runner import airflow_env, migrate
from airflow_opsflow_testing.postgres import ENV_URI, ThrowawayPostgres

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="opsflow-test-airflow-"))
_DAGS = _HOME / "dags"
_DAGS.mkdir()
# The DAG bundle dag.test() syncs: the test DAGs and the example DAGs, as users would lay them out.
(_DAGS / "test_dags").symlink_to(ROOT / "tests" / "dags")
(_DAGS / "examples").symlink_to(ROOT / "dags_examples")
AIRFLOW_ENV = airflow_env(_HOME, _DAGS)
os.environ.update(AIRFLOW_ENV)

PG_CONN_ID = "opsflow_pg"
SQLITE_CONN_ID = "opsflow_sqlite"
# The instant every clock-sensitive test takes as "now" (ISO 8601, e.g. 2026-12-06T23:45:00Z); unset, the
# wall clock. `make test` runs the tests marked `clock` again at hard instants (tests/clock_instants.py).
CLOCK_ENV = "OPSFLOW_TEST_NOW"


def clock_now() -> datetime:
    """``OPSFLOW_TEST_NOW`` as an aware UTC datetime, else the wall clock; whole seconds either way."""
    text = os.environ.get(CLOCK_ENV, "").strip()
    if not text:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"{CLOCK_ENV}={text!r}: not an ISO 8601 instant like 2026-12-06T23:45:00Z") from None
    if value.tzinfo is None:
        raise pytest.UsageError(f"{CLOCK_ENV}={text!r} needs a UTC offset (e.g. 2026-12-06T23:45:00Z)")
    return value.astimezone(UTC).replace(microsecond=0)


# Fixtures that say what a test needs, and the marker that selects it (`make unit` runs none of them).
_NEEDS = {"airflow_db": "airflow", "pg_uri": "postgres", "pg_db": "postgres", "mariadb_uri": "mariadb",
          "mariadb_db": "mariadb", "mariadb_grants": "mariadb", "clock": "clock"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what its fixtures need: ``airflow`` (real DAG runs), ``postgres``/``mariadb`` (the
    throwaway servers; ``db`` runs on PostgreSQL in its ``pg`` case) and ``clock`` (it takes its time from the
    clock fixture, so `make test` reruns it at the hard instants, tests/clock_instants.py)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marks = {mark for fixture, mark in _NEEDS.items() if fixture in names}
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("db") == "pg":
            marks.add("postgres")
        if item.path.is_relative_to(ROOT / "tests" / "ui"):
            marks.add("airflow")
        for mark in sorted(marks):
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture
def clock() -> pendulum.DateTime:
    """The test's "now": an aware UTC ``pendulum.DateTime`` (``OPSFLOW_TEST_NOW`` when set). Seed data from it
    and pass it to ``run_dag(..., logical_date=clock)`` so the DAG run (its logical date and run_after) sees
    the same instant; never read the wall clock in a test."""
    return pendulum.instance(clock_now())


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB in the private AIRFLOW_HOME (once per session)."""
    if not (_HOME / "airflow.db").exists():
        migrate(AIRFLOW_ENV)
    return _HOME


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """The PostgreSQL started by `make test`, or one started here when run as plain pytest."""
    if os.environ.get(ENV_URI):
        yield os.environ[ENV_URI]
        return
    with ThrowawayPostgres() as pg:
        yield pg.uri


@pytest.fixture(scope="session")
def mariadb_uri() -> Iterator[str]:
    """The MariaDB started by `make test`, or one started here (its Debian binaries are needed)."""
    if os.environ.get(mariadb.ENV_URI):
        yield os.environ[mariadb.ENV_URI]
        return
    with mariadb.ThrowawayMariaDB() as server:
        yield server.uri


@dataclass
class Database:
    """One test database: a DB-API connection for set-up and asserts, and its Airflow connection id."""

    name: str
    dialect: str
    conn: Any
    conn_id: str

    def execute(self, *statements: str) -> None:
        cur = self.conn.cursor()
        for sql in statements:
            cur.execute(sql)
        self.conn.commit()
        cur.close()

    def scalar(self, sql: str) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql)
        value = cur.fetchone()[0]
        cur.close()
        self.conn.rollback()
        return value


def _connect_pg(uri: str) -> Any:
    import psycopg2

    return psycopg2.connect(uri)


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    path = tmp_path / "ops.db"
    monkeypatch.setenv(f"AIRFLOW_CONN_{SQLITE_CONN_ID.upper()}",
                       json.dumps({"conn_type": "sqlite", "host": str(path)}))
    conn = sqlite3.connect(path)
    yield Database("sqlite", "sqlite", conn, SQLITE_CONN_ID)
    conn.close()


@pytest.fixture
def pg_db(pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{PG_CONN_ID.upper()}", pg_uri)
    conn = _connect_pg(pg_uri)
    db = Database("postgres", "postgres", conn, PG_CONN_ID)
    yield db
    conn.rollback()
    conn.close()


@pytest.fixture
def mariadb_db(mariadb_uri: str) -> Iterator[Database]:
    """MariaDB through PyMySQL, for the Airflow-free engines (the state store)."""
    from urllib.parse import urlsplit

    import pymysql

    url = urlsplit(mariadb_uri)
    conn = pymysql.connect(host=url.hostname, port=url.port, user=url.username, database=url.path.lstrip("/"))
    yield Database("mariadb", "mysql", conn, "")
    conn.rollback()
    conn.close()


@pytest.fixture(params=["sqlite", "pg"])
def db(request: pytest.FixtureRequest) -> Database:
    """Each test using ``db`` runs twice: on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_db")  # type: ignore[no-any-return]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits (``time.sleep``) recorded instead of slept: retries and Retry-After honoured without waiting."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded
