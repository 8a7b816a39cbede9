"""The result history in the state store: one row per check per task run (``check_results``) and one per
sync run (``sync_runs``), written once at the end of the run, meant to be queried by people and BI tools.

The columns are a stable, documented interface (docs/history.md): new columns may be added, none is
renamed or dropped. A retried task replaces its run's rows (the newest try is the run's outcome), so a
row is keyed by what it describes, not by the try. Each write also deletes the task's rows older than
the retention, through the ``(dag_id, task_id, recorded_at)`` index: on a healthy run that finds nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_opsflow.core.timestamps import to_text

if TYPE_CHECKING:
    from airflow_opsflow.core.cursor import Cursor
    from airflow_opsflow.core.results import CheckResult
    from airflow_opsflow.state.store import StateStore

DEFAULT_RETENTION = timedelta(days=400)  # a year and a season: "same quarter last year" still answers
_MESSAGE_CHARS = 2000  # the message explains the row; the evidence itself stays with the incident
_ROWS_PER_INSERT = 200  # rows per multi-row INSERT (every driver's parameter limit is far above 200 x 25)

CHECK_COLUMNS = (
    "result_id", "dag_id", "task_id", "run_id", "try_number", "run_at", "recorded_at", "check_name",
    "kind", "status", "severity", "table_name", "column_name", "observed", "observed_value",
    "violating_count", "violating_share", "rows_checked", "threshold", "message", "duration_s", "sql_hash",
    "fingerprint",
)
SYNC_COLUMNS = (
    "run_key", "sync_id", "dag_id", "task_id", "run_id", "try_number", "run_at", "recorded_at", "status",
    "mode", "full_read", "destination", "added", "changed", "deleted", "unchanged", "failed", "invalid",
    "skipped", "rows_read", "requests", "retries", "rate_limited", "duration_s", "message", "failures",
)


@dataclass(frozen=True)
class RunRef:
    """The task run a row belongs to.

    :param task_id: the task, with its map index for a mapped instance (``check[3]``), as incidents key it.
    :param run_at: the time the run judged its data at (its data interval end), else when it ran.
    """

    dag_id: str
    task_id: str
    run_id: str
    try_number: int | None = None
    run_at: datetime | None = None


def result_id(run: RunRef, check: str) -> str:
    return hashlib.sha256("\x1f".join((run.dag_id, run.task_id, check, run.run_id)).encode()).hexdigest()


def sql_hash(statements: Sequence[str]) -> str | None:
    """A short hash of the statements a check ran: rows with the same hash ran the same SQL (a changed
    spec, or a plan that changed, shows as a new hash)."""
    if not statements:
        return None
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()[:16]


def _number(value: Any) -> float | None:
    """``observed`` as a number for charts, when it is one (a bool or a mapping is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


class ResultHistory:
    """Writes the result history.

    :param retention: rows older than this are deleted (None: kept for ever).
    :param clock: the current time (``recorded_at``, and the retention's cutoff).
    """

    def __init__(self, store: StateStore, retention: timedelta | None = DEFAULT_RETENTION,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.retention = retention
        self.clock = clock
        self.checks_table = store.table("check_results")
        self.syncs_table = store.table("sync_runs")

    def record_checks(self, run: RunRef, results: Sequence[CheckResult],
                      fingerprints: Mapping[str, str] | None = None) -> int:
        """One row per result (a retry replaces the run's earlier rows); returns the rows written.

        :param fingerprints: check name -> its incident's fingerprint (joins ``incidents``), when known.
        """
        now = to_text(self.clock())
        rows = []
        for r in results:
            observed = None if r.observed is None else json.dumps(r.observed, default=str, sort_keys=True)
            rows.append((
                result_id(run, r.name), run.dag_id[:250], run.task_id[:250], run.run_id[:250], run.try_number,
                to_text(run.run_at), now, r.name[:250], r.kind[:32], r.status, r.severity[:16],
                _text(r.table, 500), _text(r.column, 500), observed, _number(r.observed), r.violating_count,
                r.violating_share, r.rows_checked, _text(r.threshold, 250), _text(r.message, _MESSAGE_CHARS),
                r.duration_s, sql_hash(r.sql), (fingerprints or {}).get(r.name),
            ))
        with self.store.transaction() as cur:
            if run.try_number is None or run.try_number > 1:  # an earlier try may have written the run
                self._delete(cur, self.checks_table, "result_id", [row[0] for row in rows])
            self._insert(cur, self.checks_table, CHECK_COLUMNS, rows)
            self._prune(cur, self.checks_table, "dag_id = ? AND task_id = ?", (run.dag_id[:250], run.task_id[:250]))
        return len(rows)

    def record_sync(self, run: RunRef, sync_id: str, status: str, report: Mapping[str, Any],
                    destination: str = "", message: str = "") -> None:
        """One row for a sync run (``report``: the SyncReport's dict; ``status``: ok, dry_run, refused or
        failed); a retry replaces it."""
        counts = report.get("counts") or {}
        failures = list(report.get("failures") or [])[:20]  # the first rejections with their reasons
        requests = report.get("requests") or {}
        key = hashlib.sha256("\x1f".join((sync_id, run.run_id)).encode()).hexdigest()
        row = (
            key, sync_id[:200], run.dag_id[:250], run.task_id[:250], run.run_id[:250], run.try_number,
            to_text(run.run_at), to_text(self.clock()), status, str(report.get("mode", ""))[:16],
            int(bool(report.get("full"))),
            destination[:250] or None, *(int(counts.get(c, 0)) for c in (
                "added", "changed", "deleted", "unchanged", "failed", "invalid", "skipped")),
            int(report.get("rows_read") or 0), int(sum(requests.values())) if requests else None,
            int(report.get("retries") or 0), int(report.get("rate_limited") or 0),
            float(report.get("seconds") or 0.0), _text(message or report.get("refused") or None, _MESSAGE_CHARS),
            json.dumps(failures, default=str) if failures else None,
        )
        with self.store.transaction() as cur:
            self._delete(cur, self.syncs_table, "run_key", [key])
            self._insert(cur, self.syncs_table, SYNC_COLUMNS, [row])
            self._prune(cur, self.syncs_table, "sync_id = ?", (sync_id[:200],))

    @staticmethod
    def _delete(cur: Cursor, table: str, column: str, keys: list[str]) -> None:
        for i in range(0, len(keys), _ROWS_PER_INSERT):
            part = keys[i:i + _ROWS_PER_INSERT]
            cur.execute(f"DELETE FROM {table} WHERE {column} IN ({', '.join('?' * len(part))})", part)

    @staticmethod
    def _insert(cur: Cursor, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        one = f"({', '.join('?' * len(columns))})"
        for i in range(0, len(rows), _ROWS_PER_INSERT):
            part = rows[i:i + _ROWS_PER_INSERT]
            cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(part))}",
                        [v for row in part for v in row])

    def _prune(self, cur: Cursor, table: str, where: str, params: tuple[Any, ...]) -> None:
        if self.retention is None:
            return
        cutoff = to_text(self.clock() - self.retention)
        cur.execute(f"DELETE FROM {table} WHERE {where} AND recorded_at < ?", (*params, cutoff))
