"""A read-only, time-limited session on a DB-API connection.

Checks run on production databases, so every query runs inside a read-only transaction where the
database supports one, with an optional per-statement timeout:

* PostgreSQL: ``BEGIN ... READ ONLY`` at REPEATABLE READ (one snapshot for the whole suite),
  ``SET LOCAL statement_timeout``; each query under a savepoint so one failure does not abort the rest.
* MySQL/MariaDB: ``START TRANSACTION READ ONLY``; ``max_statement_time`` (MariaDB) or
  ``max_execution_time`` (MySQL).
* SQLite: ``PRAGMA query_only``; the timeout interrupts the statement through a progress handler.
* Other dialects: queries run as they are (we cannot enforce read-only there), said once in the log.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import timedelta
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class QueryError(RuntimeError):
    pass


class ReadOnlySession:
    """Run queries on ``conn`` read-only; use as a context manager. Always rolls back at the end.

    :param conn: an open DB-API 2 connection (``DbApiHook.get_conn()``).
    :param dialect: the sqlglot dialect of the connection.
    :param statement_timeout: cancel any single statement that runs longer.
    :param read_only: set False only for databases where a read-only transaction is refused.
    """

    def __init__(self, conn: Any, dialect: str, statement_timeout: timedelta | None = None,
                 read_only: bool = True) -> None:
        self.conn = conn
        self.dialect = dialect
        self.timeout = statement_timeout
        self.read_only = read_only
        self.queries = 0
        self._cur: Any = None
        self._savepoints = dialect == "postgres"

    def __enter__(self) -> ReadOnlySession:
        self._cur = self.conn.cursor()
        ms = int(self.timeout.total_seconds() * 1000) if self.timeout else 0
        if self.dialect == "postgres":
            if getattr(self.conn, "autocommit", False):
                self._exec("BEGIN")
            mode = "ISOLATION LEVEL REPEATABLE READ" + (", READ ONLY" if self.read_only else "")
            self._exec(f"SET TRANSACTION {mode}")
            if ms:
                self._exec(f"SET LOCAL statement_timeout = {ms}")
        elif self.dialect == "mysql":
            if ms:
                self._mysql_timeout(ms)
            self._exec("START TRANSACTION READ ONLY" if self.read_only else "START TRANSACTION")
        elif self.dialect == "sqlite" and isinstance(self.conn, sqlite3.Connection):
            if self.read_only:
                self._exec("PRAGMA query_only = ON")
            if ms:
                deadline = [0.0]
                self._deadline = deadline
                self.conn.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)
        elif self.read_only:
            log.info("read-only transactions are not enforced on the %s dialect", self.dialect)
        return self

    def _mysql_timeout(self, ms: int) -> None:
        try:  # MariaDB: seconds, all statements
            self._exec(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
        except Exception:
            self._exec(f"SET SESSION max_execution_time = {ms}")  # MySQL: milliseconds, SELECT only

    def _exec(self, sql: str) -> None:
        self._cur.execute(sql)

    def query(self, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query; return column names and rows (at most ``limit``). Raises QueryError."""
        self.queries += 1
        if self._savepoints:
            self._exec("SAVEPOINT opsflow_q")
        if hasattr(self, "_deadline") and self.timeout:
            self._deadline[0] = time.monotonic() + self.timeout.total_seconds()
        try:
            self._cur.execute(sql)
            names = [d[0] for d in self._cur.description or []]
            rows = self._cur.fetchmany(limit) if limit is not None else self._cur.fetchall()
        except Exception as e:
            if self._savepoints:
                self._exec("ROLLBACK TO SAVEPOINT opsflow_q")
            raise QueryError(_describe(e, self.timeout)) from e
        finally:
            if hasattr(self, "_deadline"):
                self._deadline[0] = float("inf")
        return names, [tuple(r) for r in rows]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.dialect == "sqlite" and isinstance(self.conn, sqlite3.Connection):
                self.conn.set_progress_handler(None, 0)
                if self.read_only:
                    self._exec("PRAGMA query_only = OFF")
            self.conn.rollback()
        except Exception:  # the connection may be gone; nothing was written either way
            log.debug("rollback after checks failed", exc_info=True)
        finally:
            try:
                self._cur.close()
            except Exception:
                log.debug("closing cursor failed", exc_info=True)


def _describe(e: Exception, timeout: timedelta | None) -> str:
    text = " ".join(str(e).split())
    lowered = text.lower()
    if timeout and ("statement timeout" in lowered or "interrupted" in lowered or "max_statement_time" in lowered
                    or "maximum statement execution time" in lowered):
        return f"statement timeout ({timeout.total_seconds():g} s) exceeded: {text}"
    return f"{type(e).__name__}: {text}"[:1000]
