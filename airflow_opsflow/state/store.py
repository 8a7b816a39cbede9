"""The state store: opsflow's memory, in a SQL database the user names (never a worker's disk, never
Airflow's metadata DB).

Works on any DB-API connection whose dialect is PostgreSQL, MySQL/MariaDB or SQLite. Tables are created
and migrated on first use, in one transaction per migration step, with the schema version recorded in
``<prefix>schema_version``; a database whose version is newer than this code refuses to be used rather
than be misread. Writers use short transactions and optimistic concurrency (a ``version`` column on
every row), so concurrent tasks updating the same record are safe on all three engines and a crash
mid-update leaves the previous committed state.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from airflow_opsflow.core.cursor import Cursor, paramstyle_of
from airflow_opsflow.core.dberrors import describe, is_connection_lost, is_driver_error
from airflow_opsflow.state.schema import MIGRATIONS, SCHEMA_VERSION, already_applied, ddl

ConnectionFactory = Callable[[], Any]
_MIGRATION_LOCK = 7216450139  # an arbitrary, fixed advisory-lock key for opsflow's migrations
SUPPORTED = ("postgres", "mysql", "sqlite")


class StateStoreError(RuntimeError):
    """The state store cannot be used (unreachable, newer schema, unsupported database)."""


class ConflictError(RuntimeError):
    """Another writer changed the record first; re-read and retry."""


class StateStore:
    """Access to opsflow's tables on one database.

    :param connect: returns a new DB-API connection (e.g. ``DbApiHook.get_conn``); the store owns it.
    :param dialect: ``postgres``, ``mysql`` or ``sqlite``.
    :param prefix: table name prefix (default ``opsflow_``), so several deployments can share a schema.
    :param schema: the database schema holding the tables (default: the connection's current one).
    :param paramstyle: the driver's DB-API paramstyle (default: read from the driver module).
    :param label: names the database in errors (``connection 'ops_state'``).
    """

    def __init__(self, connect: ConnectionFactory, dialect: str, prefix: str = "opsflow_",
                 schema: str | None = None, paramstyle: str | None = None, label: str = "") -> None:
        where = f" ({label})" if label else ""
        if dialect not in SUPPORTED:
            raise StateStoreError(f"the state store{where} supports {', '.join(SUPPORTED)}, not {dialect!r}")
        if not prefix.replace("_", "").isalnum() or (schema and not schema.replace("_", "").isalnum()):
            raise StateStoreError(f"state store prefix/schema must be letters, digits and '_': {prefix!r}, {schema!r}")
        self._connect = connect
        self.dialect = dialect
        self.prefix = prefix
        self.schema = schema
        self._conn: Any = None
        self._migrated = False
        self._paramstyle = paramstyle
        self._where = where
        self.label = label

    # -- connection and transactions ---------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except Exception as e:
                raise StateStoreError(
                    f"the state database{self._where} is unreachable: {type(e).__name__}: {e}") from e
            if isinstance(self._conn, sqlite3.Connection):
                self._conn.isolation_level = None  # we issue BEGIN ourselves (IMMEDIATE: see transaction())
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with suppress(Exception):  # a connection the server dropped: nothing left to close
                conn.close()

    def table(self, name: str) -> str:
        """The qualified name of an opsflow table (identifiers validated in __init__)."""
        full = f"{self.prefix}{name}"
        return f"{self.schema}.{full}" if self.schema else full

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A read-write transaction: committed when the block ends, rolled back on any error."""
        if not self._migrated:
            self.migrate()
        with self._raw_transaction() as cur:
            yield cur

    @contextmanager
    def _raw_transaction(self) -> Iterator[Cursor]:
        conn = self._connection()
        cur = conn.cursor()
        try:
            if self.dialect == "sqlite":
                # Take the write lock up front: two deferred transactions that both read then write
                # would deadlock (SQLITE_BUSY) instead of queueing.
                cur.execute("BEGIN IMMEDIATE")
            elif self.dialect == "mysql":
                cur.execute("START TRANSACTION")
            yield Cursor(cur, self._paramstyle or paramstyle_of(conn))
            conn.commit() if self.dialect != "sqlite" else cur.execute("COMMIT")
        except BaseException as e:
            try:
                conn.rollback() if self.dialect != "sqlite" else cur.execute("ROLLBACK")
            except Exception:  # the connection is gone; the database rolled back for us
                self.close()
            if is_driver_error(e):  # every repository's errors name the database, none leaves raw
                lost = "lost the connection" if is_connection_lost(e) else "failed"
                raise StateStoreError(f"the state database{self._where} {lost}: {describe(e)}") from e
            raise
        finally:
            try:
                cur.close()
            except Exception:
                self.close()

    def retrying(self, attempts: int = 8) -> Iterator[int]:
        """``for _ in store.retrying(): try: ... break except ConflictError: continue`` helper."""
        for i in range(attempts):
            yield i
            time.sleep(min(0.01 * 2**i, 0.5))
        raise StateStoreError(f"gave up after {attempts} concurrent-update conflicts")

    # -- migrations ----------------------------------------------------------------------------------

    def version(self) -> int:
        """The schema version recorded in the database (0 or -1 when opsflow never ran there)."""
        return self._read_version()

    def _version(self, cur: Cursor) -> int:
        cur.execute(f"SELECT version FROM {self.table('schema_version')} WHERE component = ?", ("state",))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Create or upgrade the tables to ``SCHEMA_VERSION``; safe to call from many workers at once
        (the upgrade runs under a database lock and re-reads the version inside it)."""
        current = self._read_version()
        self._refuse_newer(current)
        if current == SCHEMA_VERSION:
            self._migrated = True
            return current
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_incrementing

        # A StateStoreError is final; anything else (e.g. a concurrent first CREATE TABLE: the next try sees it
        # done) is tried 3 times in all, 0.2 s then 0.4 s apart.
        retrying = Retrying(retry=retry_if_exception(lambda e: isinstance(e, Exception)
                                                     and not isinstance(e, StateStoreError)),
                            stop=stop_after_attempt(3), wait=wait_incrementing(0.2, 0.2), reraise=True,
                            sleep=time.sleep)
        try:
            return retrying(self._migrate_once)
        except StateStoreError:
            raise
        except Exception as e:  # the third try failed too
            raise StateStoreError(f"migrating the state store to version {SCHEMA_VERSION} failed: {e}") from e

    def _migrate_once(self) -> int:
        """One try of migrate(): the tables and every pending step, under the migration lock."""
        with self._raw_transaction() as cur:
            self._lock(cur)
            try:
                for statement in ddl(self, "schema_version", self.dialect):
                    cur.execute(statement)
                current = self._version(cur)
                self._refuse_newer(current)
                while current < SCHEMA_VERSION:  # each step is idempotent (MySQL commits DDL)
                    for statement in MIGRATIONS[current + 1](self, self.dialect):
                        try:
                            cur.execute(statement)
                        except Exception as e:
                            if not already_applied(self.dialect, statement, e):
                                raise
                    current += 1
                    self._set_version(cur, current)
            finally:
                self._unlock(cur)
        self._migrated = True
        return current

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"the state database has opsflow schema version {version}, newer than this opsflow knows "
                f"({SCHEMA_VERSION}): upgrade airflow-opsflow on this worker rather than risk misreading it")

    def _lock(self, cur: Cursor) -> None:
        """Serialise migrations across workers (SQLite: BEGIN IMMEDIATE already does)."""
        if self.dialect == "postgres":
            cur.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        elif self.dialect == "mysql":
            cur.execute("SELECT GET_LOCK(?, 60)", (f"opsflow_migrate_{_MIGRATION_LOCK}",))

    def _unlock(self, cur: Cursor) -> None:
        if self.dialect == "mysql":  # a session lock; PostgreSQL's ends with the transaction
            cur.execute("SELECT RELEASE_LOCK(?)", (f"opsflow_migrate_{_MIGRATION_LOCK}",))

    def _read_version(self) -> int:
        """The recorded version, 0 with an empty table, -1 when the table does not exist yet."""
        conn = self._connection()
        cur = Cursor(conn.cursor(), self._paramstyle or paramstyle_of(conn))
        try:
            return self._version(cur)
        except Exception:
            return -1
        finally:
            try:
                conn.rollback()
            except Exception:
                self.close()

    def _set_version(self, cur: Cursor, version: int) -> None:
        table = self.table("schema_version")
        cur.execute(f"UPDATE {table} SET version = ? WHERE component = ?", (version, "state"))
        if cur.rowcount == 0:
            cur.execute(f"INSERT INTO {table} (component, version) VALUES (?, ?)", ("state", version))
