"""Delivery: batches to the destination from a few threads, answers recorded as they come back.

* Batches of ``batch_size`` per operation go to ``concurrency`` sender threads.
* Transient errors (5xx, timeouts) are retried with exponential backoff; rate-limit answers pause every
  sender for the time the destination asked (not a failed attempt).
* A batch the destination refuses as a whole is split in halves until the bad records are isolated;
  the good ones go through.
* Before a batch goes out it is marked in the state store (write-ahead: one row per batch, half a window
  of batches per transaction): a crash can then leave a write unconfirmed, never unknown.
* Writer threads (one per state-store connection) record answers, many batches per transaction. At most
  ``window`` batches are in flight (sent or being sent, not yet recorded): a crash re-sends at most those.
* After ``breaker`` batches in a row exhausted their retries the destination is taken as down and the
  run stops (what was confirmed is recorded; the rest is sent by the next run).
"""

from __future__ import annotations

import logging
import operator
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from airflow_opsflow.sync.destinations import base
from airflow_opsflow.sync.destinations.base import (
    BatchRejected,
    DestinationClient,
    DestinationFailed,
    Operation,
    Outcome,
    Record,
    TransientError,
)
from airflow_opsflow.sync.ratelimit import RateLimiter
from airflow_opsflow.sync.repo import DELETE_FAILED, FAILED, MISSING, OK, Answers

CONFIRMED = base.OK  # the outcome of a record the destination took

log = logging.getLogger(__name__)


class DestinationDown(RuntimeError):
    """The destination kept failing (or refused us outright: ``refused``); the run stopped early."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused  # credentials, permissions or settings: waiting will not help, fixing them will


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to push and how long to insist.

    :param batch_size: records per request.
    :param concurrency: sender threads.
    :param max_attempts: tries per batch on transient errors (rate-limit waits are not tries).
    :param backoff: first retry delay in seconds (doubles each try, jittered, at most 60 s).
    :param max_rate_limit_wait: seconds one batch may spend waiting on rate limits before it fails.
    :param window: batches sent or being sent but not yet recorded, at most: what a crash can make us send
        again (default: 2 x concurrency, and at least 20,000 records' worth).
    :param breaker: consecutive failed batches that stop the run.
    """

    batch_size: int = 100
    concurrency: int = 4
    max_attempts: int = 6
    backoff: float = 1.0
    max_rate_limit_wait: float = 900.0
    window: int | None = None
    breaker: int = 3


@dataclass(slots=True)
class Item(Record):
    """A record to deliver with ``op``; ``kind`` (added/changed/deleted) is for the counts. (A Record
    itself, so that destinations take batches of items as they are: one object per row, not two.)"""

    op: Operation = "upsert"
    kind: str = "added"


Group = tuple[Operation, str, list[Item]]  # (op, write id to repeat or "", items)
Answered = tuple[list[Item], list[Outcome]]  # a batch's items and the destination's outcome for each
_KIND = operator.attrgetter("kind")


@dataclass
class DeliveryStats:
    delivered: Counter[str] = field(default_factory=Counter)  # kind -> records confirmed
    missing: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # kind -> records rejected or given up
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (key, kind, error), first 100
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0


class _Exhausted(Exception):
    pass


class Deliverer:
    """Deliver items to ``destination``; ``record`` stores answers (called from a writer thread).

    :param destination: where records go.
    :param policy: batching, concurrency and retry settings.
    :param record: stores a group of answers in one transaction (the state store).
    :param more_recorders: further ``(record, finish)`` pairs on connections of their own: writers that
        record in parallel (PostgreSQL and MySQL; a commit's wait is mostly the database's).
    :param mark: commits write-ahead marks ``(write_id, op, keys, planned refs)``, one per batch, before the
        batches are sent.
    :param run_id: prefix of this run's write ids (one per batch: ``<run_id>-<n>``). Records that repeat an
        earlier write (their ``write_id`` is set) are batched with the other records of that write, so a
        batch a killed run may have delivered goes out again as it was (same idempotency key).
    :param finish: called by the writer thread when done (closes its connection: SQLite's are per thread).
    :param limiter: the destination's shared request budget (the one its transport paces with): rate-limit
        answers pause it for every sender.
    """

    def __init__(self, destination: DestinationClient, policy: DeliveryPolicy,
                 record: Callable[[Answers], None], limiter: RateLimiter | None = None,
                 finish: Callable[[], None] | None = None,
                 mark: Callable[[list[tuple[str, str, list[str], list[str | None] | None]]], None] | None = None,
                 run_id: str = "run",
                 more_recorders: Sequence[tuple[Callable[[Answers], None], Callable[[], None] | None]] = ()) -> None:
        self.dest = destination
        self._recorders = [(record, finish), *more_recorders]
        self._run_id = run_id
        self._batches = 0
        self._mark = mark
        self.policy = policy
        self.limiter = limiter or RateLimiter()
        self.stats = DeliveryStats()
        self._lock = threading.Lock()
        # Enough batches in flight to keep the senders busy while the recorders commit, and the reader
        # working on the next fetch (10,000 rows) meanwhile: measured, 5,000 records' worth left the
        # reader waiting half of a full sync; 40,000 gained nothing over 20,000.
        window = policy.window or max(2 * policy.concurrency, -(-20000 // policy.batch_size))
        self._slots = threading.BoundedSemaphore(window)
        # Marks are committed for half a window at a time: the senders work through one half while the
        # next is marked.
        self._mark_every = max(1, window // 2) * policy.batch_size
        self._answers: queue.Queue[tuple[Answered, Answers] | None] = queue.Queue()
        self._abort: BaseException | None = None
        self._exhausted_in_a_row = 0

    # -- the producer side -------------------------------------------------------------------------

    def run(self, groups: Iterable[Group]) -> DeliveryStats:
        """Send everything; raise DestinationDown (or the recorder's error) when the run had to stop.

        Items come in groups ``(op, write_id, items)``: one operation, and either fresh writes (``""``: each
        batch gets a write id of this run) or the repeat of one earlier write."""
        writers = [threading.Thread(target=self._writer, args=pair, name=f"opsflow-sync-recorder_{n}", daemon=True)
                   for n, pair in enumerate(self._recorders)]
        for writer in writers:
            writer.start()
        buffers: dict[tuple[str, str], list[Item]] = {}  # (op, repeated write id or "") -> items
        ready: list[list[Item]] = []  # full batches waiting for their marks
        size = self.policy.batch_size

        def release() -> None:
            for batch in ready:
                if not batch[0].write_id:
                    self._batches += 1
                    write_id = f"{self._run_id}-{self._batches}"
                    for i in batch:
                        i.write_id = write_id
            if self._mark is not None and ready:
                planned = self.dest.planned_ref if self.dest.plans_refs else None
                self._mark([(batch[0].write_id, batch[0].op, [i.key for i in batch],
                             [planned(i) for i in batch] if planned and batch[0].op != "delete" else None)
                            for batch in ready])
            for batch in ready:
                if self._abort is None:
                    self._submit(pool, batch)
            ready.clear()

        with ThreadPoolExecutor(self.policy.concurrency, thread_name_prefix="opsflow-sync-send") as pool:
            try:
                waiting = 0
                for op, write_id, group in groups:
                    buf = buffers.setdefault((op, write_id), [])
                    buf.extend(group)
                    full = len(buf) - len(buf) % size
                    if full:
                        ready.extend(buf[i:i + size] for i in range(0, full, size))
                        del buf[:full]
                        waiting += full
                    if waiting >= self._mark_every:
                        if self._abort is not None:
                            break
                        release()
                        waiting = 0
                ready.extend(buf for buf in buffers.values() if buf)
                if self._abort is None:
                    release()
            finally:
                pool.shutdown(wait=True)  # every batch answered (_work catches everything)
                for _ in writers:
                    self._answers.put(None)  # one stop sign each
                for writer in writers:
                    writer.join()
        if self._abort is not None:
            raise self._abort
        return self.stats

    def _submit(self, pool: ThreadPoolExecutor, batch: list[Item]) -> None:
        self._slots.acquire()  # released by the writer once the batch's answers are recorded
        pool.submit(self._work, batch)  # (no future kept: thousands of them would only feed the GC)

    # -- senders -------------------------------------------------------------------------------------

    def _work(self, batch: list[Item]) -> None:
        answers: Answered = ([], [])
        try:
            if self._abort is None:
                answers = self._deliver(batch)
        except BaseException as e:
            self._stop(e if isinstance(e, DestinationDown) else DestinationDown(
                f"{self.dest.name}: {type(e).__name__}: {e}"))
        finally:
            self._answers.put((answers, self._tabulate(*answers)))

    def _deliver(self, batch: list[Item]) -> Answered:
        """Send ``batch`` (splitting it when refused as a whole): its items and their outcomes, in order."""
        op = batch[0].op
        try:
            outcomes = self._send(op, batch)
        except BatchRejected as e:
            if len(batch) == 1:
                return batch, [Outcome("error", str(e))]
            with self._lock:
                self.stats.splits += 1
            mid = len(batch) // 2
            (left, left_out), (right, right_out) = self._deliver(batch[:mid]), self._deliver(batch[mid:])
            return left + right, left_out + right_out
        except _Exhausted as e:
            with self._lock:
                self._exhausted_in_a_row += 1
                down = self._exhausted_in_a_row >= self.policy.breaker
            if down:
                self._stop(DestinationDown(f"{self.dest.name} kept failing: {e}; stopped after "
                                           f"{self.policy.breaker} batches in a row gave up"))
            return batch, [Outcome("error", str(e))] * len(batch)
        except DestinationFailed as e:
            said = str(e)  # the client names itself already, as a rule
            self._stop(DestinationDown(said if said.startswith(self.dest.name) else f"{self.dest.name}: {said}",
                                       refused=True))
            return [], []
        with self._lock:
            self._exhausted_in_a_row = 0
        if len(outcomes) != len(batch):
            raise DestinationDown(f"{self.dest.name} answered {len(outcomes)} results for {len(batch)} records")
        return batch, outcomes

    def _send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        attempts, waited = 0, 0.0
        # Hand-written, not tenacity: per-batch retries inside the delivery loop, the hot path bench/sync.py times.
        while True:
            if self._abort is not None:
                raise _Exhausted("the run is stopping")
            with self._lock:
                self.stats.requests += 1
            try:
                return self.dest.send(op, records)
            except TransientError as e:
                if e.rate_limited:
                    delay = e.retry_after if e.retry_after is not None else min(60.0, 2.0 ** min(attempts + 1, 6))
                    waited += delay
                    with self._lock:
                        self.stats.rate_limited += 1
                    if waited > self.policy.max_rate_limit_wait:
                        raise _Exhausted(f"{e} (rate limited for {waited:.0f} s)") from None
                    self.limiter.pause(delay)
                    continue
                attempts += 1
                if attempts >= self.policy.max_attempts:
                    raise _Exhausted(f"{e} (gave up after {attempts} attempts)") from None
                with self._lock:
                    self.stats.retries += 1
                delay = e.retry_after if e.retry_after is not None else (
                    min(60.0, self.policy.backoff * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0))
                time.sleep(delay)

    def _stop(self, error: BaseException) -> None:
        with self._lock:
            if self._abort is None:
                self._abort = error

    # -- the recorder --------------------------------------------------------------------------------

    def _writer(self, record: Callable[[Answers], None], finish: Callable[[], None] | None) -> None:
        try:
            self._write_answers(record)
        finally:
            if finish is not None:
                try:
                    finish()
                except Exception:
                    log.debug("closing the recorder's connection failed", exc_info=True)

    def _write_answers(self, record: Callable[[Answers], None]) -> None:
        done = False
        while not done:
            groups = [self._answers.get()]
            while groups[-1] is not None:  # everything already answered goes into the same transaction
                try:
                    groups.append(self._answers.get_nowait())
                except queue.Empty:
                    break
            done = groups[-1] is None  # (a writer takes one stop sign, never another's)
            batches = [g for g in groups if g is not None]
            table = Answers()
            for _, answers in batches:
                table.extend(answers)
            try:
                if len(table) and (self._abort is None or isinstance(self._abort, DestinationDown)):
                    record(table)
                    with self._lock:
                        for (items, outcomes), _ in batches:
                            self._count(items, outcomes)
            except BaseException as e:
                self._stop(e)
            finally:
                for _ in batches:
                    self._slots.release()

    @staticmethod
    def _tabulate(items: list[Item], outcomes: list[Outcome]) -> Answers:
        """The answers as the state store takes them (built in the sender thread, off the recorder's)."""
        table = Answers()
        if not items:
            return table
        if items[0].op != "delete" and outcomes.count(CONFIRMED) == len(outcomes):  # the common case
            table.confirmed = [(r.key, r.row_hash, r.ref, OK, r.write_id, not r.stored) for r in items]
            return table
        for r, o in zip(items, outcomes, strict=True):
            delete = r.op == "delete"
            if o.status == "error":
                table.rejected.append((r.key, o.ref or r.ref, DELETE_FAILED if delete else FAILED,
                                       o.error or "rejected", r.write_id))
            elif delete:  # confirmed (a delete of an already absent record is as good as done)
                table.deleted.append(r.key)
            else:
                table.confirmed.append((r.key, r.row_hash, o.ref or r.ref, MISSING if o.status == "missing" else OK,
                                        r.write_id, not r.stored))
        return table

    def _count(self, items: list[Item], outcomes: list[Outcome]) -> None:
        s = self.stats
        if outcomes.count(CONFIRMED) == len(outcomes):  # the common case: one tally per kind
            s.delivered.update(map(_KIND, items))
            return
        for item, o in zip(items, outcomes, strict=True):
            if o.status == "error":
                s.failed[item.kind] += 1
                if len(s.failures) < 100:
                    s.failures.append((item.key, item.kind, o.error or "rejected"))
            elif o.status == "missing" and item.op != "delete":
                s.missing += 1
            else:
                s.delivered[item.kind] += 1
