"""One sync run, top to bottom: check the plan, take the lock, diff, guard, deliver, record.

Order matters for safety: nothing is sent before the whole configuration checked out (columns,
mapping, destination), new and changed records go before deletes, deletes are counted and guarded before
the first one is sent, and the read watermark only moves when the run completed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.deliver import Deliverer, DeliveryPolicy, DeliveryStats, DestinationDown, Group, Item
from airflow_opsflow.sync.destinations.base import DestinationClient, Operation, TransientError
from airflow_opsflow.sync.diff import Differ
from airflow_opsflow.sync.mapping import Mapping
from airflow_opsflow.sync.plan import Plan, py_key
from airflow_opsflow.sync.ratelimit import RateLimiter
from airflow_opsflow.sync.repo import PENDING, SyncRepo
from airflow_opsflow.sync.report import SyncReport
from airflow_opsflow.sync.spec import SyncSpec, SyncSpecError

log = logging.getLogger(__name__)
MAX_DUPLICATE_KEYS = 100_000
_RETRY_CHUNK = 500
_DELETE_SAMPLE = 100  # keys a mirror's report lists of those it would delete
_DRY_DELETE_CHUNK = 10_000  # a dry run counts its deletes in groups of this many
_NO_LIMIT = 2**63

OPS: dict[str, dict[str, Operation | None]] = {  # mode -> change kind -> operation (None: not sent)
    "upsert": {"added": "upsert", "changed": "upsert"},
    "mirror": {"added": "upsert", "changed": "upsert"},
    "insert": {"added": "insert", "changed": None},
    "update": {"added": "update", "changed": "update"},
}


class SyncFailed(RuntimeError):
    """Too many records were rejected; the good ones were delivered and recorded first."""

    def __init__(self, message: str, report: SyncReport) -> None:
        super().__init__(message)
        self.report = report


class SyncRefused(RuntimeError):
    """A safety guard stopped the deletes (or the whole run); nothing unsafe was sent."""

    def __init__(self, message: str, report: SyncReport) -> None:
        super().__init__(message)
        self.report = report


def config_digest(mapping: Mapping, key: tuple[str, ...], destination: DestinationClient) -> str:
    """Changes when what a record looks like at the destination changes: then every record is re-sent."""
    text = json.dumps([mapping.describe(), list(key), destination.fingerprint()], sort_keys=True, default=str)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:16]


class SyncRun:
    """Run ``spec`` once.

    :param spec: the sync's settings.
    :param source: the source session (not yet entered).
    :param source_sql: the validated source query (:func:`airflow_opsflow.sync.plan.source_query`).
    :param source_table: the source table, when the source is one (its unique indexes spare the duplicate check).
    :param store_factory: opens a new connection to the state store (the recorder thread needs its own).
    :param destination: where records go.
    :param policy: batching, concurrency and retries.
    :param pushdown_ok: the state store is in the source database (the diff may run there).
    :param limiter: the destination's request budget.
    """

    def __init__(self, spec: SyncSpec, source: SqlSource, source_sql: str, store_factory: Callable[[], StateStore],
                 destination: DestinationClient, policy: DeliveryPolicy, pushdown_ok: bool = False,
                 source_table: str | None = None, limiter: RateLimiter | None = None) -> None:
        self.spec = spec
        self.source = source
        self.source_sql = source_sql
        self.source_table = source_table
        self.store_factory = store_factory
        self.dest = destination
        self.policy = policy
        self.pushdown_ok = pushdown_ok
        self.limiter = limiter or RateLimiter()

    # -- the run ---------------------------------------------------------------------------------------

    def run(self) -> SyncReport:
        started = time.monotonic()
        spec = self.spec
        store = self.store_factory()
        repo = SyncRepo(store, spec.state_id)
        try:
            # The lock first: the source snapshot starts with its first query, and must see every state
            # row a previous run committed (new keys are then inserted without a conflict check).
            repo.lock()
            try:
                if not spec.dry_run:  # before the snapshot too: the diff must see the keys it makes pending
                    pending = repo.resolve_marks()
                    if pending:
                        log.warning("sync %r: a previous run stopped before recording %d write(s) it had "
                                    "started; those records are sent again (or deleted)", spec.state_id, pending)
                with self.source as src, _fewer_gc_passes():
                    plan, to_record = self._plan(src)
                    pushdown = self._pushdown(plan)
                    report = self._run_locked(src, repo, plan, to_record, pushdown, store)
            except BaseException:
                # The lock dies with the connection (PostgreSQL, MySQL): a state database that dropped it
                # must not hide the error that stopped the run behind the unlock's own.
                with contextlib.suppress(Exception):
                    repo.unlock()
                raise
            repo.unlock()
        finally:
            store.close()
        report.seconds = time.monotonic() - started
        return self._judge(report)

    def _plan(self, src: SqlSource) -> tuple[Plan, Callable[[Any], dict[str, Any]]]:
        """Check the source, the mapping and the destination; the plan and the row-to-record function."""
        spec = self.spec
        probe = Plan(src.dialect, self.source_sql, spec.primary_key, (), "").probe_sql()
        columns, _ = src.query(probe, "probing the source's columns")
        missing = [k for k in spec.primary_key if k not in columns]
        if missing:
            raise SyncSpecError(f"primary_key column(s) {missing} are not in the source (it has {columns})")
        if spec.cursor and spec.cursor not in columns:
            raise SyncSpecError(f"cursor column {spec.cursor!r} is not in the source (it has {columns})")
        mapping = spec.mapping or Mapping.identity(columns)
        try:
            mapping.check_columns(columns)
        except ValueError as e:
            raise SyncSpecError(f"mapping: {e}") from None
        try:
            problems = self.dest.preflight([dest for dest, _ in mapping.fields], spec.mode)
        except TransientError as e:  # e.g. the destination database is unreachable: retryable
            raise DestinationDown(str(e) if str(e).startswith(self.dest.name) else f"{self.dest.name}: {e}") from None
        if spec.mode == "mirror" and "delete" not in self.dest.operations:
            problems.append(f"{self.dest.name} cannot delete records, so mode='mirror' is not possible")
        needed = {op for op in OPS[spec.mode].values() if op}
        problems += [f"{self.dest.name} does not support {op}" for op in sorted(needed - self.dest.operations)]
        if problems:
            raise SyncSpecError(f"destination {self.dest.name}: " + "; ".join(problems))
        digest = config_digest(mapping, spec.primary_key, self.dest)
        types = src.column_types(probe, "probing the source's column types")
        as_text, stamps, zoned = src.text_columns(types)
        plan = Plan(src.dialect, self.source_sql, spec.primary_key, tuple(mapping.source_columns), digest,
                    spec.cursor, spec.shard, src.hashable_columns(types), as_text, stamps, zoned,
                    src.plain_columns(types))
        return plan, mapping.compile(plan.selected, plan.plain)

    def _pushdown(self, plan: Plan) -> bool:
        if self.spec.diff == "streaming":
            return False
        if self.spec.diff == "pushdown" and not (self.pushdown_ok and plan.in_sql):
            raise SyncSpecError("diff='pushdown' needs the state store in the source database (same connection) "
                                "and a source that computes MD5 (PostgreSQL, MySQL/MariaDB)")
        return self.pushdown_ok and plan.in_sql

    def _run_locked(self, src: SqlSource, repo: SyncRepo, plan: Plan, to_record: Callable[[Any], dict[str, Any]],
                    pushdown: bool, store: StateStore) -> SyncReport:
        spec = self.spec
        meta = repo.meta()
        if meta.hash_kind and meta.hash_kind != plan.hash_kind:
            log.warning("sync %r: keys and hashes were computed as %s, now %s: its state is reset and every "
                        "record will be sent again", spec.state_id, meta.hash_kind, plan.hash_kind)
            repo.reset_hash_kind(plan.hash_kind)
            meta = repo.meta()
        since, full = self._read_window(meta)
        failed_keys = repo.failed_keys() if not full else []
        if failed_keys and not plan.in_sql:
            since, full, failed_keys = None, True, []  # Python-side keys cannot be looked up in SQL: read all
        report = SyncReport(spec.state_id, spec.mode, "pushdown" if pushdown else "streaming", full, spec.dry_run)
        duplicates = self._duplicates(src, plan, since)
        total = None
        if pushdown or spec.mode == "mirror":
            total = int(src.query(plan.count_sql(since), "counting source rows")[1][0][0])
            report.rows_read = total
            # (an approved plan was shown to a person, deletes and all: the survey checks it instead)
            if spec.mode == "mirror" and full and total == 0 and not spec.allow_empty_source \
                    and not spec.approved_plan_hash:
                report.refused = ("the source returned no rows: mirror would delete every synced record "
                                  "(pass allow_empty_source=True if that is intended)")
                if not spec.dry_run:
                    raise SyncRefused(f"sync {spec.state_id!r}: {report.refused}", report)
                report.refused = f"a real run would be refused: {report.refused}"  # the dry run shows the deletes
        high = src.query(plan.max_cursor_sql(since), "reading the cursor's maximum")[1][0][0] if plan.cursor else None

        def new_differ() -> Differ:
            return Differ(plan, src, repo, store.table("sync_keys") if pushdown else None, duplicates,
                          to_record, OPS[spec.mode], resend_all=spec.full_resync,
                          track_keys=spec.mode == "mirror" and full and not pushdown)

        differ = new_differ()
        # Counted before anything is sent: the guard's share must not depend on how many of this run's
        # new records were recorded by the time the deletes are read.
        synced = repo.synced_count() if (spec.mode == "mirror" and full) or self._change_guarded() else 0
        approved = False
        if not spec.dry_run and (spec.approved_plan_hash or self._change_guarded()):
            approved = self._survey(new_differ(), since, failed_keys, full, repo, report, synced)
        # The plan's hash: a dry run's (what an approver sees), and a surveyed run's again as it sends. An
        # ordinary run does not hash (a few % of a full sync's time, measured by bench/sync.py, for nothing).
        hashed = _PlanHash() if spec.dry_run or report.plan_hash else None
        chunks = self._items(differ, since, failed_keys, full, repo, report, synced, approved)
        if hashed is not None:
            chunks = hashed.over(chunks)
        if spec.dry_run:
            assert hashed is not None
            self._dry(chunks, report, synced)
            report.plan_hash = hashed.hexdigest()
        else:
            # Two writers where the database takes parallel commits (SQLite has one writer at a time).
            writers = [SyncRepo(self.store_factory(), spec.state_id)
                       for _ in range(1 if store.dialect == "sqlite" else 2)]
            deliverer = Deliverer(self.dest, self.policy, writers[0].record, self.limiter,
                                  finish=writers[0].store.close, mark=repo.mark, run_id=uuid.uuid4().hex[:16],
                                  more_recorders=[(w.record, w.store.close) for w in writers[1:]])
            try:
                stats = deliverer.run(chunks)
            except SyncRefused:
                self._tally(deliverer.stats, report)  # what went before the deletes were refused
                raise
            self._tally(stats, report)
            repo.clear_marks()  # every marked write was answered and recorded
            if hashed is not None and report.plan_hash != hashed.hexdigest():  # one snapshot: never expected
                log.warning("sync %r: the plan sent (%s) differs from the plan counted before (%s)",
                            spec.state_id, hashed.hexdigest(), report.plan_hash)
                report.plan_hash = hashed.hexdigest()
        c = differ.counts
        report.rows_read = total if total is not None else c.read
        report.counts["unchanged"] = (total - c.read + c.unchanged) if pushdown and total is not None else c.unchanged
        report.counts["invalid"] = sum(c.invalid.values())
        report.counts["skipped"] += c.skipped
        report.invalid, report.invalid_reasons = c.invalid_samples, dict(c.invalid)
        if not spec.dry_run:
            mark = _to_json(high) if plan.cursor else None
            repo.finish_run(plan.hash_kind, report.counts, mark, set_watermark=bool(plan.cursor), full=full)
        return report

    def _read_window(self, meta: Any) -> tuple[Any, bool]:
        spec = self.spec
        if not spec.cursor or spec.full_resync or meta.watermark is None:
            return None, True
        if spec.mode == "mirror" and spec.full_diff_every is not None and (
                meta.last_full_at is None or datetime.now(meta.last_full_at.tzinfo) - meta.last_full_at
                >= spec.full_diff_every):
            return None, True
        since = _from_json(meta.watermark)
        lookback = spec.cursor_lookback
        by_time = isinstance(lookback, timedelta) and isinstance(since, (datetime, date))
        by_number = isinstance(lookback, (int, float)) and isinstance(since, (int, float))
        if by_time or by_number:
            since = since - lookback
        return since, False

    def _duplicates(self, src: SqlSource, plan: Plan, since: Any) -> dict[str, int]:
        if self.source_table and self._declared_unique(src, plan):
            return {}
        _, rows = src.query(plan.duplicates_sql(since, MAX_DUPLICATE_KEYS + 1), "looking for duplicate keys")
        if len(rows) > MAX_DUPLICATE_KEYS:
            raise SyncSpecError(f"primary_key {list(plan.key)} is not a key of the source: over "
                                f"{MAX_DUPLICATE_KEYS:,} values appear more than once")
        n = len(plan.key)
        if plan.in_sql:
            return {str(r[n]): int(r[n + 1]) for r in rows}
        return {k: int(r[n]) for r in rows if (k := py_key(r[:n])) is not None}

    def _declared_unique(self, src: SqlSource, plan: Plan) -> bool:
        assert self.source_table
        sql = plan.unique_index_sql(self.source_table)
        if sql is None:
            return False
        _, rows = src.query(sql, "reading the source table's unique indexes")
        indexes: dict[Any, set[str]] = {}
        for index, col in rows:
            indexes.setdefault(index, set()).add(str(col))
        return any(cols <= set(plan.key) for cols in indexes.values())

    # -- what to send -----------------------------------------------------------------------------------

    def _items(self, differ: Differ, since: Any, failed_keys: list[str], full: bool, repo: SyncRepo,
               report: SyncReport, synced: int, approved: bool = False, dry: bool | None = None) -> Iterator[Group]:
        """What to send, in groups of items sharing an operation and a write (see Deliverer.run). ``approved``:
        this exact plan was approved, the delete guard does not apply; ``dry``: count, send nothing (default:
        the spec's dry_run)."""
        spec = self.spec

        def as_items(chunks: Iterator[list[Item]]) -> Iterator[Group]:
            for chunk in chunks:
                if not chunk:
                    continue
                first = chunk[0]
                if all(i.op == first.op and i.write_id == first.write_id for i in chunk):  # the common case
                    yield first.op, first.write_id, chunk
                    continue
                groups: dict[tuple[Operation, str], list[Item]] = {}
                for item in chunk:
                    groups.setdefault((item.op, item.write_id), []).append(item)
                for (op, write_id), group in groups.items():
                    yield op, write_id, group

        # Records the destination rejected before: retried by key, even when the incremental read skips them.
        for start in range(0, len(failed_keys), _RETRY_CHUNK):
            chunk = failed_keys[start:start + _RETRY_CHUNK]
            yield from as_items(differ.changes(keys=chunk, role="re-reading previously rejected records"))
            differ.exclude.update(chunk)  # the main read passes over them (neither sent nor counted twice)
        yield from as_items(differ.changes(since))
        if spec.mode == "mirror" and full:
            yield from self._deletes(differ, synced, repo, report, approved, dry)

    def _survey(self, differ: Differ, since: Any, failed_keys: list[str], full: bool, repo: SyncRepo,
                report: SyncReport, synced: int) -> bool:
        """Count the whole plan before anything is sent (a pass that sends nothing, in the same source snapshot,
        under the same lock, so the delivery pass that follows plans the same): refuse a plan that is not the
        approved one, or that changes too much. True: this plan was approved, the guards do not apply."""
        spec = self.spec
        scratch = SyncReport(spec.state_id, spec.mode, report.diff, full, True)
        hashed = _PlanHash()
        kinds: dict[str, int] = dict.fromkeys(("added", "changed", "deleted"), 0)
        for _, _, group in hashed.over(self._items(differ, since, failed_keys, full, repo, scratch, synced,
                                                   dry=True)):
            for item in group:
                kinds[item.kind] += 1
        report.plan_hash = hashed.hexdigest()
        what = f"{kinds['added']:,} added, {kinds['changed']:,} changed, {kinds['deleted']:,} deleted"
        if spec.approved_plan_hash:
            if report.plan_hash == spec.approved_plan_hash.strip():
                log.info("sync %r: sending the approved plan %s (%s)", spec.state_id, report.plan_hash, what)
                return True
            report.delete_keys = scratch.delete_keys
            report.refused = (f"the source no longer yields the approved plan (approved plan_hash "
                              f"{spec.approved_plan_hash.strip()}, now {report.plan_hash}: {what}); nothing was "
                              "sent: plan and approve it again")
            raise SyncRefused(f"sync {spec.state_id!r}: {report.refused}", report)
        refused = self._change_guard(kinds["changed"], kinds["deleted"], synced)
        if refused:
            report.delete_keys = scratch.delete_keys
            report.refused = f"{refused}; nothing was sent"
            raise SyncRefused(f"sync {spec.state_id!r}: {report.refused}", report)
        return False

    def _change_guarded(self) -> bool:
        """``max_change_share`` applies (a forced full resync re-sends everything on purpose: it does not)."""
        return self.spec.max_change_share is not None and not self.spec.full_resync

    def _change_guard(self, changed: int, deleted: int, synced: int) -> str | None:
        """Why a run must not change ``changed`` and delete ``deleted`` of ``synced`` records, or None."""
        share = self.spec.max_change_share
        if share is None or not self._change_guarded() or not synced:  # nothing synced yet: nothing to lose
            return None
        allowed = self._share_allows(synced, share)
        if changed + deleted <= allowed:
            return None
        return (f"the run would change {changed:,} and delete {deleted:,} of {synced:,} synced records "
                f"({(changed + deleted) / synced:.1%}), over max_change_share={share:g} (at most {allowed:,} of "
                f"{synced:,}); raise it if the changes are intended, or have the plan approved "
                "(docs/sync.md, 'Approval of risky syncs')")

    def _deletes(self, differ: Differ, synced: int, repo: SyncRepo, report: SyncReport, approved: bool = False,
                 dry: bool | None = None) -> Iterator[Group]:
        """The deletes, guarded: a real run holds them (at most the allowed number) until all were counted.

        ``synced`` is known before the deletes are read, and so is the allowed number: beyond it only a
        count and the first keys are kept, so a broken source on a large mirror is refused without holding
        every synced key in memory. A dry run streams them."""
        spec = self.spec
        dry = spec.dry_run if dry is None else dry
        allowed = _NO_LIMIT if approved else self._allowed_deletes(synced)
        kept: list[Item] = []  # real run: the deletes to send, while within the limits
        never_sent: list[str] = []
        sample: list[str] = []
        count = 0
        for key, row_hash, ref, status in differ.deletes():
            if row_hash is None and ref is None and status != PENDING:
                if count <= allowed:  # a refused run forgets nothing
                    never_sent.append(key)  # the destination never confirmed it: nothing to delete there
                continue
            count += 1
            if len(sample) < _DELETE_SAMPLE:
                sample.append(key)
            if dry:
                kept.append(Item(key, (), None, row_hash, ref, pending=status == PENDING, op="delete", kind="deleted"))
                if len(kept) >= _DRY_DELETE_CHUNK:
                    yield "delete", "", kept
                    kept = []
            elif count <= allowed:
                kept.append(Item(key, (), None, row_hash, ref, pending=status == PENDING, op="delete", kind="deleted"))
            elif kept or never_sent:  # over the limits: refused; only counted from here on
                kept, never_sent = [], []
        refused = self._delete_guard(count, synced) if count > allowed else None
        if dry or refused:
            report.delete_keys = sample  # what it would delete
        if dry:
            if refused and not report.refused:
                report.refused = f"a real run would be refused: {refused}"
        elif refused:
            report.refused = f"{refused}; no record was deleted"
            raise SyncRefused(f"sync {spec.state_id!r}: {report.refused}", report)
        if never_sent and not dry:
            repo.forget(never_sent)
        if kept:
            yield "delete", "", kept

    def _allowed_deletes(self, synced: int) -> int:
        """The most deletes mirror may make of ``synced`` records: ``max_delete_rows`` (default 1), or more
        while within ``max_delete_share``. Refused beyond it."""
        return max(self.spec.max_delete_rows, self._share_allows(synced))

    def _share_allows(self, synced: int, share: float | None = None) -> int:
        """The most records within ``share`` (default ``max_delete_share``) of ``synced``, compared as a share
        (so that 2 of 10 pass at 0.2 whatever the float product's rounding)."""
        share = self.spec.max_delete_share if share is None else share
        if share >= 1:
            return _NO_LIMIT
        n = int(synced * share)
        while n < synced and (n + 1) / synced <= share:
            n += 1
        while n > 0 and n / synced > share:
            n -= 1
        return n

    def _delete_guard(self, deletes: int, synced: int) -> str:
        """Why mirror must not delete ``deletes`` of ``synced`` records (over both limits)."""
        spec = self.spec
        share = deletes / synced if synced else 1.0
        return (f"mirror would delete {deletes:,} of {synced:,} synced records ({share:.1%}), over both limits: "
                f"max_delete_share={spec.max_delete_share:g} (at most {self._share_allows(synced):,} of "
                f"{synced:,}) and max_delete_rows={spec.max_delete_rows:,}; raise either if the deletes are "
                f"intended")

    # -- dry runs and outcomes ---------------------------------------------------------------------------

    def _dry(self, groups: Iterator[Group], report: SyncReport, synced: int = 0) -> None:
        per_op: dict[str, int] = {}
        sample: list[Item] = []
        for item in (i for _, _, group in groups for i in group):
            per_op[item.op] = per_op.get(item.op, 0) + 1
            report.counts[item.kind] += 1
            if len(sample) < self.spec.preview_size:
                sample.append(item)
        refused = self._change_guard(report.counts["changed"], report.counts["deleted"], synced)
        if refused and not report.refused:
            report.refused = f"a real run would be refused: {refused}"
        size = self.policy.batch_size
        report.requests = {op: self.dest.requests_for(op, n, size) for op, n in per_op.items()}  # type: ignore[arg-type]
        current = self.dest.read([i for i in sample if i.op != "delete"]) if sample else None
        for item in sample:
            before = None if current is None else current.get(item.key)
            report.preview.append({"op": item.op, "key": item.key, "diff": _field_diff(item, before, current)})

    @staticmethod
    def _tally(stats: DeliveryStats, report: SyncReport) -> None:
        for kind in ("added", "changed", "deleted"):
            report.counts[kind] = stats.delivered[kind]
        report.counts["failed"] = sum(stats.failed.values())
        report.counts["skipped"] += stats.missing
        report.failures = [{"key": k, "kind": kind, "error": e} for k, kind, e in stats.failures]
        report.requests = {"total": stats.requests}
        report.retries, report.rate_limited, report.splits = stats.retries, stats.rate_limited, stats.splits

    def _judge(self, report: SyncReport) -> SyncReport:
        spec, c = self.spec, report.counts
        attempted = c["added"] + c["changed"] + c["deleted"] + c["failed"]
        by_count = spec.max_failed is not None and c["failed"] > spec.max_failed
        by_share = spec.max_failed_share is not None and attempted > 0 and \
            c["failed"] / attempted > spec.max_failed_share
        # Both set: both must be exceeded (max_failed=0 is the default, a share then loosens it).
        both = spec.max_failed is not None and spec.max_failed_share is not None
        too_many = (by_count and by_share) if both else (by_count or by_share)
        if too_many and not spec.dry_run:
            raise SyncFailed(f"sync {spec.state_id!r}: {c['failed']:,} of {attempted:,} records were rejected "
                             f"(max_failed={spec.max_failed}, max_failed_share={spec.max_failed_share}); the "
                             "others were delivered and recorded, the rejected ones are retried next run", report)
        return report


class _PlanHash:
    """A digest of planned operations (operation, key, row hash) that does not depend on their order: a dry
    run and the real run plan the same records, but may read them in other chunks and orders (parallel
    workers). A sum of 128-bit digests, then hashed with the count."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def over(self, groups: Iterator[Group]) -> Iterator[Group]:
        b2 = hashlib.blake2b
        for group in groups:
            self.total += sum(int.from_bytes(b2(f"{i.op}\x1f{i.key}\x1f{i.row_hash or ''}".encode(),
                                                digest_size=16).digest()) for i in group[2])
            self.count += len(group[2])
            yield group

    def hexdigest(self) -> str:
        text = f"{self.count}:{self.total % 2**128:032x}"
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@contextlib.contextmanager
def _fewer_gc_passes(young: int = 50_000) -> Iterator[None]:
    """Run the cyclic GC less often while a sync streams records (restored after).

    A sync allocates a few objects per row, nearly all freed by reference counting; at the default
    threshold (700) the collector runs every few hundred rows and rescans what survives: measured in
    the benchmark's bare process, half of the main thread's time on a full sync (a task process, which
    holds all of Airflow, has more to rescan). Cycles are still collected, in fewer, larger passes."""
    first, *rest = gc.get_threshold()
    if first == 0 or first >= young:  # disabled by the user, or already raised: leave it
        yield
        return
    gc.set_threshold(young, *rest)
    try:
        yield
    finally:
        if gc.get_threshold()[0] == young:  # unless someone changed it meanwhile
            gc.set_threshold(first, *rest)


def _field_diff(item: Item, before: dict[str, Any] | None, current: Any) -> Any:
    if item.op == "delete":
        return "delete"
    fields = item.fields or {}
    if current is None:
        return {k: {"new": v} for k, v in fields.items()}  # the destination cannot be read
    if before is None:
        return {k: {"old": None, "new": v} for k, v in fields.items()}
    return {k: {"old": before.get(k), "new": v} for k, v in fields.items() if before.get(k) != v}


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return str(value)


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    if isinstance(value, dict) and "date" in value:
        return date.fromisoformat(value["date"])
    return value
