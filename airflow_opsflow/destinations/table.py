"""DatabaseTable: upsert into a table on any common-sql connection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_opsflow.destinations.base import Opened, SyncDestination


@dataclass(frozen=True)
class DatabaseTable(SyncDestination):
    """Write records into a table (PostgreSQL, MySQL/MariaDB or SQLite). Declared in the DAG; opens
    :class:`~airflow_opsflow.sync.destinations.table.DatabaseTableClient` when the task runs.

    :param conn_id: the destination database's connection. (templated)
    :param table: ``[schema.]table``; it must exist, with a unique index on ``key``. (templated)
    :param key: the destination column(s) identifying a row; they must be mapped. (templated)
    :param batch_size: rows per statement and transaction.
    """

    template_fields = ("conn_id", "table", "key")

    conn_id: str
    table: str
    key: str | Sequence[str]
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("DatabaseTable needs key= (the destination column(s) identifying a row)")
        if self.batch_size < 1:
            raise ValueError(f"DatabaseTable batch_size must be >= 1, got {self.batch_size}")

    @property
    def default_batch_size(self) -> int:  # type: ignore[override]
        return self.batch_size

    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        from airflow_opsflow.connections.sql import dialect_of, get_db_hook
        from airflow_opsflow.sync.destinations.table import DatabaseTableClient
        from airflow_opsflow.sync.ratelimit import RateLimiter

        hook = get_db_hook(self.conn_id, owner)
        keys = [self.key] if isinstance(self.key, str) else list(self.key)
        dest = DatabaseTableClient(hook.get_conn, dialect_of(hook), self.table, keys,
                                name=f"table {self.table!r} on connection {self.conn_id!r}")
        return Opened(dest, RateLimiter(), self.batch_size)

    def describe(self) -> str:
        return f"{self.conn_id}:{self.table}"
