"""The SQL a sync runs on its source, generated per dialect.

The user's query (or table) is parsed with sqlglot and wrapped as a derived table; every identifier we
add is quoted by sqlglot and every value is a sqlglot literal, so no user text is pasted into SQL.

Keys and row hashes are computed by the source database where it has MD5 (PostgreSQL, MySQL/MariaDB):
the values' text forms are then the database's own, identical on every worker, and the hashing costs no
Python time. Elsewhere (SQLite, ...) both are computed in Python from the fetched values. The scheme in
use is recorded with the sync's state (``hash_kind``); a change of scheme resets the stored hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlglot import exp

from airflow_opsflow.core.sqlparts import literal, table_ref
from airflow_opsflow.core.sqlparts import query as parse_query

KEY, HASH = "__opsflow_key", "__opsflow_hash"
OLD_HASH, OLD_REF, OLD_STATUS = "__opsflow_old_hash", "__opsflow_old_ref", "__opsflow_old_status"
OLD_WRITE = "__opsflow_old_write"
SQL_HASH_DIALECTS = ("postgres", "mysql")


def source_query(dialect: str, sql: str | None, table: str | None, what: str) -> str:
    """The validated source as SQL text: exactly one SELECT, or ``SELECT * FROM <table>``."""
    if (sql is None) == (table is None):
        raise ValueError(f"{what}: give exactly one of sql= or table=")
    if table is not None:
        return exp.select("*").from_(table_ref(table, dialect)).sql(dialect=dialect)
    assert sql is not None
    return parse_query(sql.strip().rstrip(";"), dialect, f"{what} sql").sql(dialect=dialect)


def _ident(name: str, dialect: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def _lit(value: Any, dialect: str) -> str:
    return literal(value).sql(dialect=dialect)


def py_text(value: Any) -> str:
    """A value's text form for Python-side keys and hashes (dialects without SQL MD5)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def py_key(values: Sequence[Any]) -> str | None:
    if any(v is None for v in values):
        return None
    if len(values) == 1:
        return py_text(values[0])
    return json.dumps([py_text(v) for v in values], ensure_ascii=False)


def py_hash(digest: str, values: Sequence[Any]) -> str:
    text = "\x1f".join([digest, *("\x1e" if v is None else py_text(v) for v in values)])
    return hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def py_shard(key: str, count: int) -> int:
    return int(hashlib.md5(key.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()[:8], 16) % count


@dataclass(frozen=True)
class Plan:
    """SQL for one sync's source.

    :param dialect: the source's sqlglot dialect.
    :param source: the validated source query (see :func:`source_query`).
    :param key: the primary-key columns.
    :param values: the mapped source columns (hashed, in order).
    :param digest: the sync's configuration digest, part of every row hash.
    :param cursor: the optional ``updated_at``-style column narrowing incremental reads.
    :param shard: ``(index, count)``: this run reads only keys whose hash falls in the shard.
    :param hashable: PostgreSQL 14+: the columns hashed by value (the others by their text); None: the
        whole row is hashed as text (the scheme before, and on older servers).
    :param as_text: PostgreSQL: numeric and date columns the data queries read as their text (what the
        database sends anyway; a driver-side conversion costs a Python call per value).
    :param timestamps: PostgreSQL: timestamp columns the database formats as ``isoformat()`` text (``zoned``:
        those with a time zone): cheaper there than a Python conversion per value.
    :param plain: columns the data queries return as str, int, float, bool or None.
    """

    dialect: str
    source: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    digest: str
    cursor: str | None = None
    shard: tuple[int, int] | None = None
    hashable: frozenset[str] | None = None
    as_text: frozenset[str] = frozenset()
    timestamps: frozenset[str] = frozenset()
    zoned: frozenset[str] = frozenset()
    plain: frozenset[str] = frozenset()

    @property
    def in_sql(self) -> bool:
        """Keys and hashes come from the database (else from Python)."""
        return self.dialect in SQL_HASH_DIALECTS

    @property
    def hash_kind(self) -> str:
        if self.dialect == "postgres" and self.hashable is not None:
            return "sql-postgres-v3"
        return {"postgres": "sql-postgres-v2", "mysql": "sql-mysql-v1"}.get(self.dialect, "python-v1")

    @property
    def selected(self) -> list[str]:
        """The source columns every data query returns, in this order, before KEY (and HASH)."""
        cols = list(dict.fromkeys([*self.values, *self.key]))
        if self.cursor and self.cursor not in cols:
            cols.append(self.cursor)
        return cols

    def _q(self, name: str) -> str:
        return _ident(name, self.dialect)

    def key_sql(self, alias: str = "s") -> str:
        cols = [f"{alias}.{self._q(c)}" for c in self.key]
        if self.dialect == "postgres":  # byte-wise, as the state table's key column (see state.schema)
            if len(cols) == 1:
                return f'(CAST({cols[0]} AS TEXT) COLLATE "C")'
            nulls = " OR ".join(f"{c} IS NULL" for c in cols)
            return f'(CASE WHEN {nulls} THEN NULL ELSE CAST(ROW({", ".join(cols)}) AS TEXT) END COLLATE "C")'
        # MySQL: CONCAT is NULL when any part is.
        parts = [f"CAST({c} AS CHAR)" for c in cols]
        return parts[0] if len(parts) == 1 else f"CONCAT({', CHAR(31 USING utf8mb4), '.join(parts)})"

    def hash_sql(self, alias: str = "s") -> str:
        cols = [f"{alias}.{self._q(c)}" for c in self.values]
        digest = _lit(self.digest, self.dialect)
        if self.dialect == "postgres" and self.hashable is not None:
            # hash_record_extended: the 64-bit hash PostgreSQL keeps stable for hash partitioning, of each
            # field by its type's own hash (no text conversion: half the cost of hashing the row's text).
            # Types without one go in as text. Equal values hash alike: 1.0 and 1.00 (numeric) do.
            fields = [c if name in self.hashable else f"CAST({c} AS TEXT)"
                      for c, name in zip(cols, self.values, strict=True)]
            return f"TO_HEX(HASH_RECORD_EXTENDED(ROW(CAST({digest} AS TEXT), {', '.join(fields)}), 0))"
        if self.dialect == "postgres":
            # A row's text form quotes and separates every field unambiguously; hashtextextended is the
            # 64-bit hash PostgreSQL keeps stable across versions for hash partitioning, and costs half
            # of MD5 (a change is missed only on a 1 in 2^64 collision).
            row = f"CAST(ROW({digest}, {', '.join(cols)}) AS TEXT)"
            return f'TO_HEX(HASHTEXTEXTENDED({row} COLLATE "C", 0))'
        parts = [f"COALESCE(CAST({c} AS CHAR), CHAR(30 USING utf8mb4))" for c in cols]
        return f"MD5(CONCAT_WS(CHAR(31 USING utf8mb4), {digest}, {', '.join(parts)}))"

    def _shard_sql(self, key: str) -> str:
        assert self.shard is not None
        index, count = self.shard
        if self.dialect == "postgres":
            return f"(('x' || SUBSTR(MD5({key}), 1, 8))::BIT(32)::BIGINT % {int(count)}) = {int(index)}"
        return f"MOD(CONV(SUBSTRING(MD5({key}), 1, 8), 16, 10), {int(count)}) = {int(index)}"

    def _where(self, since: Any = None, keys: Sequence[str] | None = None) -> str:
        conds = []
        if since is not None and self.cursor:
            conds.append(f"s.{self._q(self.cursor)} >= {_lit(since, self.dialect)}")
        if self.shard and self.in_sql:
            conds.append(self._shard_sql(self.key_sql()))
        if keys is not None:
            conds.append(f"{self.key_sql()} IN ({', '.join(_lit(k, self.dialect) for k in keys)})")
        return f" WHERE {' AND '.join(conds)}" if conds else ""

    def probe_sql(self) -> str:
        return f"SELECT * FROM ({self.source}) AS s WHERE 1 = 0"

    def select_sql(self, since: Any = None, keys: Sequence[str] | None = None) -> str:
        """Rows to diff: the selected columns, then KEY and HASH when the database computes them."""
        cols = [self._value_sql(c) for c in self.selected]
        if self.in_sql:
            cols += [f"{self.key_sql()} AS {self._q(KEY)}", f"{self.hash_sql()} AS {self._q(HASH)}"]
        return f"SELECT {', '.join(cols)} FROM ({self.source}) AS s{self._where(since, keys)}"

    def _value_sql(self, name: str) -> str:
        col = f"s.{self._q(name)}"
        if name in self.as_text:
            return f"CAST({col} AS TEXT) AS {self._q(name)}"
        if name not in self.timestamps or self.dialect != "postgres":
            return col
        # isoformat(): 'YYYY-MM-DDTHH:MM:SS', '.ffffff' only when there are microseconds, '+00:00' with a
        # time zone (the session's is UTC). Infinities become datetime.max and .min, as the driver makes
        # them; years outside 1-9999 (BC, five digits), which a datetime cannot hold, keep PostgreSQL's text.
        kind, zone, utc = ("TIMESTAMPTZ", "TZH:TZM", "+00") if name in self.zoned else ("TIMESTAMP", "", "")
        low, high = f"{kind} '0001-01-01 00:00:00{utc}'", f"{kind} '10000-01-01 00:00:00{utc}'"
        whole = _lit(f'YYYY-MM-DD"T"HH24:MI:SS{zone}', "postgres")
        micro = _lit(f'YYYY-MM-DD"T"HH24:MI:SS.US{zone}', "postgres")
        offset = "+00:00" if zone else ""
        top, bottom = _lit(f"9999-12-31T23:59:59.999999{offset}", "postgres"), \
            _lit(f"0001-01-01T00:00:00{offset}", "postgres")
        return (f"CASE WHEN {col} >= {low} AND {col} < {high} THEN CASE WHEN DATE_TRUNC('second', {col}) = {col} "
                f"THEN TO_CHAR({col}, {whole}) ELSE TO_CHAR({col}, {micro}) END "
                f"WHEN {col} = {kind} 'infinity' THEN {top} WHEN {col} = {kind} '-infinity' THEN {bottom} "
                f"ELSE CAST({col} AS TEXT) END AS {self._q(name)}")

    def pushdown_sql(self, state_table: str, sync_id: str, since: Any = None, resend_all: bool = False,
                     resend: Sequence[str] = ()) -> str:
        """The diff inside the database: only new, changed, null-key, never-confirmed rows and rows whose
        state has a ``resend`` status come back."""
        d, q, lit = "d", self._q, lambda v: _lit(v, self.dialect)
        cols = [f"{d}.{q(c)}" for c in [*self.selected, KEY, HASH]]
        join = f"LEFT JOIN {state_table} st ON st.sync_id = {lit(sync_id)} AND st.key_text = {d}.{q(KEY)}"
        again = f" OR st.status IN ({', '.join(lit(v) for v in resend)})" if resend else ""
        changed = "" if resend_all else (
            f" WHERE st.row_hash IS NULL OR st.row_hash <> {d}.{q(HASH)} OR {d}.{q(KEY)} IS NULL{again}")
        return (f"SELECT {', '.join(cols)}, st.row_hash AS {q(OLD_HASH)}, st.dest_ref AS {q(OLD_REF)}, "
                f"st.status AS {q(OLD_STATUS)}, st.write_id AS {q(OLD_WRITE)} "
                f"FROM ({self.select_sql(since)}) AS {d} {join}{changed}")

    def deletes_sql(self, state_table: str, sync_id: str) -> str:
        """Stored keys the source no longer has (an anti-join: one more pass over the source)."""
        present = f"SELECT {self.key_sql()} AS k FROM ({self.source}) AS s{self._where()}"
        return (f"SELECT st.key_text, st.row_hash, st.dest_ref, st.status FROM {state_table} st "
                f"WHERE st.sync_id = {_lit(sync_id, self.dialect)} "
                f"AND NOT EXISTS (SELECT 1 FROM ({present}) AS p WHERE p.k = st.key_text)")

    def count_sql(self, since: Any = None) -> str:
        return f"SELECT COUNT(*) FROM ({self.source}) AS s{self._where(since)}"

    def max_cursor_sql(self, since: Any = None) -> str:
        assert self.cursor
        return f"SELECT MAX(s.{self._q(self.cursor)}) FROM ({self.source}) AS s{self._where(since)}"

    def duplicates_sql(self, since: Any = None, limit: int = 100_001) -> str:
        """Keys present more than once (grouped on the raw key columns: no text casts to pay for)."""
        cols = ", ".join(f"s.{self._q(c)}" for c in self.key)
        where = self._where(since)
        nulls = " AND ".join(f"s.{self._q(c)} IS NOT NULL" for c in self.key)
        where = f"{where} AND {nulls}" if where else f" WHERE {nulls}"
        key = f", {self.key_sql()}" if self.in_sql else ""
        group = f"{cols}{key}"
        return (f"SELECT {cols}{key}, COUNT(*) FROM ({self.source}) AS s{where} "
                f"GROUP BY {group} HAVING COUNT(*) > 1 LIMIT {int(limit)}")

    def unique_index_sql(self, table: str) -> str | None:
        """A query listing the column sets of ``table``'s unique indexes (None where we do not know how)."""
        ref = table_ref(table, self.dialect)
        name = _lit(ref.name, self.dialect)
        if self.dialect == "postgres":
            rel = _lit(".".join(p.name for p in ref.parts), self.dialect)
            return ("SELECT i.indexrelid, a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    f"AND a.attnum = ANY(i.indkey) WHERE i.indisunique AND i.indrelid = to_regclass({rel})")
        if self.dialect == "mysql":
            schema = _lit(ref.db, self.dialect) if ref.db else "DATABASE()"
            return ("SELECT index_name, column_name FROM information_schema.statistics "
                    f"WHERE non_unique = 0 AND table_schema = {schema} AND table_name = {name}")
        return None
