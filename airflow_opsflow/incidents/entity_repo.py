"""Per-entity incident state in the state store (see :mod:`airflow_opsflow.incidents.entities`).

One row per (check, entity). A run's changes are written in one transaction: a crash leaves the previous
run's state, and the retry recomputes the same changes.
"""

from __future__ import annotations

from airflow_opsflow.core.timestamps import from_text, now_text, to_text
from airflow_opsflow.incidents.entities import Changes, Tracked
from airflow_opsflow.state.store import StateStore

_CHUNK = 200  # keys per IN (...) list and rows per multi-row INSERT
_COLUMNS = ("subject", "entity_key", "status", "first_seen", "first_run", "since", "amount", "resolved_at",
            "resolved_run", "updated_at")


class EntityRepo:
    """Read and write the tracked entities of one check (``subject``: its incident fingerprint).

    :param store: the state store (tables are created on first use).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.table = store.table("entity_state")

    def load(self, subject: str) -> dict[str, Tracked]:
        with self.store.transaction() as cur:
            cur.execute(f"SELECT entity_key, status, first_seen, first_run, since, amount, resolved_at, resolved_run "
                        f"FROM {self.table} WHERE subject = ?", (subject,))
            rows = cur.fetchall()
        return {key: Tracked(key, status, from_text(first_seen), first_run, from_text(since),  # type: ignore[arg-type]
                             None if amount is None else float(amount), from_text(resolved_at), resolved_run)
                for key, status, first_seen, first_run, since, amount, resolved_at, resolved_run in rows}

    def apply(self, subject: str, changes: Changes) -> None:
        if not changes.upsert and not changes.delete:
            return
        now = now_text()
        gone = [*changes.delete, *(t.key for t in changes.upsert)]
        rows = [(subject, t.key, t.status, to_text(t.first_seen), t.first_run, to_text(t.since), t.amount,
                 to_text(t.resolved_at), t.resolved_run, now) for t in changes.upsert]
        with self.store.transaction() as cur:
            for i in range(0, len(gone), _CHUNK):
                chunk = gone[i:i + _CHUNK]
                cur.execute(f"DELETE FROM {self.table} WHERE subject = ? AND entity_key IN "
                            f"({', '.join('?' * len(chunk))})", (subject, *chunk))
            one = f"({', '.join('?' * len(_COLUMNS))})"
            for i in range(0, len(rows), _CHUNK):
                chunk_rows = rows[i:i + _CHUNK]
                cur.execute(f"INSERT INTO {self.table} ({', '.join(_COLUMNS)}) VALUES "
                            + ", ".join([one] * len(chunk_rows)), [v for row in chunk_rows for v in row])
