"""Per-entity incident state in the state store (see :mod:`airflow_opsflow.incidents.entities`).

One row per (check, entity). A run's changes are written in one transaction: a crash leaves the previous
run's state, and the retry recomputes the same changes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_opsflow.core.timestamps import from_text, now_text, to_text
from airflow_opsflow.incidents.entities import Changes, Tracked
from airflow_opsflow.state.store import StateStore

_CHUNK = 200  # keys per IN (...) list and rows per multi-row INSERT
_COLUMNS = ("subject", "entity_key", "status", "first_seen", "first_run", "since", "amount", "resolved_at",
            "resolved_run", "updated_at")


@dataclass(frozen=True)
class EntityQuery:
    """Which tracked entities to list (the Ops view's filters; every field optional but ``dag_ids``).

    :param dag_ids: only entities of checks in these DAGs (those the reader may see); empty: none.
    :param task_id: the task (its mapped instances too: ``task[3]``).
    :param status: ``open`` or ``resolved`` (those the last run resolved); None: both.
    :param subject: one check's entities (its incident fingerprint).
    :param since: stuck since (the entity's own ``since`` time, else when a run first saw it) at or after.
    :param until: ... at or before.
    """

    dag_ids: Collection[str]
    task_id: str | None = None
    check: str | None = None
    status: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EntityRecord:
    """One tracked entity with its check (``subject``: the check's incident fingerprint)."""

    subject: str
    dag_id: str
    task_id: str
    check_name: str
    entity: Tracked

    @property
    def start(self) -> datetime:
        """Since when it is stuck: its own ``since`` time, else when a run first saw it."""
        return self.entity.since or self.entity.first_seen


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

    # -- reading for people (the Ops view): SELECTs only -------------------------------------------------

    def find(self, query: EntityQuery, limit: int | None = None) -> tuple[list[EntityRecord], bool]:
        """The entities matching ``query``, the most money at stake first (no amount last), then the oldest;
        and whether more than ``limit`` matched (the list is cut there)."""
        where, params = self._where(query)
        if where is None:
            return [], False
        incidents = self.store.table("incidents")
        sql = (f"SELECT e.subject, i.dag_id, i.task_id, i.check_name, {', '.join('e.' + c for c in _READ)} "
               f"FROM {self.table} e JOIN {incidents} i ON i.fingerprint = e.subject WHERE {where} "
               "ORDER BY CASE WHEN e.amount IS NULL THEN 1 ELSE 0 END, e.amount DESC, "
               "COALESCE(e.since, e.first_seen), e.subject, e.entity_key" + (" LIMIT ?" if limit is not None else ""))
        with self.store.transaction() as cur:
            cur.execute(sql, [*params, *([limit + 1] if limit is not None else [])])
            rows = cur.fetchall()
        found = [EntityRecord(r[0], r[1], r[2], r[3], _tracked(r[4:])) for r in rows]
        if limit is not None and len(found) > limit:
            return found[:limit], True
        return found, False

    def totals(self, query: EntityQuery) -> list[tuple[str, datetime, float | None]]:
        """(subject, stuck since, amount) of every entity matching ``query``: the few columns totals need."""
        where, params = self._where(query)
        if where is None:
            return []
        incidents = self.store.table("incidents")
        with self.store.transaction() as cur:
            cur.execute(f"SELECT e.subject, COALESCE(e.since, e.first_seen), e.amount FROM {self.table} e "
                        f"JOIN {incidents} i ON i.fingerprint = e.subject WHERE {where}", params)
            rows = cur.fetchall()
        return [(subject, from_text(start), None if amount is None else float(amount))  # type: ignore[misc]
                for subject, start, amount in rows]

    def _where(self, q: EntityQuery) -> tuple[str | None, list[Any]]:
        dags = sorted(set(q.dag_ids))
        if not dags:
            return None, []
        parts = [f"i.dag_id IN ({', '.join('?' * len(dags))})"]
        params: list[Any] = list(dags)
        if q.task_id is not None:
            mapped = f"{q.task_id}["  # a mapped instance's checks are keyed task[index]
            parts.append("(i.task_id = ? OR substr(i.task_id, 1, ?) = ?)")
            params += [q.task_id, len(mapped), mapped]
        for column, value in (("i.check_name", q.check), ("e.status", q.status), ("e.subject", q.subject)):
            if value is not None:
                parts.append(f"{column} = ?")
                params.append(value)
        if q.since is not None:
            parts.append("COALESCE(e.since, e.first_seen) >= ?")
            params.append(to_text(q.since))
        if q.until is not None:
            parts.append("COALESCE(e.since, e.first_seen) <= ?")
            params.append(to_text(q.until))
        return " AND ".join(parts), params


_READ = ("entity_key", "status", "first_seen", "first_run", "since", "amount", "resolved_at", "resolved_run")


def _tracked(row: Any) -> Tracked:
    key, status, first_seen, first_run, since, amount, resolved_at, resolved_run = row
    return Tracked(key, status, from_text(first_seen), first_run, from_text(since),  # type: ignore[arg-type]
                   None if amount is None else float(amount), from_text(resolved_at), resolved_run)
