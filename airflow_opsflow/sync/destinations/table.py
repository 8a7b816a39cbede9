"""A database table on any common-sql connection (e.g. corrections back into the production database).

Each batch is one transaction: a multi-row ``INSERT ... ON CONFLICT DO UPDATE`` (PostgreSQL, SQLite) or
``ON DUPLICATE KEY UPDATE`` (MySQL/MariaDB) for upserts, ``DO NOTHING``/``INSERT IGNORE`` for inserts,
per-row ``UPDATE``/``DELETE`` by key otherwise. Upserts by key make a re-sent batch harmless.
Identifiers are quoted by sqlglot; values are always parameters. Connection-level errors are transient (a
dropped connection is replaced); data errors (constraints, types) refuse the batch, which the engine splits
down to the bad row. A missing table or column stops the run: checked before anything is sent.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from sqlglot import exp

from airflow_opsflow.core.cursor import Cursor, paramstyle_of
from airflow_opsflow.core.dberrors import describe, is_connection_lost, is_driver_error, is_undefined_object
from airflow_opsflow.core.sqlparts import table_ref
from airflow_opsflow.sync.destinations.base import (
    OK,
    BatchRejected,
    DestinationClient,
    DestinationFailed,
    Operation,
    Outcome,
    Record,
    TransientError,
)

# Retried on the same connection (the connection errors are retried on a new one: see dberrors).
_TRANSIENT = frozenset({"OperationalError", "TransactionRollbackError", "SerializationFailure", "DeadlockDetected",
                        "LockNotAvailable", "QueryCanceled"})
SUPPORTED = ("postgres", "mysql", "sqlite")


class _ConnectFailed(TransientError):
    """No connection to the destination database (retried like any transient error)."""

    def __init__(self, name: str, error: Exception) -> None:
        reason = describe(error) if is_driver_error(error) else " ".join(str(error).split())
        super().__init__(f"{name}: cannot connect: {reason}")
        self.error = error


class DatabaseTableClient(DestinationClient):
    """Write records into ``table``. The engine side of
    :class:`~airflow_opsflow.destinations.table.DatabaseTable` (its declaration, which opens it).

    :param connect: opens a DB-API connection to the destination database (one per sender thread).
    :param dialect: its sqlglot dialect (postgres, mysql or sqlite).
    :param table: ``[schema.]table``; it must exist with a unique key on ``key``.
    :param key: the destination columns identifying a row (mapped fields).
    :param name: names the destination in logs and errors.
    """

    name: ClassVar[str] = "table"
    max_batch: ClassVar[int] = 5_000
    plans_refs: ClassVar[bool] = True  # a row's ref is its key values, known before it is written

    def __init__(self, connect: Callable[[], Any], dialect: str, table: str, key: Sequence[str],
                 name: str | None = None) -> None:
        if dialect not in SUPPORTED:
            raise ValueError(f"table destination supports {', '.join(SUPPORTED)}, not {dialect!r}")
        if not key:
            raise ValueError("table destination needs key= (the destination columns identifying a row)")
        self._connect = connect
        self.dialect = dialect
        self.table = table
        self.key = list(key)
        self.name = name or f"table {table}"  # type: ignore[misc]
        self._ref = table_ref(table, dialect).sql(dialect=dialect)
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()

    def _q(self, name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=self.dialect)

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        """The key is mapped, the table exists and has every mapped column (probed before anything is sent:
        a missing table is a configuration error, not a reason to retry every batch)."""
        missing = [k for k in self.key if k not in fields]
        if missing:
            return [f"key column(s) {missing} must be mapped"]
        try:
            conn, cur = self._cursor()
        except _ConnectFailed as e:
            if not is_driver_error(e.error):  # already an error of its own (the hook's, naming the connection)
                raise e.error from None
            raise
        try:
            cur.execute(f"SELECT * FROM {self._ref} WHERE 1 = 0")
            columns = [d[0] for d in cur.raw.description or []]
        except Exception as e:
            self._drop(conn)
            if is_connection_lost(e):
                raise TransientError(f"{self.name}: {describe(e)}") from None
            if is_undefined_object(e):
                return [f"the table does not exist ({describe(e)}): create it, or fix table="]
            return [f"the table cannot be read ({describe(e)}): check it exists and this connection's user may "
                    "read and write it"]
        with contextlib.suppress(Exception):
            conn.rollback()
        fold = (lambda c: c) if self.dialect == "postgres" else str.lower  # quoted: exact on PostgreSQL only
        have = {fold(c) for c in columns}
        absent = [f for f in fields if fold(f) not in have]
        if absent:
            return [f"the table has no column(s) {absent} (it has {columns}): add them, or fix the mapping"]
        return []

    def fingerprint(self) -> Any:
        return ["table", self.table, self.key]

    def _cursor(self) -> tuple[Any, Cursor]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                return conn, Cursor(conn.cursor(), paramstyle_of(conn))
            except Exception:  # closed under us (the server dropped it): connect again
                self._drop(conn)
        try:
            conn = self._connect()
            if self.dialect == "postgres" and getattr(conn, "autocommit", False):
                conn.autocommit = False
            cur = Cursor(conn.cursor(), paramstyle_of(conn))
        except Exception as e:
            raise _ConnectFailed(self.name, e) from None
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        return conn, cur

    def _drop(self, conn: Any) -> None:
        """Forget this thread's connection (the next batch connects again)."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        conn, cur = self._cursor()
        try:
            outcomes = getattr(self, f"_{op}")(cur, records)
            conn.commit()
            return outcomes
        except Exception as e:
            lost = is_connection_lost(e) or bool(getattr(conn, "closed", 0))
            try:
                conn.rollback()
            except Exception:
                lost = True
            if lost:  # a dropped connection: the batch is sent again on a new one (an upsert by key is harmless)
                self._drop(conn)
            if is_undefined_object(e):  # the table or a column went away mid-run: no batch can succeed
                raise DestinationFailed(f"{self.name}: {describe(e)}") from None
            if lost or _TRANSIENT & {c.__name__ for c in type(e).__mro__}:
                raise TransientError(f"{self.name}: {describe(e)}") from None
            raise BatchRejected(describe(e)) from None

    def _columns(self, records: Sequence[Record]) -> list[str]:
        return list((records[0].fields or {}).keys())

    def _insert_sql(self, cols: list[str], rows: int, on_conflict: str) -> str:
        names = ", ".join(self._q(c) for c in cols)
        values = ", ".join(["(" + ", ".join("?" * len(cols)) + ")"] * rows)
        head = "INSERT IGNORE" if (self.dialect == "mysql" and on_conflict == "nothing") else "INSERT"
        sql = f"{head} INTO {self._ref} ({names}) VALUES {values}"
        others = [c for c in cols if c not in self.key] or cols[:1]
        if on_conflict == "update":
            if self.dialect == "mysql":
                sets = ", ".join(f"{self._q(c)} = VALUES({self._q(c)})" for c in others)
                return f"{sql} ON DUPLICATE KEY UPDATE {sets}"
            sets = ", ".join(f"{self._q(c)} = excluded.{self._q(c)}" for c in others)
            return f"{sql} ON CONFLICT ({', '.join(self._q(k) for k in self.key)}) DO UPDATE SET {sets}"
        if self.dialect != "mysql":
            return f"{sql} ON CONFLICT ({', '.join(self._q(k) for k in self.key)}) DO NOTHING"
        return sql

    def _write(self, cur: Cursor, records: Sequence[Record], on_conflict: str) -> list[Outcome]:
        cols = self._columns(records)
        cur.execute(self._insert_sql(cols, len(records), on_conflict),
                    [_param((r.fields or {}).get(c)) for r in records for c in cols])
        return [Outcome(ref=self._ref_of(r)) for r in records]

    def _upsert(self, cur: Cursor, records: Sequence[Record]) -> list[Outcome]:
        return self._write(cur, records, "update")

    def _insert(self, cur: Cursor, records: Sequence[Record]) -> list[Outcome]:
        return self._write(cur, records, "nothing")

    def _update(self, cur: Cursor, records: Sequence[Record]) -> list[Outcome]:
        out = []
        for r in records:
            fields = r.fields or {}
            cols = [c for c in fields if c not in self.key]
            sets = ", ".join(f"{self._q(c)} = ?" for c in cols)
            where = " AND ".join(f"{self._q(k)} = ?" for k in self.key)
            cur.execute(f"UPDATE {self._ref} SET {sets} WHERE {where}",
                        [_param(fields[c]) for c in cols] + [_param(fields[k]) for k in self.key])
            out.append(Outcome(ref=self._ref_of(r)) if cur.rowcount else Outcome("missing"))
        return out

    def _delete(self, cur: Cursor, records: Sequence[Record]) -> list[Outcome]:
        where = " AND ".join(f"{self._q(k)} = ?" for k in self.key)
        for r in records:
            if not r.ref:
                raise BatchRejected(f"no stored key values for {r.key!r}: cannot address the row to delete")
            cur.execute(f"DELETE FROM {self._ref} WHERE {where}", [_param(v) for v in json.loads(r.ref)])
        return [OK] * len(records)

    def planned_ref(self, record: Record) -> str | None:
        return self._ref_of(record)

    def _ref_of(self, r: Record) -> str:
        fields = r.fields or {}
        return json.dumps([fields.get(k) for k in self.key], default=str)

    def read(self, records: Sequence[Record]) -> dict[str, dict[str, Any] | None] | None:
        conn, cur = self._cursor()
        out: dict[str, dict[str, Any] | None] = {}
        try:
            for r in records:
                fields = r.fields or {}
                cols = list(fields)
                where = " AND ".join(f"{self._q(k)} = ?" for k in self.key)
                cur.execute(f"SELECT {', '.join(self._q(c) for c in cols)} FROM {self._ref} WHERE {where}",
                            [_param(fields[k]) for k in self.key])
                row = cur.fetchone()
                out[r.key] = None if row is None else dict(zip(cols, _plain(row), strict=True))
        finally:
            conn.rollback()
        return out

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(Exception):  # closing a dead connection
                    conn.close()
            self._conns.clear()


def _param(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _plain(row: Sequence[Any]) -> list[Any]:
    from airflow_opsflow.sync.mapping import CASTS

    return [CASTS["auto"](v) for v in row]
