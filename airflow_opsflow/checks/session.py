"""A read-only, time-limited session on a DB-API connection.

Checks run on production databases, so every query runs inside a read-only transaction where the
database supports one, with an optional per-statement timeout:

* PostgreSQL: ``BEGIN ... READ ONLY`` at REPEATABLE READ (one snapshot for the whole suite); each query
  under a savepoint so one failure does not abort the rest, with ``SET LOCAL statement_timeout`` set
  again inside that savepoint: a statement that changed the timeout (``set_config`` in a function, say)
  changes it for nothing but itself.
* MySQL/MariaDB: ``START TRANSACTION READ ONLY``; ``max_statement_time`` (MariaDB) or
  ``max_execution_time`` (MySQL), set again before every query for the same reason.
* SQLite: ``PRAGMA query_only``; the timeout interrupts the statement through a progress handler.
* Other dialects: queries run as they are (we cannot enforce read-only there), said once in the log.
"""

from __future__ import annotations

import logging
import math
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
        self.description: list[Any] = []  # the last query's cursor description (reports type columns by it)
        self._savepoints = dialect == "postgres"
        # Rounded up: 0 means "no timeout" to every database, so a tiny timeout must never round down to it.
        self._ms = math.ceil(self.timeout.total_seconds() * 1000) if self.timeout else 0
        self._deadline: list[float] | None = None
        self._mysql_var: str | None = None  # which timeout variable this server knows

    def __enter__(self) -> ReadOnlySession:
        self._cur = self.conn.cursor()
        ms = self._ms
        if self.dialect == "postgres":
            if getattr(self.conn, "autocommit", False):
                self._exec("BEGIN")
            mode = "ISOLATION LEVEL REPEATABLE READ" + (", READ ONLY" if self.read_only else "")
            self._exec(f"SET TRANSACTION {mode}")
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
        if self._mysql_var is None:
            try:  # MariaDB: seconds, all statements
                self._exec(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
                self._mysql_var = "max_statement_time"
            except Exception:
                self._exec(f"SET SESSION max_execution_time = {ms}")  # MySQL: milliseconds, SELECT only
                self._mysql_var = "max_execution_time"
        elif self._mysql_var == "max_statement_time":
            self._exec(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
        else:
            self._exec(f"SET SESSION max_execution_time = {ms}")

    def _exec(self, sql: str) -> None:
        self._cur.execute(sql)

    def query(self, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query; return column names and rows (at most ``limit``). Raises QueryError."""
        self.queries += 1
        # The timeout is set again before every statement: an earlier statement may have changed it
        # (``set_config('statement_timeout', '0', true)`` inside a function survives its savepoint).
        if self._savepoints:
            self._exec("SAVEPOINT opsflow_q")
            if self._ms:
                self._exec(f"SET LOCAL statement_timeout = {self._ms}")
        elif self.dialect == "mysql" and self._ms:
            self._mysql_timeout(self._ms)
        if self._deadline is not None and self.timeout:
            self._deadline[0] = time.monotonic() + self.timeout.total_seconds()
        try:
            self._cur.execute(sql)
            self.description = list(self._cur.description or [])
            names = [d[0] for d in self.description]
            rows = self._cur.fetchmany(limit) if limit is not None else self._cur.fetchall()
        except Exception as e:
            if self._savepoints:
                self._exec("ROLLBACK TO SAVEPOINT opsflow_q")
            raise QueryError(_describe(e, self.timeout)) from e
        finally:
            if self._deadline is not None:
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
