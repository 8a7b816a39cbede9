"""The state store's tables, one migration per schema version, written once in a neutral SQL and
generated for each dialect by sqlglot.

Timestamps are stored as ISO-8601 UTC text: the same bytes on every engine, sortable, and free of the
drivers' time-zone conversions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

import sqlglot


class TableNames(Protocol):
    """What the DDL needs to know of the store (its table prefix and schema); the store passes itself."""

    prefix: str
    schema: str | None

    def table(self, name: str) -> str: ...

SCHEMA_VERSION = 8

_TABLES = {
    "schema_version": """
        component VARCHAR(64) NOT NULL PRIMARY KEY,
        version INTEGER NOT NULL
    """,
    # One row per fingerprint: the incident lifecycle (airflow_opsflow.incidents.lifecycle.Incident).
    "incidents": """
        fingerprint VARCHAR(64) NOT NULL PRIMARY KEY,
        dag_id VARCHAR(250) NOT NULL,
        task_id VARCHAR(250) NOT NULL,
        check_name VARCHAR(250) NOT NULL,
        entity_key VARCHAR(250),
        status VARCHAR(16) NOT NULL,
        cycle INTEGER NOT NULL,
        severity VARCHAR(16) NOT NULL,
        fail_streak INTEGER NOT NULL,
        pass_streak INTEGER NOT NULL,
        occurrences INTEGER NOT NULL,
        failing_runs_since_alert INTEGER NOT NULL,
        first_seen VARCHAR(32),
        last_seen VARCHAR(32),
        opened_at VARCHAR(32),
        resolved_at VARCHAR(32),
        last_alert_at VARCHAR(32),
        recent_runs TEXT,
        summary TEXT,
        refs TEXT,
        row_version INTEGER NOT NULL,
        updated_at VARCHAR(32) NOT NULL
    """,
    # The outbox: every alert a transition owes to a route, written in the same transaction as the
    # transition, marked sent once the route confirmed it. A retried task sends what is still pending.
    "deliveries": """
        delivery_id VARCHAR(200) NOT NULL PRIMARY KEY,
        fingerprint VARCHAR(64) NOT NULL,
        incident_id VARCHAR(100) NOT NULL,
        transition VARCHAR(16) NOT NULL,
        route VARCHAR(100) NOT NULL,
        status VARCHAR(16) NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        result TEXT,
        created_at VARCHAR(32) NOT NULL,
        claimed_at VARCHAR(32),
        sent_at VARCHAR(32)
    """,
    # One row per reverse-ETL sync (and shard): its hashing scheme, read watermark and last run.
    "sync_meta": """
        sync_id VARCHAR(200) NOT NULL PRIMARY KEY,
        hash_kind VARCHAR(64) NOT NULL,
        watermark TEXT,
        last_full_at VARCHAR(32),
        last_run_at VARCHAR(32),
        last_counts TEXT,
        lease_owner VARCHAR(200),
        lease_at VARCHAR(32)
    """,
    # One row per key a sync has sent: the hash of the mapped fields the destination confirmed (NULL when
    # it never confirmed any), the destination's own id for the record, and the last rejection.
    "sync_keys": """
        sync_id VARCHAR(200) NOT NULL,
        key_text VARCHAR(512) NOT NULL,
        row_hash VARCHAR(32),
        dest_ref VARCHAR(200),
        status VARCHAR(8) NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        updated_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (sync_id, key_text)
    """,
    # Write-ahead marks, one row per batch a run is about to send, committed before the request goes out:
    # the write's id (part of its idempotency key), the operation, its keys and the destination ids they
    # will have if known (JSON arrays). A run that completes clears its marks; marks left by a killed run
    # show which writes may have reached the destination unconfirmed (sync_keys.write_id differs).
    "sync_marks": """
        sync_id VARCHAR(200) NOT NULL,
        write_id VARCHAR(32) NOT NULL,
        op VARCHAR(8) NOT NULL,
        key_list TEXT NOT NULL,
        ref_list TEXT,
        PRIMARY KEY (sync_id, write_id)
    """,
    # One row per metric series (a check's history key and a segment), with its newest stored bucket.
    "metric_series": """
        series_id VARCHAR(32) NOT NULL PRIMARY KEY,
        history_key VARCHAR(250) NOT NULL,
        segment TEXT NOT NULL,
        newest VARCHAR(40) NOT NULL,
        updated_at VARCHAR(32) NOT NULL
    """,
    # One row per (series, bucket): the value and the verdict it got (z, anomalous, new level), which
    # later verdicts need (anomalies are left out of training). Buckets are UTC ISO text: they sort.
    "metric_points": """
        series_id VARCHAR(32) NOT NULL,
        bucket VARCHAR(40) NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        z DOUBLE PRECISION,
        anomalous INTEGER NOT NULL,
        new_level INTEGER NOT NULL,
        updated_at VARCHAR(32) NOT NULL,
        recovered INTEGER,
        PRIMARY KEY (series_id, bucket)
    """,
    # Feedback on metric points: a person marked a flagged point "expected" (it trains as normal, and as
    # its calendar event's effect when it falls on one). Kept apart from the points, which a run rewrites.
    "metric_marks": """
        series_id VARCHAR(32) NOT NULL,
        bucket VARCHAR(40) NOT NULL,
        history_key VARCHAR(250) NOT NULL,
        mark VARCHAR(16) NOT NULL,
        marked_by VARCHAR(250) NOT NULL,
        note TEXT,
        marked_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (series_id, bucket)
    """,
    # One row per (check, entity) a per-entity check tracks: open ones, and those the last run resolved
    # (kept so that a retry of that run reports the same). Keys are JSON arrays of the key values.
    "entity_state": """
        subject VARCHAR(64) NOT NULL,
        entity_key VARCHAR(512) NOT NULL,
        status VARCHAR(8) NOT NULL,
        first_seen VARCHAR(32) NOT NULL,
        first_run VARCHAR(250) NOT NULL,
        since VARCHAR(40),
        amount DOUBLE PRECISION,
        resolved_at VARCHAR(32),
        resolved_run VARCHAR(250),
        updated_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (subject, entity_key)
    """,
    # One row per report delivery a run made (run and destination): a retried report task sends only to
    # the destinations its earlier tries did not reach.
    "report_deliveries": """
        delivery_key VARCHAR(64) NOT NULL PRIMARY KEY,
        report VARCHAR(250) NOT NULL,
        run_id VARCHAR(250) NOT NULL,
        destination VARCHAR(250) NOT NULL,
        detail TEXT,
        sent_at VARCHAR(32) NOT NULL
    """,
    # The result history (airflow_opsflow.history.repo; a documented interface: docs/history.md): one row
    # per check per task run, replaced by a retry of the run.
    "check_results": """
        result_id VARCHAR(64) NOT NULL PRIMARY KEY,
        dag_id VARCHAR(250) NOT NULL,
        task_id VARCHAR(250) NOT NULL,
        run_id VARCHAR(250) NOT NULL,
        try_number INTEGER,
        run_at VARCHAR(32),
        recorded_at VARCHAR(32) NOT NULL,
        check_name VARCHAR(250) NOT NULL,
        kind VARCHAR(32) NOT NULL,
        status VARCHAR(16) NOT NULL,
        severity VARCHAR(16),
        table_name VARCHAR(500),
        column_name VARCHAR(500),
        observed TEXT,
        observed_value DOUBLE PRECISION,
        violating_count BIGINT,
        violating_share DOUBLE PRECISION,
        rows_checked BIGINT,
        threshold VARCHAR(250),
        message TEXT,
        duration_s DOUBLE PRECISION,
        sql_hash VARCHAR(16),
        fingerprint VARCHAR(64)
    """,
    # One row per sync run (and shard), replaced by a retry of the run.
    "sync_runs": """
        run_key VARCHAR(64) NOT NULL PRIMARY KEY,
        sync_id VARCHAR(200) NOT NULL,
        dag_id VARCHAR(250) NOT NULL,
        task_id VARCHAR(250) NOT NULL,
        run_id VARCHAR(250) NOT NULL,
        try_number INTEGER,
        run_at VARCHAR(32),
        recorded_at VARCHAR(32) NOT NULL,
        status VARCHAR(16) NOT NULL,
        mode VARCHAR(16),
        full_read INTEGER,
        destination VARCHAR(250),
        added BIGINT NOT NULL,
        changed BIGINT NOT NULL,
        deleted BIGINT NOT NULL,
        unchanged BIGINT NOT NULL,
        failed BIGINT NOT NULL,
        invalid BIGINT NOT NULL,
        skipped BIGINT NOT NULL,
        rows_read BIGINT,
        requests BIGINT,
        retries INTEGER,
        rate_limited INTEGER,
        duration_s DOUBLE PRECISION,
        message TEXT,
        failures TEXT
    """,
}
# Columns added to an existing table by a later schema version: (table, column, type).
_ADDED = {3: [("sync_keys", "write_id", "VARCHAR(32)")],
          7: [("metric_points", "recovered", "INTEGER")]}


# Secondary indexes, created with their table so that every step is idempotent (MySQL commits each DDL
# statement at once, and has no CREATE INDEX IF NOT EXISTS).
_INDEXES = {"deliveries": ("deliveries_pending", "fingerprint, status"),
            "sync_keys": ("sync_keys_failed", "sync_id, status"),
            "metric_series": ("metric_series_key", "history_key"),
            # a task's rows by age: the retention's delete on every write, and "the last N runs" queries
            "check_results": ("check_results_task", "dag_id, task_id, recorded_at"),
            "sync_runs": ("sync_runs_sync", "sync_id, recorded_at")}
# Where the engine can, an index covers only the rows it looks for (a sync's few non-confirmed keys), so
# writing a million confirmed keys does not maintain a second index.
_PARTIAL = {"sync_keys": ("sync_id", "status <> 'ok'")}
# Keys compare byte-wise on PostgreSQL: the key index is hot during a sync, and a locale's collation
# costs several times more per comparison for nothing (keys are never sorted for people).
_BYTEWISE = {"sync_keys": ("sync_id", "key_text"), "sync_meta": ("sync_id",), "sync_marks": ("sync_id",),
             "entity_state": ("subject", "entity_key")}


_MYSQL_BINARY = "DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"


def ddl(store: TableNames, table: str, dialect: str) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` (and its indexes) for one of our tables, in ``dialect``."""
    neutral = f"CREATE TABLE IF NOT EXISTS {store.table(table)} ({_TABLES[table]})"
    (statement,) = sqlglot.transpile(neutral, read="postgres", write=dialect)
    suffix = ""
    if dialect == "mysql":
        # MEDIUMTEXT: MySQL's TEXT stops at 64 KB, too small for an incident's evidence.
        statement = statement.replace(" TEXT", " MEDIUMTEXT")
        if table in _BYTEWISE:  # keys compare byte-wise: the server default may be latin1 or case-blind
            suffix = f" {_MYSQL_BINARY}"
    if dialect == "postgres":
        for col in _BYTEWISE.get(table, ()):
            statement = re.sub(rf"\b{col} (VARCHAR\(\d+\))", rf'{col} \1 COLLATE "C"', statement)
    if table not in _INDEXES:
        return [statement + suffix]
    index, columns = _INDEXES[table]
    where = ""
    if table in _PARTIAL and dialect in ("postgres", "sqlite"):
        columns, condition = _PARTIAL[table]
        where = f" WHERE {condition}"
    name = f"{store.prefix}{index}"
    if dialect == "mysql":
        return [f"{statement[:-1]}, INDEX {name} ({columns})){suffix}"]
    if dialect == "sqlite":  # SQLite puts the schema on the index name, not on the table
        qualified = f"{store.schema}.{name}" if store.schema else name
        return [statement, f"CREATE INDEX IF NOT EXISTS {qualified} ON {store.prefix}{table} ({columns}){where}"]
    return [statement, f"CREATE INDEX IF NOT EXISTS {name} ON {store.table(table)} ({columns}){where}"]


def _v1(store: TableNames, dialect: str) -> list[str]:
    return [*ddl(store, "incidents", dialect), *ddl(store, "deliveries", dialect)]


def _v2(store: TableNames, dialect: str) -> list[str]:
    return [*ddl(store, "sync_meta", dialect), *ddl(store, "sync_keys", dialect)]


def _add_columns(store: TableNames, dialect: str, version: int) -> list[str]:
    exists = " IF NOT EXISTS" if dialect == "postgres" else ""  # the others: see already_applied
    return [f"ALTER TABLE {store.table(t)} ADD COLUMN{exists} {c} {kind}" for t, c, kind in _ADDED[version]]


def _v3(store: TableNames, dialect: str) -> list[str]:
    added = _add_columns(store, dialect, 3)
    if dialect == "mysql":  # v2 created them in the server's default character set (idempotent)
        added += [f"ALTER TABLE {store.table(t)} CONVERT TO {_MYSQL_BINARY.replace('DEFAULT ', '')}"
                  for t in ("sync_meta", "sync_keys")]
    return [*added, *ddl(store, "sync_marks", dialect)]


def already_applied(dialect: str, statement: str, error: Exception) -> bool:
    """A step's ALTER TABLE ... ADD COLUMN that was already made: by an interrupted earlier attempt (MySQL
    commits each DDL statement, so a step can stop half-way) or by hand. MySQL and SQLite have no
    ADD COLUMN IF NOT EXISTS; their error leaves the transaction usable."""
    return (dialect in ("mysql", "sqlite") and statement.startswith("ALTER TABLE") and " ADD COLUMN " in statement
            and "duplicate column" in str(error).lower())


def _v4(store: TableNames, dialect: str) -> list[str]:
    return [*ddl(store, "metric_series", dialect), *ddl(store, "metric_points", dialect)]


def _v5(store: TableNames, dialect: str) -> list[str]:
    return ddl(store, "entity_state", dialect)


def _v6(store: TableNames, dialect: str) -> list[str]:
    return ddl(store, "report_deliveries", dialect)


def _v7(store: TableNames, dialect: str) -> list[str]:
    # ``recovered``: the point ended an outage (the level before it was not learned); NULL in older rows.
    return [*_add_columns(store, dialect, 7), *ddl(store, "metric_marks", dialect)]


def _v8(store: TableNames, dialect: str) -> list[str]:
    return [*ddl(store, "check_results", dialect), *ddl(store, "sync_runs", dialect)]


MIGRATIONS: dict[int, Callable[[TableNames, str], list[str]]] = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7,
                                                                8: _v8}
