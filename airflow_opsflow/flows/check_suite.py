"""Run a suite on a DB-API connection: probe columns, run the batched plan, fall back per check when a
batch fails, evaluate, and fetch samples for the checks that did not pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from airflow_opsflow.checks.compiler import (
    BREACHED,
    BoundCheck,
    CompileError,
    Plan,
    PlannedQuery,
    batch,
    compile_suite,
    entity_query,
    sample_query,
    violation_count_query,
)
from airflow_opsflow.checks.evaluate import evaluate
from airflow_opsflow.checks.monitor_spec import MetricCheck, ReconcileCheck
from airflow_opsflow.checks.sample_policy import looks_personal
from airflow_opsflow.checks.session import QueryError, ReadOnlySession
from airflow_opsflow.checks.spec import Suite
from airflow_opsflow.core import sqlparts
from airflow_opsflow.core.results import CheckResult, json_safe
from airflow_opsflow.incidents.entities import Seen, key_text, to_amount, to_since, track
from airflow_opsflow.monitors.metric import Bound, MetricError, run_metric
from airflow_opsflow.monitors.reconcile import ReconcileError, reconcile
from airflow_opsflow.state.store import StateStoreError

if TYPE_CHECKING:
    from airflow_opsflow.incidents.entities import Changes, Tracked
    from airflow_opsflow.monitors.metric import History
    from airflow_opsflow.monitors.reconcile import ApiClients, Connect

log = logging.getLogger(__name__)


class EntityStore(Protocol):
    """Where checks with ``entity`` keep their open entities (the state store's ``EntityRepo``)."""

    def load(self, subject: str) -> dict[str, Tracked]: ...

    def apply(self, subject: str, changes: Changes) -> None: ...


@dataclass
class EntityTracking:
    """What entity tracking needs besides the data: the store, the run (a retry of it reports the same
    entities as new) and the subject of each check (its incident fingerprint)."""

    store: EntityStore
    run_key: str
    subject: Callable[[str], str]


def run_suite(
    conn: Any,
    suite: Suite,
    dialect: str,
    *,
    statement_timeout: timedelta | None = None,
    read_only: bool = True,
    now: datetime | None = None,
    history: History | None = None,
    history_key: str = "",
    metrics_at: datetime | None = None,
    connect: Connect | None = None,
    entities: EntityTracking | None = None,
    api: ApiClients | None = None,
) -> list[CheckResult]:
    """Run every check of ``suite`` on ``conn`` and return one result per check, in spec order.

    :param conn: an open DB-API 2 connection; it is rolled back, not closed.
    :param dialect: its sqlglot dialect (``postgres``, ``sqlite``, ``mysql``, ``snowflake``...).
    :param statement_timeout: cancel any single statement that runs longer.
    :param read_only: run inside a read-only transaction where the database supports it.
    :param now: the reference time for freshness (default: the current UTC time).
    :param history: where metric checks keep their points (the state store); without it they are errors.
    :param history_key: prefix of the metric histories' keys (the DAG and task), unless a check sets one.
    :param metrics_at: the metrics' reference time: their newest complete bucket ends by it, and a
        per-run value is stamped with it (pass the run's data interval end; default ``now``).
    :param connect: opens the connections ``reconcile`` checks read (conn_id, None for this one ->
        connection factory and dialect); without it they are errors.
    :param api: opens the client of a reconcile side on an API (system: ``hubspot``, ``salesforce`` or
        ``zendesk``, and conn_id -> client, see :mod:`airflow_opsflow.core.api_source`); without it such
        sides are errors.
    :param entities: where checks with ``entity`` track their entities; without it they are errors.
        Ages are measured at ``metrics_at`` (the run's time).
    """
    with ReadOnlySession(conn, dialect, statement_timeout, read_only) as session:
        run = SuiteRun(session, suite, dialect, now, history, history_key, metrics_at)
        run.connect = connect
        run.api = api
        run.entities = entities
        return run.run()


class SuiteRun:
    def __init__(self, session: ReadOnlySession, suite: Suite, dialect: str, now: datetime | None,
                 history: History | None = None, history_key: str = "", metrics_at: datetime | None = None) -> None:
        self.session = session
        self.history = history
        self.history_key = history_key
        self.connect: Connect | None = None
        self.api: ApiClients | None = None
        self.entities: EntityTracking | None = None
        self.metrics_at = metrics_at or now
        self.suite = suite
        self.dialect = dialect
        self.now = now
        self._columns: dict[str, list[str] | str] = {}  # table -> columns, or the probe's error
        self.results: dict[str, CheckResult] = {}
        self.sql: dict[str, list[str]] = {}
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}  # a sql check's samples/entities
        self.entity_rows: dict[str, list[tuple[Any, ...]]] = {}  # a reconcile check's violating keys

    def run(self) -> list[CheckResult]:
        plan = compile_suite(self.suite, self.dialect, self._resolve)
        for name, error in plan.errors.items():
            self._error(name, plan, error)
        for q in plan.queries:
            self._run_query(q, plan)
        for b in plan.bound.values():
            if isinstance(b.check, MetricCheck):
                self._metric(b, plan)
            elif isinstance(b.check, ReconcileCheck):
                self._reconcile(b, plan)
        for b in plan.bound.values():
            r = self.results.get(b.name)
            if r is not None and r.status in ("warn", "fail"):
                self._sample(b, r)
            if r is not None and b.check.entity is not None and r.status not in ("error", "skipped"):
                self._track(b, r)
        ordered = [self.results[c.name] for _, c in self.suite.all_checks()]
        for r in ordered:
            r.sql = self.sql.get(r.name, [])
            r.duration_s = round(self.seconds.get(r.name, 0.0), 4)
        return ordered

    def _resolve(self, table: str) -> list[str]:
        """The table's real column names, from a zero-row query (one per table per run)."""
        if table not in self._columns:
            probe = sqlparts.exp.select("*").from_(sqlparts.table_ref(table, self.dialect)).limit(0)
            try:
                names, _ = self.session.query(probe.sql(self.dialect))
                self._columns[table] = names
            except QueryError as e:
                self._columns[table] = f"table {table!r} cannot be read: {e}"
        found = self._columns[table]
        if isinstance(found, str):
            raise CompileError(found)
        return found

    def _run_query(self, q: PlannedQuery, plan: Plan) -> None:
        started = time.perf_counter()
        try:
            names, rows = self.session.query(q.sql)
        except QueryError as e:
            if len(q.checks) > 1:
                # One bad check must not hide the others: re-run each on its own.
                log.warning("batched query for %s failed (%s); running its checks one by one",
                            ", ".join(q.checks), e)
                for name in q.checks:
                    self.sql.setdefault(name, []).append(q.sql)
                    for single in batch([plan.bound[name]], self.dialect):
                        self._run_query(single, plan)
            else:
                self.sql.setdefault(q.checks[0], []).append(q.sql)
                self._error(q.checks[0], plan, str(e))
            return
        elapsed = time.perf_counter() - started
        if q.rows:  # a sql check's one statement: its count first, then its samples or entities
            name = q.checks[0]
            self.rows[name] = (names[1:], [r[1:] for r in rows])
            rows = [(int(rows[0][0]) if rows else 0,)]
            names = names[:1]
        row = dict(zip(names, rows[0], strict=True)) if rows else {}
        found = {name: {role: row.get(col) for role, col in roles.items()} for name, roles in q.outputs.items()}
        for name in q.outputs:
            self.sql.setdefault(name, []).append(q.sql)
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed / len(q.outputs)
        breached = [n for n, m in found.items() if m.get(BREACHED)]
        if breached:
            self._count_violations(breached, plan, found)
        for name, metrics in found.items():
            if name in self.results:  # the follow-up count failed: already an error
                continue
            try:
                self.results[name] = evaluate(plan.bound[name], metrics, self.now)
            except (TypeError, ValueError) as e:
                self._error(name, plan, f"cannot evaluate the result {metrics!r}: {e}")

    def _count_violations(self, names: list[str], plan: Plan, found: dict[str, dict[str, Any]]) -> None:
        """Some row is out of bounds: count how many (thresholds and shares need the number)."""
        q = violation_count_query([plan.bound[n] for n in names], self.dialect)
        started = time.perf_counter()
        try:
            cols, rows = self.session.query(q.sql)
        except QueryError as e:
            for n in names:
                self.sql[n].append(q.sql)
                self._error(n, plan, f"counting the violating rows failed: {e}")
            return
        row = dict(zip(cols, rows[0], strict=True))
        for n, roles in q.outputs.items():
            found[n]["violations"] = row[roles["violations"]]
            self.sql[n].append(q.sql)
            self.seconds[n] += (time.perf_counter() - started) / len(names)

    def _sample(self, b: BoundCheck, r: CheckResult) -> None:

        if b.name in self.rows:
            self._sql_samples(b, r)
            return
        sql = sample_query(b, self.dialect)
        if sql is None or not r.violating_count:
            return
        started = time.perf_counter()
        try:
            names, rows = self.session.query(sql, limit=b.sample_limit)
        except QueryError as e:
            r.message += f" (samples unavailable: {e})"
        else:
            r.samples = [json_safe(dict(zip(names, row, strict=True))) for row in rows]
        self.sql.setdefault(b.name, []).append(sql)
        self.seconds[b.name] = self.seconds.get(b.name, 0.0) + time.perf_counter() - started

    def _sql_samples(self, b: BoundCheck, r: CheckResult) -> None:
        """A sql check's samples, from the rows its one statement returned (see sample_policy)."""

        names, rows = self.rows[b.name]
        if b.check.entity is not None:
            rows = [row for row in rows if all(v is not None for v in row[: len(b.check.entity.key)])]
        if b.sample_limit <= 0 or not r.violating_count:
            return
        keep = list(range(len(names)))
        if b.check.sample_columns is None and b.check.entity is None:
            keep = [i for i, n in enumerate(names) if not looks_personal(n)]
            left_out = b.hidden_columns + [n for i, n in enumerate(names) if i not in keep]
            if left_out:
                r.message += (f" (samples leave out {', '.join(left_out)}: they look like personal data; "
                              "list the columns to show in sample_columns)")
        shown = [names[i] for i in keep]
        r.samples = [json_safe(dict(zip(shown, (row[i] for i in keep), strict=True)))
                     for row in rows[: b.sample_limit]]

    def _track(self, b: BoundCheck, r: CheckResult) -> None:
        """Fetch the violating entities and advance them against the previous runs' (state store)."""

        rule = b.check.entity
        assert rule is not None
        if self.entities is None:
            self._fail_tracking(r, "entity tracking keeps its state in the state store: set state_conn_id "
                                   "(or [opsflow] state_conn_id)")
            return
        started = time.perf_counter()
        seen: list[Seen] = []
        complete = True
        if r.violating_count:
            k = len(rule.key)
            try:
                if b.name in self.rows:  # a sql check: its one statement returned the entities
                    rows = [row for row in self.rows[b.name][1] if all(v is not None for v in row[:k])]
                elif b.name in self.entity_rows:  # a reconcile check: its merge collected them (no NULL key)
                    rows = self.entity_rows[b.name]
                else:
                    sql = entity_query(b, self.dialect, rule.max_entities + 1)
                    self.sql.setdefault(b.name, []).append(sql)
                    _, rows = self.session.query(sql)
                for row in rows[: rule.max_entities]:
                    extra = list(row[k:])
                    amount = to_amount(extra.pop(0)) if rule.amount else None
                    since = to_since(extra.pop(0)) if rule.since else None
                    seen.append(Seen(key_text(json_safe(list(row[:k]))), amount, since))
            except QueryError as e:
                self._fail_tracking(r, f"fetching its entities ({', '.join(b.entity_columns)}) failed: {e}")
                return
            except (TypeError, ValueError, AttributeError) as e:
                self._fail_tracking(r, f"reading its entities failed: {e}")
                return
            complete = len(rows) <= rule.max_entities
        now = self.metrics_at or datetime.now(UTC)
        subject = self.entities.subject(b.name)
        try:
            changes, report = track(self.entities.store.load(subject), seen, complete, self.entities.run_key,
                                    now, rule)
            self.entities.store.apply(subject, changes)
        except StateStoreError as e:
            self._fail_tracking(r, f"the state store failed: {e}")
            return
        r.entities = json_safe(report.to_dict())
        r.message = report.text() + (f". {r.message}" if r.message else "")
        if report.escalation and report.open and r.status in ("pass", "warn"):
            r.status = "fail"
            r.message += f". Escalated to error: {report.escalation}"
        self.seconds[b.name] = self.seconds.get(b.name, 0.0) + time.perf_counter() - started

    @staticmethod
    def _fail_tracking(r: CheckResult, why: str) -> None:
        r.status = "error"
        r.message = f"entity tracking: {why}" + (f" (the check itself: {r.message})" if r.message else "")

    def _metric(self, b: BoundCheck, plan: Plan) -> None:

        c = b.check
        assert isinstance(c, MetricCheck)
        if self.history is None:
            self._error(b.name, plan, "metric checks keep their history in the state store: set state_conn_id "
                                      "(or [opsflow] state_conn_id)")
            return
        cols = b.columns
        bound = Bound(c, b.table, b.filter, cols[0] if c.time_column else None,
                      cols[1:] if c.time_column else cols, b.condition if c.sql else None)  # type: ignore[arg-type]
        key = c.history_key or f"{self.history_key}/{c.name}"
        started = time.perf_counter()
        sql: list[str] = []

        def query(text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
            sql.append(text)
            return self.session.query(text)

        try:
            self.results[b.name] = run_metric(bound, self.history, key, self.metrics_at or datetime.now(UTC), query,
                                              self.dialect)
        except (MetricError, QueryError, StateStoreError) as e:
            self._error(b.name, plan, str(e))
        self.sql[b.name] = sql
        self.seconds[b.name] = time.perf_counter() - started

    def _reconcile(self, b: BoundCheck, plan: Plan) -> None:

        assert isinstance(b.check, ReconcileCheck)
        if self.connect is None:
            self._error(b.name, plan, "reconcile checks open their own connections: run them through "
                                      "DataCheckOperator (or pass connect= to run_suite)")
            return
        try:
            done = reconcile(b.check, self.connect, api=self.api)
        except ReconcileError as e:
            self._error(b.name, plan, str(e))
            return
        self.results[b.name] = result = done.result
        if done.entities is not None:
            self.entity_rows[b.name] = done.entities
        self.sql[b.name] = result.sql
        self.seconds[b.name] = result.duration_s

    def _error(self, name: str, plan: Plan, message: str) -> None:
        b = plan.bound.get(name)
        check = b.check if b else next(c for _, c in self.suite.all_checks() if c.name == name)
        table = b.table_name if b else next(t.table for t, c in self.suite.all_checks() if c.name == name)
        self.results[name] = CheckResult(
            name=name, kind=check.kind, table=table, status="error",  # type: ignore[attr-defined]
            severity=check.severity, message=message, description=check.description, owner=check.owner,
        )
