"""Source data for sync tests: ``accounts`` and ``invoices`` tables, fresh per test, and clean sync state."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import Database

if TYPE_CHECKING:
    from airflow_opsflow_testing.recording_http import RecordingHTTPServer

TABLES = ("accounts", "invoices", "crm_accounts")
ACCOUNTS_PATH = "/v1/accounts"


def account(i: int) -> tuple[Any, ...]:
    return (i, f"Account {i}", f"ops{i}@example{i}.com", Decimal(500 + 10 * i).quantize(Decimal("0.01")),
            "gold" if i % 3 == 0 else "silver", f"2023-01-{1 + i % 28:02d}")


def seed_accounts(db: Database, ids: range = range(1, 121)) -> None:
    """Accounts 1..120; those with total_spend >= 1000 (ids >= 50) are the high-priority ones."""
    db.execute(*(f"DROP TABLE IF EXISTS {t}" for t in TABLES))
    db.execute("CREATE TABLE accounts (account_id INTEGER, name VARCHAR(100), email VARCHAR(100), "
               "total_spend NUMERIC(12, 2), tier VARCHAR(20), customer_since DATE, updated_at TIMESTAMP)",
               "CREATE TABLE invoices (invoice_id INTEGER PRIMARY KEY, account_id INTEGER, amount NUMERIC(12, 2), "
               "status VARCHAR(20))",
               "CREATE TABLE crm_accounts (account_id INTEGER PRIMARY KEY, name VARCHAR(100), spend NUMERIC(12, 2), "
               "tier VARCHAR(20))")
    cur = db.conn.cursor()
    mark = "?" if db.dialect == "sqlite" else "%s"
    cur.executemany(f"INSERT INTO accounts VALUES ({', '.join([mark] * 6)}, CURRENT_TIMESTAMP)",
                    [account(i) for i in ids])
    cur.executemany(f"INSERT INTO invoices VALUES ({mark}, {mark}, {mark}, {mark})",
                    [(1000 + i, i, Decimal(f"{i}.50"), "failed" if i % 4 == 0 else "paid") for i in range(1, 41)])
    db.conn.commit()


@pytest.fixture
def pg_source(pg_db: Database) -> Iterator[Database]:
    """PostgreSQL with seeded tables, used as source and state store (the diff is pushed down)."""
    seed_accounts(pg_db)
    pg_db.execute("DROP TABLE IF EXISTS opsflow_sync_keys", "DROP TABLE IF EXISTS opsflow_sync_meta")
    _reset_version(pg_db)
    yield pg_db
    pg_db.conn.rollback()


def _reset_version(db: Database) -> None:
    # The sync tables were dropped: let the store re-create them (version 1 keeps the incident tables).
    try:
        db.execute("UPDATE opsflow_schema_version SET version = 1 WHERE component = 'state' AND version > 1")
    except Exception:
        db.conn.rollback()


@pytest.fixture
def api(recording_http: RecordingHTTPServer, pg_source: Database,
        monkeypatch: pytest.MonkeyPatch) -> RecordingHTTPServer:
    """The recording HTTP API keyed by ``id`` at /v1/accounts, the sync state in the PostgreSQL source (the
    diff pushed down). Tests that need another API define their own ``api``."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", pg_source.conn_id)
    recording_http.keyed(ACCOUNTS_PATH, key_field="id")
    return recording_http
