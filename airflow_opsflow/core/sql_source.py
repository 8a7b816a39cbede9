"""Reading the source: one consistent, read-only snapshot, streamed with a server-side cursor.

Memory stays bounded by the fetch size whatever the table size: PostgreSQL drivers get a named
(server-side) cursor, MySQL drivers an unbuffered ``SSCursor``, SQLite streams natively; other drivers
fall back to ``fetchmany`` (some buffer the whole result client-side: said in the log).

The session pins what changes a value's text form (time zone, date style, float digits), because hashes
and keys computed in SQL must be the same bytes on every worker and every run.
"""

from __future__ import annotations

import logging
import queue
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from airflow_opsflow.core.dberrors import is_connection_lost, is_driver_error

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source query could not run (the message names the query's role and the database's error)."""


class SqlSource:
    """A read-only session on the source connection for the whole sync run (use as a context manager).

    :param connect: returns a new DB-API connection (``DbApiHook.get_conn``); the source owns it.
    :param dialect: the sqlglot dialect of the connection.
    :param fetch_size: rows per round trip of the server-side cursor.
    :param exact_text: stream PostgreSQL numerics, dates and timestamps as their exact text (what row
        hashes need); False keeps the driver's types (Decimal, datetime) for comparisons.
    :param work_mem: PostgreSQL: the session's ``work_mem`` at least this (never lowered; None: the
        server's). The pushed-down diff hashes the sync's stored keys: at the default 4 MB a 1.5M-key
        sync spills them to disk in 128 batches, a third of a no-change run; from 32 MB on it does not
        gain more (measured).
    :param label: names the database in errors (``connection 'warehouse'``).
    """

    def __init__(self, connect: Callable[[], Any], dialect: str, fetch_size: int = 10_000,
                 exact_text: bool = True, work_mem: str | None = "32MB", label: str = "") -> None:
        self._connect = connect
        self.label = label
        self.dialect = dialect
        self.fetch_size = fetch_size
        self.exact_text = exact_text
        self.work_mem = work_mem
        self.conn: Any = None
        self._driver = ""

    def __enter__(self) -> SqlSource:
        try:
            self.conn = self._connect()
        except Exception as e:
            # (not a driver's: an Airflow hook's own error, which names the connection and what to check)
            reason = _describe(e) if is_driver_error(e) else " ".join(str(e).split())
            raise SourceError(f"the source database{self._where} is unreachable: {reason}") from e
        self._driver = type(self.conn).__module__.split(".")[0]
        cur = self.conn.cursor()
        try:
            if self.dialect == "postgres":
                if getattr(self.conn, "autocommit", False):
                    self.conn.autocommit = False
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cur.execute("SET LOCAL TIME ZONE 'UTC'")
                cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
                cur.execute("SET LOCAL extra_float_digits = 1")
                # Every result is read to its end: plan cursors for all their rows, not a fast start (a
                # fast-start anti-join of the deletes query is quadratic).
                cur.execute("SET LOCAL cursor_tuple_fraction = 1.0")
                if self.work_mem and getattr(self.conn, "server_version", 0) >= 90600:  # pg_size_bytes
                    cur.execute("SELECT set_config('work_mem', %s, true) WHERE pg_size_bytes(current_setting("
                                "'work_mem')) < pg_size_bytes(%s)", (self.work_mem, self.work_mem))
            elif self.dialect == "mysql":
                cur.execute("SET SESSION time_zone = '+00:00'")
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            elif isinstance(self.conn, sqlite3.Connection):
                cur.execute("BEGIN")  # one snapshot for every query of the run (WAL or rollback journal)
        finally:
            cur.close()
        return self

    @property
    def _where(self) -> str:
        return f" ({self.label})" if self.label else ""

    def _failed(self, role: str, e: BaseException, when: str = "") -> SourceError:
        if self.label and is_connection_lost(e):
            return SourceError(f"the source database{self._where} lost the connection{when} ({role}): {_describe(e)}")
        return SourceError(f"{role} failed{when}{' on the source database' + self._where if self.label else ''}: "
                           f"{_describe(e)}")

    def __exit__(self, *exc: object) -> None:
        try:
            self.conn.rollback()
        except Exception:
            log.debug("rollback of the source session failed", exc_info=True)
        try:
            self.conn.close()
        except Exception:
            log.debug("closing the source connection failed", exc_info=True)

    def _server_cursor(self) -> Any:
        if self._driver in ("psycopg2", "psycopg"):
            cur = self.conn.cursor(name=f"opsflow_sync_{uuid.uuid4().hex[:12]}")
            cur.itersize = self.fetch_size
            if self._driver == "psycopg2" and self.exact_text:
                _numeric_and_dates_as_text(cur)
            return cur
        if self._driver == "MySQLdb":
            import MySQLdb.cursors

            return self.conn.cursor(MySQLdb.cursors.SSCursor)
        if self._driver == "pymysql":
            import pymysql.cursors

            return self.conn.cursor(pymysql.cursors.SSCursor)
        if self._driver != "sqlite3":
            log.info("driver %s has no known server-side cursor: reading with fetchmany(%d)", self._driver,
                     self.fetch_size)
        return self.conn.cursor()

    def stream(self, sql: str, role: str,
               small: int | None = None) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """Yield ``(column names, rows)`` chunks of ``sql``; ``role`` names the query in errors.

        ``small``: the result is usually at most this many rows (a diff): try a plain query with a LIMIT
        first. PostgreSQL runs cursors without parallel workers; a plain query gets them, and a result
        that fits is fetched at once. A bigger one is streamed with the server-side cursor after all.
        """
        if small is not None and self._driver == "psycopg2":
            cur = self.conn.cursor()
            try:
                _numeric_and_dates_as_text(cur)
                # MATERIALIZED: planned for the whole result (a bare LIMIT makes PostgreSQL pick a
                # fast-start nested loop, 2-3x slower when the diff is empty).
                limit = int(small) + 1
                cur.execute(f"WITH opsflow_diff AS MATERIALIZED ({sql}) SELECT * FROM opsflow_diff LIMIT {limit}")  # noqa: S608
                rows = cur.fetchall()
                names = [d[0] for d in cur.description or []]
            except Exception as e:
                raise self._failed(role, e) from e
            finally:
                cur.close()
            if len(rows) <= small:
                for start in range(0, len(rows), self.fetch_size):
                    yield names, rows[start:start + self.fetch_size]
                return
        cur = self._server_cursor()
        try:
            try:
                cur.execute(sql)
                rows = cur.fetchmany(self.fetch_size)
                names = [d[0] for d in cur.description or []]
            except Exception as e:
                raise self._failed(role, e) from e
            # (SQLite connections belong to their thread; its reads are local anyway.)
            if rows and len(rows) == self.fetch_size and self._driver != "sqlite3":
                yield names, rows
                for chunk in self._prefetched(cur, role):
                    yield names, chunk
            elif rows:
                yield names, rows
                while len(rows) == self.fetch_size:  # SQLite: the rest in this thread
                    try:
                        rows = cur.fetchmany(self.fetch_size)
                    except Exception as e:
                        raise self._failed(role, e, " while streaming") from e
                    if rows:
                        yield names, rows
        finally:
            try:
                cur.close()
            except Exception:
                log.debug("closing the source cursor failed", exc_info=True)

    def _prefetched(self, cur: Any, role: str) -> Iterator[list[tuple[Any, ...]]]:
        """The rest of a big result, fetched one chunk ahead by a thread: the database computes the next
        chunk (and the driver waits for it without the GIL) while the caller works on this one."""
        chunks: queue.Queue[list[tuple[Any, ...]] | BaseException] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def pump() -> None:
            try:
                while not stop.is_set():
                    rows = cur.fetchmany(self.fetch_size)
                    chunks.put(rows)
                    if not rows:
                        return
            except BaseException as e:  # handed to the consumer, raised there
                chunks.put(e)

        thread = threading.Thread(target=pump, name="opsflow-sync-read", daemon=True)
        thread.start()
        try:
            while True:
                item = chunks.get()
                if isinstance(item, BaseException):
                    raise self._failed(role, item, " while streaming") from item
                if not item:
                    return
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a pending put, then let the thread see ``stop``
                try:
                    chunks.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

    def column_types(self, sql: str, role: str) -> dict[str, int] | None:
        """PostgreSQL (psycopg2): the type OID of each column of ``sql``; None elsewhere."""
        if self.dialect != "postgres" or self._driver != "psycopg2":
            return None
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            return {d[0]: d[1] for d in cur.description or []}
        except Exception as e:
            raise self._failed(role, e) from e
        finally:
            cur.close()

    def hashable_columns(self, types: dict[str, int] | None) -> frozenset[str] | None:
        """PostgreSQL 14+: the columns whose type hashes by value (``hash_record_extended``), None elsewhere
        (rows are then hashed by their text form)."""
        if types is None or self.conn.server_version < 140000:
            return None
        return frozenset(name for name, oid in types.items() if oid in _HASHABLE)

    def plain_columns(self, types: dict[str, int] | None) -> frozenset[str]:
        """The columns data queries return as str, int, float, bool or None (nothing for a mapping to convert)."""
        if types is None:
            return frozenset()
        plain = _PLAIN | (_AS_TEXT if self.exact_text else frozenset())
        return frozenset(name for name, oid in types.items() if oid in plain)

    def text_columns(self, types: dict[str, int] | None) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """The columns data queries may read as text: numeric and date (their own text), timestamps (as
        isoformat text) and the timestamps with a time zone among them."""
        if types is None or not self.exact_text:
            return frozenset(), frozenset(), frozenset()
        return (frozenset(n for n, oid in types.items() if oid in (_NUMERIC, _DATE)),
                frozenset(n for n, oid in types.items() if oid in (_TIMESTAMP, _TIMESTAMPTZ)),
                frozenset(n for n, oid in types.items() if oid == _TIMESTAMPTZ))

    def query(self, sql: str, role: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """A small query, fetched whole, values typed by the driver (a cursor watermark stays a datetime)."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            names = [d[0] for d in cur.description or []]
            return names, list(cur.fetchall())
        except Exception as e:
            raise self._failed(role, e) from e
        finally:
            cur.close()


_NUMERIC, _DATE, _TIMESTAMP, _TIMESTAMPTZ = 1700, 1082, 1114, 1184
# Types psycopg2 returns as Python str/int/float/bool: bool, name, int8/2/4, text, oid, float4/8, bpchar,
# varchar; and, read as text by the data queries, numeric, date and timestamps (see Plan.timestamps).
_PLAIN = frozenset({16, 19, 20, 21, 23, 25, 26, 700, 701, 1042, 1043})
_AS_TEXT = frozenset({_NUMERIC, _DATE, _TIMESTAMP, _TIMESTAMPTZ})
# PostgreSQL's timestamp text (DateStyle ISO): date, time, up to 6 fraction digits (trailing zeros
# dropped), offset as +HH[:MM[:SS]].
_PG_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?([+-]\d\d)?(:\d\d(?::\d\d)?)?")
# Built-in types with an extended hash function (hash_record_extended hashes their values, not their
# text): bool, bytea, int8/2/4, text, float4/8, bpchar, varchar, date, time, timestamp(tz), interval,
# numeric, uuid, jsonb. Others (json, enums, domains, geometry...) are hashed through their text.
_HASHABLE = frozenset({16, 17, 20, 21, 23, 25, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1186, 1700, 2950,
                       3802})


def _numeric_and_dates_as_text(cur: Any) -> None:
    """NUMERIC and DATE values as PostgreSQL's own text, timestamps as the ISO-8601 text Python's
    ``isoformat()`` gives: what the ``auto`` cast makes of them anyway, without building a Decimal or a
    datetime per value (most of psycopg2's fetch time on money columns; a timestamp's isoformat alone
    was half of a record's mapping)."""
    import psycopg2.extensions as ext

    ext.register_type(ext.new_type((_NUMERIC, _DATE), "OPSFLOW_AS_TEXT", lambda value, _cur: value), cur)
    ext.register_type(ext.new_type((_TIMESTAMP,), "OPSFLOW_TS_ISO", _isoformat_caster(ext.PYDATETIME)), cur)
    ext.register_type(ext.new_type((_TIMESTAMPTZ,), "OPSFLOW_TSTZ_ISO", _isoformat_caster(ext.PYDATETIMETZ)), cur)


def _isoformat_caster(fallback: Any) -> Callable[[str | None, Any], str | None]:
    """A caster of PostgreSQL timestamp text to exactly ``datetime.isoformat()``'s text; anything else
    (infinity, BC, five-digit years) through psycopg2's own caster. Source values, not the state store's
    UTC text (:mod:`airflow_opsflow.core.timestamps`): a naive timestamp stays naive, an offset is kept."""

    def cast(value: str | None, cur: Any) -> str | None:
        if value is None:
            return None
        # The common shapes first, by slicing (a session in UTC): 'YYYY-MM-DD HH:MM:SS[.f]' + '+00'.
        if value[10:11] == " " and value[4:5] == "-":
            body, utc = (value[:-3], "+00:00") if value.endswith("+00") else (value, "")
            if len(body) == 19 and (utc or value[-3] not in "+-"):
                return f"{body[:10]}T{body[11:]}{utc}"
            if len(body) > 20 and body[19] == "." and body[20:].isdigit() and (utc or "+" not in body):
                return f"{body[:10]}T{body[11:19]}.{body[20:]:0<6}{utc}"
        m = _PG_TIMESTAMP.fullmatch(value)
        if m is None:
            parsed = fallback(value, cur)
            return None if parsed is None else parsed.isoformat()
        day, clock, fraction, hours, rest = m.groups()
        fraction = f".{fraction:0<6}" if fraction and fraction.strip("0") else ""
        offset = "" if hours is None else hours + (rest or ":00")
        return f"{day}T{clock}{fraction}{offset}"

    return cast


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:1000]
