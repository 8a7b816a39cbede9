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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_opsflow.core.timestamps import from_text, to_text

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


# -- reading the history (the Ops view's API) -------------------------------------------------------------

_IN_CHUNK = 400  # values per IN (...) list
_CHECK_READ = ("dag_id", "task_id", "run_id", "try_number", "run_at", "recorded_at", "check_name", "kind", "status",
               "table_name", "column_name", "observed", "observed_value", "violating_count", "violating_share",
               "rows_checked", "threshold", "message", "duration_s")
_SYNC_READ = ("run_key", "sync_id", "dag_id", "task_id", "run_id", "try_number", "run_at", "recorded_at", "status",
              "mode", "destination", "added", "changed", "deleted", "unchanged", "failed", "invalid", "skipped",
              "rows_read", "requests", "retries", "rate_limited", "duration_s", "message", "failures")
_SYNC_COUNTS = ("added", "changed", "deleted", "unchanged", "failed", "invalid")
# A check row's time: the run's own (its data interval end), else when it was written.
_CHECK_TIME = "COALESCE(run_at, recorded_at)"


@dataclass(frozen=True)
class CheckRow:
    """One ``check_results`` row as read back (``observed`` decoded from its JSON)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int | None
    run_at: datetime | None
    recorded_at: datetime
    check: str
    kind: str
    status: str
    table: str | None
    column: str | None
    observed: Any
    observed_value: float | None
    violating_count: int | None
    violating_share: float | None
    rows_checked: int | None
    threshold: str | None
    message: str | None
    duration_s: float | None

    @property
    def at(self) -> datetime:
        """The row's time: the run's (its data interval end), else when it was recorded."""
        return self.run_at or self.recorded_at


@dataclass(frozen=True)
class SyncRow:
    """One ``sync_runs`` row as read back (``failures``: the first rejections, ``{"key", "error"...}``)."""

    run_key: str
    sync_id: str
    dag_id: str
    task_id: str
    run_id: str
    try_number: int | None
    run_at: datetime | None
    recorded_at: datetime
    status: str
    mode: str | None
    destination: str | None
    added: int
    changed: int
    deleted: int
    unchanged: int
    failed: int
    invalid: int
    skipped: int
    rows_read: int | None
    requests: int | None
    retries: int | None
    rate_limited: int | None
    duration_s: float | None
    message: str | None
    failures: list[dict[str, Any]]


@dataclass(frozen=True)
class SyncTotal:
    """Counts of the sync runs of one destination and status: runs and the sum of each record count."""

    destination: str | None
    status: str
    runs: int
    counts: dict[str, int]


@dataclass(frozen=True)
class SyncOf:
    """A sync and where it belongs, from its newest recorded run."""

    sync_id: str
    dag_id: str
    task_id: str
    destination: str | None


def _where(filters: Sequence[tuple[str, Any]], dag_ids: Sequence[str] | None = None) -> tuple[str, list[Any]]:
    """``WHERE`` of fixed SQL conditions (``"column = ?"``, written here, never from input) whose value is not
    None, and ``dag_id IN (...)`` for ``dag_ids``."""
    parts, params = [], []
    for condition, value in filters:
        if value is not None:
            parts.append(condition)
            params.append(value)
    if dag_ids is not None:
        parts.append(f"dag_id IN ({', '.join('?' * len(dag_ids))})" if dag_ids else "1 = 0")
        params.extend(dag_ids)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _chunks(dag_ids: Sequence[str]) -> Iterator[list[str]]:
    """``dag_ids`` in pieces small enough for one ``IN (...)`` on every database."""
    for i in range(0, len(dag_ids), _IN_CHUNK):
        yield list(dag_ids[i:i + _IN_CHUNK])


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class HistoryReader:
    """Reads the result history (read-only: SELECTs only, beyond the store's migrations on first use).

    Filters are plain values (None: no filter); times are aware datetimes compared with the stored UTC text.
    Every listing takes ``dag_ids``: only those DAGs' rows are read (the caller's readable DAGs).
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.checks_table = store.table("check_results")
        self.syncs_table = store.table("sync_runs")

    def check_dags(self, since: datetime | None = None, until: datetime | None = None) -> list[str]:
        """The DAGs with check results in the window (on each row's run time)."""
        where, params = _where([(f"{_CHECK_TIME} >= ?", to_text(since)), (f"{_CHECK_TIME} <= ?", to_text(until))])
        with self.store.transaction() as cur:
            cur.execute(f"SELECT DISTINCT dag_id FROM {self.checks_table}{where}", params)
            return sorted(str(r[0]) for r in cur.fetchall())

    def check_rows(self, dag_ids: Sequence[str], *, task_id: str | None = None, check: str | None = None,
                   table: str | None = None, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 10_000) -> tuple[list[CheckRow], bool]:
        """The newest ``limit`` rows of ``dag_ids`` in the window, oldest first, and whether more matched."""
        rows: list[CheckRow] = []
        more = False
        filters = [("task_id = ?", task_id), ("check_name = ?", check), ("table_name = ?", table),
                   (f"{_CHECK_TIME} >= ?", to_text(since)), (f"{_CHECK_TIME} <= ?", to_text(until))]
        with self.store.transaction() as cur:
            for chunk in _chunks(dag_ids):
                where, params = _where(filters, chunk)
                cur.execute(f"SELECT {', '.join(_CHECK_READ)} FROM {self.checks_table}{where} "
                            f"ORDER BY {_CHECK_TIME} DESC, recorded_at DESC, check_name LIMIT {int(limit) + 1}", params)
                found = cur.fetchall()
                more = more or len(found) > limit
                rows += [self._check(r) for r in found[:limit]]
        rows.sort(key=lambda r: (r.at, r.recorded_at), reverse=True)
        more = more or len(rows) > limit
        return rows[:limit][::-1], more

    @staticmethod
    def _check(r: Sequence[Any]) -> CheckRow:
        recorded = from_text(r[5])
        assert recorded is not None  # NOT NULL
        return CheckRow(str(r[0]), str(r[1]), str(r[2]), r[3], from_text(r[4]), recorded, str(r[6]), str(r[7]),
                        str(r[8]), r[9], r[10], _json(r[11]), None if r[12] is None else float(r[12]), r[13],
                        None if r[14] is None else float(r[14]), r[15], r[16], r[17],
                        None if r[18] is None else float(r[18]))

    def syncs_of(self, dag_ids: Sequence[str], *, task_id: str | None = None, sync_id: str | None = None,
                 destination: str | None = None) -> list[SyncOf]:
        """Every sync of ``dag_ids`` with a recorded run, with the DAG, task and destination of its newest."""
        found: dict[str, tuple[str, SyncOf]] = {}
        filters = [("task_id = ?", task_id), ("sync_id = ?", sync_id), ("destination = ?", destination)]
        with self.store.transaction() as cur:
            for chunk in _chunks(dag_ids):
                where, params = _where(filters, chunk)
                # One row per (sync, run) at most: a few per day and sync, read whole.
                cur.execute(f"SELECT sync_id, dag_id, task_id, destination, MAX(recorded_at) FROM {self.syncs_table}"
                            f"{where} GROUP BY sync_id, dag_id, task_id, destination", params)
                for sid, dag, task, dest, at in cur.fetchall():
                    if sid not in found or at > found[sid][0]:
                        found[sid] = (at, SyncOf(str(sid), str(dag), str(task), dest))
        return [found[s][1] for s in sorted(found)]

    def sync_dags(self, since: datetime | None = None, until: datetime | None = None) -> list[str]:
        """The DAGs with sync runs recorded in the window (any time when both are None)."""
        where, params = _where([("recorded_at >= ?", to_text(since)), ("recorded_at <= ?", to_text(until))])
        with self.store.transaction() as cur:
            cur.execute(f"SELECT DISTINCT dag_id FROM {self.syncs_table}{where}", params)
            return sorted(str(r[0]) for r in cur.fetchall())

    def _sync_filters(self, task_id: str | None, sync_id: str | None, destination: str | None,
                      status: str | None, since: datetime | None, until: datetime | None) -> list[tuple[str, Any]]:
        return [("task_id = ?", task_id), ("sync_id = ?", sync_id), ("destination = ?", destination),
                ("status = ?", status), ("recorded_at >= ?", to_text(since)), ("recorded_at <= ?", to_text(until))]

    def sync_rows(self, dag_ids: Sequence[str], *, task_id: str | None = None, sync_id: str | None = None,
                  destination: str | None = None, status: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int = 500) -> tuple[list[SyncRow], bool]:
        """The newest ``limit`` sync runs of ``dag_ids`` recorded in the window, newest first, and whether more
        matched."""
        rows: list[SyncRow] = []
        more = False
        filters = self._sync_filters(task_id, sync_id, destination, status, since, until)
        with self.store.transaction() as cur:
            for chunk in _chunks(dag_ids):
                where, params = _where(filters, chunk)
                cur.execute(f"SELECT {', '.join(_SYNC_READ)} FROM {self.syncs_table}{where} "
                            f"ORDER BY recorded_at DESC, sync_id LIMIT {int(limit) + 1}", params)
                found = cur.fetchall()
                more = more or len(found) > limit
                rows += [self._sync(r) for r in found[:limit]]
        rows.sort(key=lambda r: (r.recorded_at, r.sync_id), reverse=True)
        return rows[:limit], more or len(rows) > limit

    def sync_totals(self, dag_ids: Sequence[str], *, task_id: str | None = None, sync_id: str | None = None,
                    destination: str | None = None, status: str | None = None, since: datetime | None = None,
                    until: datetime | None = None) -> list[SyncTotal]:
        """Runs and summed record counts per destination and status, over every matching run (no limit)."""
        sums = ", ".join(f"SUM({c})" for c in _SYNC_COUNTS)
        merged: dict[tuple[str | None, str], list[int]] = {}
        filters = self._sync_filters(task_id, sync_id, destination, status, since, until)
        with self.store.transaction() as cur:
            for chunk in _chunks(dag_ids):
                where, params = _where(filters, chunk)
                cur.execute(f"SELECT destination, status, COUNT(*), {sums} FROM {self.syncs_table}{where} "
                            "GROUP BY destination, status", params)
                for dest, status_, *numbers in cur.fetchall():
                    into = merged.setdefault((dest, str(status_)), [0] * (len(_SYNC_COUNTS) + 1))
                    for j, n in enumerate(numbers):
                        into[j] += int(n or 0)
        return [SyncTotal(dest, st, n[0], dict(zip(_SYNC_COUNTS, n[1:], strict=True)))
                for (dest, st), n in sorted(merged.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))]

    @staticmethod
    def _sync(r: Sequence[Any]) -> SyncRow:
        recorded = from_text(r[7])
        assert recorded is not None  # NOT NULL
        failures = _json(r[24])
        added, changed, deleted, unchanged, failed, invalid, skipped = (int(v or 0) for v in r[11:18])
        return SyncRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), r[5], from_text(r[6]), recorded,
                       str(r[8]), r[9], r[10], added, changed, deleted, unchanged, failed, invalid, skipped, r[18],
                       r[19], r[20], r[21], None if r[22] is None else float(r[22]), r[23],
                       [f for f in failures if isinstance(f, dict)] if isinstance(failures, list) else [])
