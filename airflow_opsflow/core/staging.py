"""Staging: an API source streamed into a throwaway on-disk SQLite database, to be read back with SQL.

The pages go to disk as they come (one transaction per ``pages_per_transaction`` pages), so memory holds
one page whatever the number of records; then a view types each column from every value it received
(from the JSON's own types where the API gives them; for HubSpot, whose properties are all text, text that
always reads as an integer is an integer, as a number a real, ``true``/``false`` a boolean),
and the engines read that view as a table through :class:`~airflow_opsflow.core.sql_source.SqlSource`
(``dialect="sqlite"``): sorted streams, ``where`` conditions and queries work as on any database.

Records are written to a raw table of untyped columns (``c0, c1...``, added as new fields appear: an
export's later records may carry fields its first did not), keyed by the source's record id when it has
one (a record that comes again replaces the earlier). The file is the caller's to remove
(:meth:`StagedTable.remove`, or use the table as a context manager).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_opsflow.core.api_source import ApiSource

log = logging.getLogger(__name__)

RAW = "opsflow_raw"
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")  # as an integer prints: no leading zero, no sign but minus
_REAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INT64 = 2**63


@dataclass
class StagedTable:
    """A staged source: the SQLite file and the typed view to read.

    :attr table: the view's name (the source's object or export, e.g. ``Account``, ``tickets``).
    :attr columns: its columns, in the order they first came.
    :attr types: each column's type: ``integer``, ``real``, ``boolean`` (0/1) or ``text``.
    """

    path: str
    table: str
    source: str
    columns: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    rows: int = 0  # distinct records staged (before the source's exclusions)
    records: int = 0  # records received
    pages: int = 0
    largest_page: int = 0
    requests: int = 0
    seconds: float = 0.0

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def remove(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path + suffix)

    def __enter__(self) -> StagedTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def table_name(name: str) -> str:
    """A plain SQL name for the staged view (``2-1234`` -> ``t_2_1234``)."""
    plain = re.sub(r"\W", "_", name) or "records"
    return plain if not plain[0].isdigit() else f"t_{plain}"


def stage(source: ApiSource, directory: str | None = None, pages_per_transaction: int = 20) -> StagedTable:
    """Stream ``source`` into a new SQLite file; the file is removed again if staging fails."""
    fd, path = tempfile.mkstemp(prefix="opsflow-stage-", suffix=".db", dir=directory)
    os.close(fd)
    staged = StagedTable(path, table_name(source.table), source.describe())
    started = time.perf_counter()
    try:
        writer = _Writer(sqlite3.connect(path, isolation_level=None), source.key is not None, source.typed_values)
        try:
            for name in source.columns:
                writer.column(name)
            writer.begin()
            for page in source.pages():
                writer.write(page, source.key)
                staged.pages += 1
                staged.records += len(page)
                staged.largest_page = max(staged.largest_page, len(page))
                if staged.pages % pages_per_transaction == 0:
                    writer.commit()
                    writer.begin()
            writer.commit()
            staged.rows = writer.count()
            staged.columns = [name for name, _ in writer.names.values()]
            staged.types = writer.view(staged.table, source.exclude)
        finally:
            writer.conn.close()
    except BaseException:
        staged.remove()
        raise
    staged.requests = source.requests
    staged.seconds = round(time.perf_counter() - started, 3)
    log.info("staged %s: %d records (%d pages, %d requests) in %s", staged.source, staged.rows, staged.pages,
             staged.requests, path)
    return staged


class _Writer:
    def __init__(self, conn: sqlite3.Connection, keyed: bool, typed: bool = False) -> None:
        self.conn = conn
        self.keyed = keyed
        self.typed = typed
        # A throwaway file: nothing to recover after a crash, so no journal and no syncs.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"CREATE TABLE {RAW} (k UNIQUE)" if keyed else f"CREATE TABLE {RAW} (k)")
        self.names: dict[str, tuple[str, str]] = {}  # lower-case name -> (name, raw column)
        self.kinds: dict[str, set[str]] = {}  # raw column -> kinds of its non-NULL values
        self._insert = ""

    def column(self, name: str) -> str:
        """The raw column of ``name`` (SQLite names ignore case: ``Id`` and ``id`` are one column)."""
        found = self.names.get(name.lower())
        if found is not None:
            return found[1]
        raw = f"c{len(self.names)}"
        self.conn.execute(f"ALTER TABLE {RAW} ADD COLUMN {raw}")
        self.names[name.lower()] = (name, raw)
        self.kinds[raw] = set()
        self._insert = ""
        return raw

    def begin(self) -> None:
        self.conn.execute("BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def write(self, page: list[dict[str, Any]], key: str | None) -> None:
        for record in page:
            for name in record:
                if name.lower() not in self.names:
                    self.column(name)
        raws = [raw for _, raw in self.names.values()]
        if not self._insert:
            verb = "INSERT OR REPLACE" if self.keyed else "INSERT"
            self._insert = (f"{verb} INTO {RAW} (k, {', '.join(raws)}) "
                            f"VALUES ({', '.join('?' * (len(raws) + 1))})")
        rows = []
        for record in page:
            values: dict[str, Any] = {}
            for name, value in record.items():
                raw = self.names[name.lower()][1]
                values[raw] = stored = _stored(value)
                if stored is not None:
                    self.kinds[raw].add(_json_kind(value) if self.typed else _kind(stored))
            k = record.get(key) if key is not None else None
            rows.append((None if k is None else str(k), *(values.get(raw) for raw in raws)))
        self.conn.executemany(self._insert, rows)

    def count(self) -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {RAW}").fetchone()[0])  # noqa: S608

    def view(self, table: str, exclude: tuple[str, str] | None) -> dict[str, str]:
        """Create the typed view ``table``; return each column's type."""
        types: dict[str, str] = {}
        selects = []
        for name, raw in self.names.values():
            types[name] = kind = _column_type(self.kinds[raw])
            selects.append(f"{_CAST[kind].format(col=raw)} AS {_quote(name)}")
        where = ""
        if exclude is not None and exclude[0].lower() in self.names:
            where = " WHERE " + exclude[1].format(col=self.names[exclude[0].lower()][1])
        columns = ", ".join(selects) or "k AS id"
        self.conn.execute(f"CREATE VIEW {_quote(table)} AS SELECT {columns} FROM {RAW}{where}")  # noqa: S608
        return types


_CAST = {"integer": "CAST({col} AS INTEGER)", "real": "CAST({col} AS REAL)", "text": "CAST({col} AS TEXT)",
         "boolean": "CASE {col} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END"}


def _stored(value: Any) -> Any:
    """What the raw table keeps: booleans as ``true``/``false`` (like HubSpot's text), integers too big
    for SQLite as text, other values as they came."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if value is None or isinstance(value, (str, float)):
        return value
    return str(value)


def _json_kind(value: Any) -> str:
    """The kind of a value whose JSON said its type: text stays text, however it reads."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if -_INT64 <= value < _INT64 else "text"
    return "real" if isinstance(value, float) else "text"


def _kind(value: Any) -> str:
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if value in ("true", "false"):
        return "boolean"
    if _INTEGER.fullmatch(value):
        return "integer" if -_INT64 <= int(value) < _INT64 else "text"
    if _REAL.fullmatch(value):
        return "real"
    return "text"


def _column_type(kinds: set[str]) -> str:
    if kinds == {"boolean"}:
        return "boolean"
    if kinds <= {"integer"}:
        return "integer" if kinds else "text"
    if kinds <= {"integer", "real"}:
        return "real"
    return "text"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
