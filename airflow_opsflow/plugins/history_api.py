"""The Ops view's JSON API for check history and syncs, in opsflow's app (``/opsflow``)::

    GET /opsflow/api/v1/checks                                          one row per check: status, streaks, flakiness
    GET /opsflow/api/v1/checks/{dag_id}/{task_id}/{check}/history       a check's results (and metric series)
    GET /opsflow/api/v1/syncs                                           sync runs, rejections, pending records

Read-only: the rows come from the result history (``check_results``, ``sync_runs``:
:mod:`airflow_opsflow.history.repo`), the metric store (:mod:`airflow_opsflow.monitors.repo`) and the sync
state (:mod:`airflow_opsflow.sync.repo`). Every route needs an authenticated user and answers only about the
DAGs that user may read (``access.readable_dags``): another DAG's rows are never read, so not even counts leak.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from airflow_opsflow.history.repo import CheckRow, HistoryReader, SyncOf, SyncRow, SyncTotal
from airflow_opsflow.monitors.repo import MetricRepo, SeriesPoint
from airflow_opsflow.plugins import clock
from airflow_opsflow.plugins.access import readable_dags
from airflow_opsflow.plugins.airflow_urls import task_instance_url
from airflow_opsflow.plugins.store import reading_store
from airflow_opsflow.sync.repo import PendingKey, SyncStateReader

router = APIRouter()

DEFAULT_WINDOW = timedelta(days=30)
DEFAULT_LIMIT, MAX_LIMIT = 500, 5000
# /checks aggregates in Python over the window's newest rows, at most this many (its statistics need the
# order of each check's verdicts: window functions, which MySQL 5.7 lacks, or a pass over the rows). When the
# window holds more, the oldest are left out and the answer says ``truncated``.
ROWS_READ = 50_000
VERDICTS = ("pass", "warn", "fail")  # error and skipped runs gave no verdict: they neither break nor extend a streak
NOT_FAILING = ("pass", "skipped")

Since = Annotated[datetime | None, Query(description="from this time on (ISO-8601; no offset: UTC)")]
Until = Annotated[datetime | None, Query(description="up to this time (ISO-8601; no offset: UTC)")]
CHECK_STATUS = "only checks whose latest run has this status (pass, warn, fail, error, skipped)"
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most this many (default {DEFAULT_LIMIT})")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated (no or an expired token)"},
    403: {"description": "an invalid token"},
    503: {"description": "no state database is configured ([opsflow] state_conn_id) or it cannot be reached"},
}


# -- answers -------------------------------------------------------------------------------------------------

class Links(BaseModel):
    task_instance_url: str = Field(description="the task instance in Airflow's UI (relative path)")
    log_url: str = Field(description="its logs (Airflow 3's task instance page opens on the logs)")


class CheckSummary(BaseModel):
    """One check over the window."""

    dag_id: str
    task_id: str = Field(description="the task (`task[3]` for a mapped instance)")
    check: str
    kind: str = Field(description="the check's kind (not_null, metric, ...) in its latest run")
    table: str | None
    column: str | None
    latest_status: str = Field(description="pass, warn, fail, error or skipped, of the latest run")
    latest_run_time: datetime = Field(description="the latest run's time (its data interval end)")
    latest_run_id: str
    runs: int = Field(description="runs in the window (every status)")
    failures: int = Field(description="runs with a failing verdict (warn or fail)")
    errors: int = Field(description="runs that could not check (error)")
    pass_rate: float | None = Field(description="passing share of the runs with a verdict (null: none)")
    failure_streak: int = Field(description="failing verdicts in a row up to now (0: it passes)")
    longest_streak: int = Field(description="the longest run of failing verdicts in the window")
    flips: int = Field(description="changes between passing and failing verdicts")
    flakiness: float | None = Field(description="flips / (verdicts - 1) (null: fewer than 2 verdicts)")
    mean_time_to_resolve_seconds: float | None = Field(
        description="mean time from a streak's first failing run to the passing run that ended it (null: none ended)")
    links: Links = Field(description="the latest run's task instance")


class ChecksOut(BaseModel):
    now: datetime
    checks: list[CheckSummary] = Field(description="currently failing first, then the flakiest")
    truncated: bool = Field(description="more checks matched than `limit`, or the window held more rows than "
                                        f"{ROWS_READ} (statistics then cover the newest)")


class ResultOut(BaseModel):
    """One run of a check."""

    run_time: datetime = Field(description="the run's time (its data interval end)")
    recorded_at: datetime
    run_id: str
    try_number: int | None
    status: str
    kind: str
    observed: Any = Field(description="what was measured (a number, or a mapping)")
    observed_value: float | None = Field(description="`observed` when it is a number")
    violating_count: int | None
    violating_share: float | None
    rows_checked: int | None
    threshold: str | None
    message: str | None
    duration_seconds: float | None
    task_instance_url: str
    log_url: str


class PointOut(BaseModel):
    """A stored point of a metric check's series."""

    bucket: datetime = Field(description="the bucket's start (UTC)")
    value: float
    expected: float | None = Field(description="always null: the detector's prediction is not stored")
    low: float | None = Field(description="always null: the band is not stored")
    high: float | None = Field(description="always null: the band is not stored")
    z: float | None = Field(description="the score the point got when judged (null: no verdict then)")
    status: str = Field(description="expected (a person marked it so), anomalous, or normal")
    anomalous: bool
    marked: bool = Field(description="a person marked it expected")
    new_level: bool = Field(description="judged against a level the series had just moved to")
    recovered: bool = Field(description="back at the level before the last accepted one")
    segment: list[Any] = Field(description="the series' segment_by values (empty without segment_by)")


class StreakOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    status: str
    from_: datetime = Field(alias="from", description="the first run's time")
    to: datetime = Field(description="the last run's time")
    runs: int


class HistoryOut(BaseModel):
    now: datetime
    results: list[ResultOut] = Field(description="oldest first")
    series: list[PointOut] | None = Field(description="a metric check's stored points, oldest first (null: none)")
    streaks: list[StreakOut] = Field(description="runs of one status in a row, over `results`")
    truncated: bool = Field(description="more results (or points) matched than `limit`: the newest are given")


class RejectionOut(BaseModel):
    key: str
    reason: str


class SyncCounts(BaseModel):
    """Records a sync added, changed, deleted, left unchanged, had rejected (failed) or found invalid."""

    added: int
    changed: int
    deleted: int
    unchanged: int
    failed: int
    invalid: int


class SyncRunOut(SyncCounts):
    run_key: str
    sync_id: str
    dag_id: str
    task_id: str
    run_id: str
    try_number: int | None
    run_time: datetime | None = Field(description="the run's time (its data interval end)")
    destination: str | None
    mode: str | None
    status: str = Field(description="ok, partial, failed, refused or dry_run")
    skipped: int
    rows_read: int | None
    requests: int | None
    retries: int | None
    rate_limited: int | None
    duration_seconds: float | None
    reason: str | None = Field(description="why it was refused or failed")
    rejections: list[RejectionOut] = Field(description="the first 20 rejected records and the destination's reason")
    recorded_at: datetime
    task_instance_url: str
    log_url: str


class PendingOut(BaseModel):
    sync_id: str
    dag_id: str
    task_id: str
    destination: str | None = Field(description="the destination of the sync's newest run")
    key: str
    state: str = Field(description="pending (the next run sends it again) or unconfirmed (a write a killed, "
                                   "or a running, run sent with no answer recorded)")
    since: datetime | None = Field(description="when it became pending (null: unconfirmed; marks keep no time)")
    write_id: str | None
    op: str | None = Field(description="the unconfirmed write's operation")


class DestinationTotals(SyncCounts):
    runs: int
    statuses: dict[str, int] = Field(description="runs per status")
    pending: int = Field(description="records in `pending` for this destination")


class SyncsOut(BaseModel):
    now: datetime
    runs: list[SyncRunOut] = Field(description="newest first")
    pending: list[PendingOut] = Field(description="records pending after a crash, by sync and key")
    totals: dict[str, DestinationTotals] = Field(description="per destination (\"\": none recorded), over every "
                                                             "matching run, not only those listed")
    truncated: bool


# -- helpers -------------------------------------------------------------------------------------------------

def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC))


def _window(since: datetime | None, until: datetime | None, default: bool) -> tuple[datetime | None, datetime | None]:
    since, until = _utc(since), _utc(until)
    if since is None and default:
        since = (until or clock.now()) - DEFAULT_WINDOW
    if since is not None and until is not None and since > until:
        raise HTTPException(422, f"query 'since' ({since.isoformat()}) is after 'until' ({until.isoformat()})")
    return since, until


def _links(dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    # The task instance page's default tab is its logs (Airflow 3.x router: the index route renders them).
    url = task_instance_url(dag_id, task_id, run_id)
    return {"task_instance_url": url, "log_url": url}


def _readable(user: Any, stored: Sequence[str], dag_id: str | None) -> list[str]:
    wanted = [d for d in stored if dag_id is None or d == dag_id]
    return sorted(readable_dags(user, wanted))


def summarize(rows: Sequence[CheckRow]) -> dict[str, Any]:
    """The statistics of one check's rows (oldest first); see :class:`CheckSummary`."""
    latest = rows[-1]
    verdicts = [r for r in rows if r.status in VERDICTS]
    failing = [r.status != "pass" for r in verdicts]
    flips = sum(1 for a, b in pairwise(failing) if a != b)
    streak = longest = 0
    started: datetime | None = None
    resolved: list[float] = []
    for r, bad in zip(verdicts, failing, strict=True):
        if bad:
            streak += 1
            longest = max(longest, streak)
            started = started or r.at
        else:
            if started is not None:
                resolved.append((r.at - started).total_seconds())
            streak, started = 0, None
    passes = len(verdicts) - sum(failing)
    return {
        "dag_id": latest.dag_id, "task_id": latest.task_id, "check": latest.check, "kind": latest.kind,
        "table": latest.table, "column": latest.column, "latest_status": latest.status,
        "latest_run_time": latest.at, "latest_run_id": latest.run_id, "runs": len(rows), "failures": sum(failing),
        "errors": sum(1 for r in rows if r.status == "error"),
        "pass_rate": passes / len(verdicts) if verdicts else None, "failure_streak": streak,
        "longest_streak": longest, "flips": flips,
        "flakiness": flips / (len(verdicts) - 1) if len(verdicts) > 1 else None,
        "mean_time_to_resolve_seconds": sum(resolved) / len(resolved) if resolved else None,
        "links": _links(latest.dag_id, latest.run_id, latest.task_id),
    }


def streaks(rows: Sequence[CheckRow]) -> list[StreakOut]:
    out: list[StreakOut] = []
    for r in rows:
        if out and out[-1].status == r.status:
            out[-1].to, out[-1].runs = r.at, out[-1].runs + 1
        else:
            out.append(StreakOut.model_validate({"status": r.status, "from": r.at, "to": r.at, "runs": 1}))
    return out


def _point(p: SeriesPoint) -> PointOut:
    state = "expected" if p.marked else "anomalous" if p.anomalous else "normal"
    return PointOut(bucket=p.bucket, value=p.value, expected=None, low=None, high=None, z=p.z, status=state,
                    anomalous=p.anomalous, marked=p.marked, new_level=p.new_level, recovered=p.recovered,
                    segment=list(p.segment))


def _result(r: CheckRow) -> ResultOut:
    return ResultOut(run_time=r.at, recorded_at=r.recorded_at, run_id=r.run_id, try_number=r.try_number,
                     status=r.status, kind=r.kind, observed=r.observed, observed_value=r.observed_value,
                     violating_count=r.violating_count, violating_share=r.violating_share,
                     rows_checked=r.rows_checked, threshold=r.threshold, message=r.message,
                     duration_seconds=r.duration_s, **_links(r.dag_id, r.run_id, r.task_id))


def _sync_run(r: SyncRow) -> SyncRunOut:
    rejections = [RejectionOut(key=str(f.get("key", "")), reason=str(f.get("error") or f.get("reason") or ""))
                  for f in r.failures]
    return SyncRunOut(run_key=r.run_key, sync_id=r.sync_id, dag_id=r.dag_id, task_id=r.task_id, run_id=r.run_id,
                      try_number=r.try_number, run_time=r.run_at, destination=r.destination, mode=r.mode,
                      status=r.status, added=r.added, changed=r.changed, deleted=r.deleted, unchanged=r.unchanged,
                      failed=r.failed, invalid=r.invalid, skipped=r.skipped, rows_read=r.rows_read,
                      requests=r.requests, retries=r.retries, rate_limited=r.rate_limited,
                      duration_seconds=r.duration_s, reason=r.message, rejections=rejections,
                      recorded_at=r.recorded_at, **_links(r.dag_id, r.run_id, r.task_id))


def _any(value: str | None) -> str:
    return value if value is not None else "(any)"


# -- routes --------------------------------------------------------------------------------------------------

@router.get("/api/v1/checks", response_model=ChecksOut, responses=_ERRORS,
            summary="Checks with their status, failure streaks, flakiness and time to resolve")
def checks(user: GetUserDep,
           dag_id: Annotated[str | None, Query(description="only this DAG")] = None,
           task_id: Annotated[str | None, Query(description="only this task (`task[3]`: a mapped instance)")] = None,
           table: Annotated[str | None, Query(description="only checks of this table")] = None,
           status_: Annotated[str | None, Query(alias="status", description=CHECK_STATUS)] = None,
           since: Since = None, until: Until = None, limit: Limit = DEFAULT_LIMIT) -> ChecksOut:
    """One row per (DAG, task, check) with results in the window (on each run's time, its data interval end;
    default: the last 30 days). Streaks, flips and pass rates count verdicts (pass, warn, fail): a run that
    could not check (error, skipped) neither breaks nor extends a streak. Currently failing checks come first
    (latest status warn, fail or error), then by flakiness (most first)."""
    now = clock.now()
    since, until = _window(since, until, default=True)
    with reading_store(_any(dag_id)) as store:
        reader = HistoryReader(store) if store else None
        dags = _readable(user, reader.check_dags(since, until), dag_id) if reader else []
        rows, more = reader.check_rows(dags, task_id=task_id, table=table, since=since, until=until,
                                       limit=ROWS_READ) if reader and dags else ([], False)
    by_check: dict[tuple[str, str, str], list[CheckRow]] = {}
    for r in rows:
        by_check.setdefault((r.dag_id, r.task_id, r.check), []).append(r)
    found = [summarize(group) for group in by_check.values()]
    if status_ is not None:
        found = [c for c in found if c["latest_status"] == status_]
    found.sort(key=lambda c: (c["latest_status"] in NOT_FAILING, -(c["flakiness"] or 0.0),
                              c["dag_id"], c["task_id"], c["check"]))
    return ChecksOut(now=now, checks=[CheckSummary(**c) for c in found[:limit]],
                     truncated=more or len(found) > limit)


@router.get("/api/v1/checks/{dag_id}/{task_id}/{check}/history", response_model=HistoryOut,
            responses={**_ERRORS, 404: {"description": "no such check stored, or its DAG is not readable"}},
            summary="A check's results run by run, with its metric series and streaks")
def check_history(dag_id: str, task_id: str, check: str, user: GetUserDep,
                  since: Since = None, until: Until = None, limit: Limit = DEFAULT_LIMIT,
                  history_key: Annotated[str | None, Query(description="the check's history_key, when it sets "
                                                                       "one (metric checks)")] = None) -> HistoryOut:
    """The check's runs (on each run's time; no default window: the newest `limit`), oldest first as a chart
    draws them, each linking its task instance and logs. For a metric check, `series` holds its stored points
    in the same window (each series' segment in `segment`): value, score `z` and verdict; the detector's
    expected value and band are not stored, so `expected`, `low` and `high` are null. `streaks` groups the
    results into runs of one status. 404 when nothing is stored for the check or its DAG is not readable."""
    now = clock.now()
    since, until = _window(since, until, default=False)
    missing = HTTPException(status.HTTP_404_NOT_FOUND,
                            f"dag {dag_id!r}, task {task_id!r}, check {check!r}: no stored results")
    with reading_store(dag_id) as store:
        if store is None or not readable_dags(user, [dag_id]):
            raise missing  # the same answer as for a check never stored: nothing about a hidden DAG leaks
        rows, more = HistoryReader(store).check_rows([dag_id], task_id=task_id, check=check, since=since,
                                                     until=until, limit=limit)
        points = MetricRepo(store).points_of(history_key or f"{dag_id}/{task_id}/{check}", since, until, limit)
    if not rows and points is None:
        raise missing
    series = None if points is None else [_point(p) for p in points[0]]
    return HistoryOut(now=now, results=[_result(r) for r in rows], series=series, streaks=streaks(rows),
                      truncated=more or (points is not None and points[1]))


@router.get("/api/v1/syncs", response_model=SyncsOut, responses=_ERRORS,
            summary="Sync runs with their counts and rejections, and records pending after a crash")
def syncs(user: GetUserDep,
          dag_id: Annotated[str | None, Query(description="only this DAG")] = None,
          task_id: Annotated[str | None, Query(description="only this task")] = None,
          sync_id: Annotated[str | None, Query(description="only this sync (`<dag_id>.<task_id>`...)")] = None,
          destination: Annotated[str | None, Query(description="only this destination, as runs name it")] = None,
          status_: Annotated[str | None, Query(alias="status", description="only runs with this status (ok, "
                                                                          "partial, failed, refused, dry_run)")] = None,
          since: Since = None, until: Until = None, limit: Limit = DEFAULT_LIMIT) -> SyncsOut:
    """Sync runs recorded in the window (default: the last 30 days), newest first, with their record counts,
    the first rejected records and the destination's reasons. `pending` lists the records whose last write
    may not have reached the destination (a run was killed after sending; or is sending now): the current
    state of the syncs with a recorded run of a readable DAG (the window and `status` do not apply), at most
    `limit`. `totals` sums every matching run per destination."""
    now = clock.now()
    since, until = _window(since, until, default=True)
    runs: list[SyncRow] = []
    pending: list[PendingKey] = []
    more = more_pending = False
    totals: list[SyncTotal] = []
    of: dict[str, SyncOf] = {}
    with reading_store(_any(dag_id)) as store:
        reader = HistoryReader(store) if store else None
        dags = _readable(user, reader.sync_dags(), dag_id) if reader else []
        if reader and store and dags:
            filters = {"task_id": task_id, "sync_id": sync_id, "destination": destination}
            runs, more = reader.sync_rows(dags, **filters, status=status_, since=since, until=until, limit=limit)
            totals = reader.sync_totals(dags, **filters, status=status_, since=since, until=until)
            of = {s.sync_id: s for s in reader.syncs_of(dags, **filters)}
            pending, more_pending = SyncStateReader(store).pending(sorted(of), limit) if of else ([], False)
    by_dest: dict[str, dict[str, Any]] = {}
    for t in totals:
        into = by_dest.setdefault(t.destination or "", {"runs": 0, "statuses": {}, "pending": 0,
                                                        **dict.fromkeys(t.counts, 0)})
        into["runs"] += t.runs
        into["statuses"][t.status] = into["statuses"].get(t.status, 0) + t.runs
        for name, n in t.counts.items():
            into[name] += n
    waiting = Counter(of[p.sync_id].destination or "" for p in pending)
    for dest, n in waiting.items():
        by_dest.setdefault(dest, {"runs": 0, "statuses": {}, "added": 0, "changed": 0, "deleted": 0, "unchanged": 0,
                                  "failed": 0, "invalid": 0, "pending": 0})["pending"] = n
    return SyncsOut(now=now, runs=[_sync_run(r) for r in runs], pending=[_pending(p, of) for p in pending],
                    totals={d: DestinationTotals(**v) for d, v in sorted(by_dest.items())},
                    truncated=more or more_pending)


def _pending(p: PendingKey, of: dict[str, Any]) -> PendingOut:
    sync = of[p.sync_id]
    return PendingOut(sync_id=p.sync_id, dag_id=sync.dag_id, task_id=sync.task_id, destination=sync.destination,
                      key=p.key, state=p.state, since=p.since, write_id=p.write_id, op=p.op)
