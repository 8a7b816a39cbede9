"""A worker killed mid-sync: SIGKILL the sync process at random points, over many runs, and check the
destination ends exactly equal to the source, with no lost update and no duplicate insert.

Each run is a real process (tests/sync/crash_worker.py: PostgreSQL source and state store, pushed-down
diff, batches of 50 from 4 senders with Idempotency-Key headers) sending to the recording HTTP server of
this process, which keeps applying what reached it when the client dies (as a real API does). The source
changes between runs (deterministic random: new ids, updated values, deleted ids, deleted ids re-added);
the kill delay is drawn uniformly between 0 and the duration of a clean run, measured first (from the
moment the worker, its imports done, is told to run: kills land in the run, not in Python's start-up).

The random changes include the two patterns only write-ahead marks survive (each also has a
deterministic test below): a value going back to the one the state store last confirmed, after a killed
run delivered another one unconfirmed; and a key leaving the source right after a killed run may have
created it at the destination. A state reset (a new hash scheme) by a killed run is tested on its own.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from airflow_opsflow.state.store import StateStore
from tests.sync.crash_worker import BATCH, BUSY, CONCURRENCY

pytestmark = pytest.mark.postgres

WORKER = Path(__file__).with_name("crash_worker.py")
WINDOW = 2 * CONCURRENCY  # batches in flight unrecorded, set explicitly (the default is now 5,000 records' worth)
LATENCY = 0.002  # per request: a run sending a few hundred records and deletes spends ~0.1-0.3 s sending
SEED_ROWS = 3000


@pytest.fixture(scope="module")
def api() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server


@dataclass
class Killed:
    """Where one kill landed (``phase``) and what the run sent before it."""

    phase: str  # "planning" (lock, diff: no request yet), "sending" (or recording), "finished" (not killed)
    sends: int  # batches announced by the worker
    busy: bool = False


@dataclass
class Harness:
    """One sync (its own id, source table and server prefix) and the worker processes that run it."""

    uri: str
    api: RecordingHTTPServer
    mode: str
    table: str
    prefix: str
    sync_id: str = field(default_factory=lambda: f"crash-{uuid.uuid4().hex[:10]}")
    window: int | None = None  # DeliveryPolicy.window (None: the engine's default)
    busy_retries: int = 0
    log: list[tuple[int, str]] = field(default_factory=list)  # (first request index, what ran)
    seconds: float = 0.0  # the last clean run, from "go" to its exit

    def __post_init__(self) -> None:
        self.conn = psycopg2.connect(self.uri)
        self.conn.autocommit = True
        self._spare: subprocess.Popen[str] | None = None

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(statement, params)
        rows = cur.fetchall() if cur.description else []
        cur.close()
        return rows

    def setup(self, rows: dict[int, str]) -> None:
        store = StateStore(lambda: psycopg2.connect(self.uri), "postgres")
        store.migrate()
        store.close()
        self.sql(f"DROP TABLE IF EXISTS {self.table}")
        self.sql(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        self.write(upserts=rows)
        self.sql("DELETE FROM opsflow_sync_keys WHERE sync_id = %s", (self.sync_id,))
        self.sql("DELETE FROM opsflow_sync_meta WHERE sync_id = %s", (self.sync_id,))
        self.api.reset()
        try:
            self.api.state(self.prefix)
        except ValueError:
            self.api.keyed(self.prefix, key_field="id")
        self.api.latency(LATENCY)

    def write(self, upserts: dict[int, str] | None = None, deletes: list[int] | None = None) -> None:
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        if deletes:
            cur.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", (deletes,))
        if upserts:
            ids, values = list(upserts), list(upserts.values())
            cur.execute(f"INSERT INTO {self.table} SELECT * FROM unnest(%s::int[], %s::text[]) "
                        "ON CONFLICT (id) DO UPDATE SET v = excluded.v", (ids, values))
        cur.execute("COMMIT")
        cur.close()

    def source(self) -> dict[str, dict[str, Any]]:
        return {str(i): {"id": i, "v": v} for i, v in self.sql(f"SELECT id, v FROM {self.table}")}

    def confirmed(self) -> set[str]:
        rows = self.sql("SELECT key_text, row_hash, status FROM opsflow_sync_keys WHERE sync_id = %s",
                        (self.sync_id,))
        assert all(h is not None and s == "ok" for _, h, s in rows), [r for r in rows if r[2] != "ok"][:5]
        return {k for k, _, _ in rows}

    def _spawn(self) -> subprocess.Popen[str]:
        extra = [] if self.window is None else [str(self.window)]
        return subprocess.Popen([sys.executable, str(WORKER), self.uri, self.api.url, self.mode, self.sync_id,
                                 self.table, self.prefix, *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def start(self) -> subprocess.Popen[str]:
        """A worker whose imports are done, told to run now; the next one is spawned meanwhile (Python's
        start-up is then off the clock: kills land in the run, not in the imports)."""
        proc, self._spare = self._spare or self._spawn(), None
        assert proc.stdin is not None and proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "started\n", (line, proc.communicate()[1][-3000:])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        self._spare = self._spawn()
        return proc

    def finish(self, proc: subprocess.Popen[str]) -> tuple[int, list[str], str]:
        out, err = proc.communicate(timeout=60)
        return proc.returncode, out.splitlines(), err

    def run(self) -> dict[str, Any]:
        """One run left to finish; retried while the killed run's lock is not released yet."""
        self.log.append((len(self.api.requests), "clean"))
        for _ in range(50):
            proc = self.start()
            started = time.monotonic()
            rc, lines, err = self.finish(proc)
            self.seconds = time.monotonic() - started
            if rc == BUSY:
                self.busy_retries += 1
                time.sleep(0.2)
                continue
            assert rc == 0, f"worker failed ({rc}):\n{err[-3000:]}"
            report: dict[str, Any] = json.loads(lines[-1].removeprefix("report "))
            return report
        raise AssertionError("the sync's lock was never released")

    def run_killed(self, delay: float) -> Killed:
        """Start a run and SIGKILL it after ``delay`` seconds (unless it finished first)."""
        self.log.append((len(self.api.requests), f"killed after {delay:.3f} s"))
        proc = self.start()
        try:
            proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            killed = True
        rc, lines, err = self.finish(proc)
        sends = sum(line.startswith("send ") for line in lines)
        if not killed:
            if rc == BUSY:
                self.busy_retries += 1
                return Killed("finished", sends, busy=True)
            assert rc == 0, f"worker failed ({rc}):\n{err[-3000:]}"
            return Killed("finished", sends)
        time.sleep(0.05)  # requests that reached the server before the kill are still being applied
        return Killed("sending" if sends else "planning", sends)

    def explain(self, keys: set[str]) -> str:
        """What the runs sent for ``keys`` and what the state store holds: for a failure message."""
        rows = self.sql("SELECT key_text, row_hash, status, last_error FROM opsflow_sync_keys "
                        "WHERE sync_id = %s AND key_text = ANY(%s)", (self.sync_id, sorted(keys)))
        lines = [f"state rows: {rows}"]
        starts = [i for i, _ in self.log]
        for n, r in enumerate(self.api.requests):
            if not r.path.startswith(self.prefix):
                continue
            touched = ({str(x.get("id")) for x in r.body if isinstance(x, dict)} if isinstance(r.body, list)
                       else {r.path.rsplit("/", 1)[-1]}) & keys
            if touched:
                run = max((k for k, i in enumerate(starts) if i <= n), default=-1)
                lines.append(f"request {n} in run {run} ({self.log[run][1] if run >= 0 else '?'}): {r.method} "
                             f"{sorted(touched)[:5]} -> {r.status} {r.outcome}")
        return "\n".join(lines[:80])

    def close(self) -> None:
        if self._spare is not None:
            self._spare.kill()
            self._spare.communicate()
        self.conn.close()


@pytest.fixture
def harness(pg_uri: str, api: RecordingHTTPServer) -> Iterator[Any]:
    made: list[Harness] = []

    def make(mode: str, table: str, prefix: str) -> Harness:
        made.append(Harness(pg_uri, api, mode, table, prefix))
        return made[-1]

    yield make
    for h in made:
        h.close()


def fresh(rng: random.Random, it: int) -> str:
    return f"{it}.{rng.getrandbits(40):x}"  # never a value any key held before


class Mutator:
    """Random changes to the source, remembering each key's values (some changes go back to an earlier
    value) and how often each key came back after a delete. Deletes pick from every present key."""

    def __init__(self, h: Harness, seed: int, rows: int, deletes: bool, new: tuple[int, int] = (0, 50)) -> None:
        self.h, self.rng, self.deletes, self.new = h, random.Random(seed), deletes, new
        self.present = set(range(1, rows + 1))
        self.gone: set[int] = set()
        self.history: dict[int, list[str]] = {}  # key -> values it held
        self.next_id = rows + 1
        self.readded: Counter[str] = Counter()
        self.it = 0

    def initial(self) -> dict[int, str]:
        values = {i: fresh(self.rng, 0) for i in sorted(self.present)}
        for i, v in values.items():
            self.history[i] = [v]
        return values

    def value(self, key: int) -> str:
        """A new value, or (one time in four) one the key held before: a revert."""
        past = self.history.setdefault(key, [])
        value = self.rng.choice(past) if past and self.rng.random() < 0.25 else fresh(self.rng, self.it)
        past.append(value)
        return value

    def step(self) -> None:
        self.it += 1
        rng, present = self.rng, sorted(self.present)
        upserts = {i: self.value(i) for i in rng.sample(present, rng.randint(0, 400))}
        for _ in range(rng.randint(*self.new)):
            upserts[self.next_id] = self.value(self.next_id)
            self.next_id += 1
        back: list[int] = []
        dropped: list[int] = []
        if self.deletes:
            back = rng.sample(sorted(self.gone), min(len(self.gone), rng.randint(0, 15)))
            upserts.update({i: self.value(i) for i in back})
            dropped = [i for i in rng.sample(present, rng.randint(0, 60)) if i not in upserts]
        self.h.write(upserts, dropped)
        self.present |= set(upserts)
        self.present -= set(dropped)
        self.gone = (self.gone - set(back)) | set(dropped)
        self.readded.update(str(i) for i in back)


def kill_loop(h: Harness, m: Mutator, runs: int, clean_every: int = 5) -> tuple[Counter[str], float]:
    """Calibrate on one clean run, then mutate, start, kill at a random point, ``runs`` times."""
    m.step()
    h.run()
    typical = h.seconds
    phases: Counter[str] = Counter()
    for i in range(runs):
        m.step()
        if i % clean_every == clean_every - 1:
            h.run()
            phases["clean"] += 1
            continue
        k = h.run_killed(m.rng.uniform(0, typical))
        phases[k.phase] += 1
        phases["busy"] += k.busy
    return phases, typical


@pytest.mark.parametrize("runs", [60])
def test_mirror_killed_at_random_points_ends_equal(harness: Any, runs: int) -> None:
    h: Harness = harness("mirror", "crash_items", "/items")
    m = Mutator(h, seed=20240611, rows=SEED_ROWS, deletes=True)
    h.setup(m.initial())
    first = h.run()
    assert first["counts"]["added"] == SEED_ROWS
    started = time.monotonic()
    phases, typical = kill_loop(h, m, runs)
    loop = time.monotonic() - started

    final = h.run()
    source, dest = h.source(), h.api.state("/items")
    wrong = {k for k in set(source) | set(dest) if source.get(k) != dest.get(k)}
    assert dest == source, h.explain(wrong)  # same keys, same values: no lost update, nothing left over
    assert h.confirmed() == set(source)
    inserts = h.api.inserts("/items")
    duplicated = {k: n for k, n in inserts.items() if n > 1 + m.readded[k]}
    assert not duplicated, f"keys inserted more often than they were re-added after a delete: {duplicated}"
    assert set(inserts) <= set(source) | {str(i) for i in m.gone}
    again = h.run()  # the state agrees with the destination: nothing left to send
    assert (again["counts"]["added"], again["counts"]["changed"], again["counts"]["deleted"]) == (0, 0, 0)
    assert again["requests"] == {"total": 0}

    killed = runs - phases["clean"] - phases["finished"]
    print(f"\nmirror: {runs} runs in {loop:.1f} s (clean run {typical:.2f} s): {dict(phases)}; killed {killed}, "
          f"{phases['sending']} while sending; lock busy retries {h.busy_retries}; final run {final['counts']}")
    assert phases["sending"] >= 5, phases  # the kills did land mid-delivery, not only before or after
    assert phases["clean"] >= runs // 5


@pytest.mark.parametrize("runs", [20])
def test_insert_killed_at_random_points_inserts_each_key_once(harness: Any, runs: int) -> None:
    h: Harness = harness("insert", "crash_items_ins", "/ins")
    # New ids and changed values (insert mode skips those), no delete. Only new ids are sent: more of them
    # and a slower API than in mirror, so that sending is a fair share of a run.
    m = Mutator(h, seed=777, rows=1000, deletes=False, new=(200, 800))
    h.setup(m.initial())
    h.api.latency(0.05)
    assert h.run()["counts"]["added"] == 1000
    phases, typical = kill_loop(h, m, runs, clean_every=5)
    h.run()

    source = h.source()
    assert set(h.api.state("/ins")) == set(source)  # insert mode sends new keys only: values may be older
    assert h.confirmed() == set(source)
    inserts = h.api.inserts("/ins")
    assert set(inserts) == set(source) and max(inserts.values()) == 1  # never created twice
    # What a plain insert-only API would have seen twice: records re-sent and applied again after a kill
    # (their confirmation was lost), bounded by the batches in flight at each kill (the default window).
    applied: Counter[str] = Counter()
    posts = h.api.requests_to("/ins", "POST")
    for r in posts:
        if r.outcome == "applied":
            applied.update(str(rec["id"]) for rec in r.body)
    # A re-sent batch may meet its killed twin still in progress at the server (409: retried later, as
    # Stripe asks); never a key reused with another body (400).
    in_progress = [r for r in posts if r.outcome == "conflict" and r.status == 409]
    assert all(r.outcome in ("applied", "replayed") for r in posts if r not in in_progress), \
        (Counter(r.outcome for r in posts), [r.status for r in posts if r.outcome == "conflict"])
    replayed = sum(r.replay for r in posts)
    resent = sum(n - 1 for n in applied.values() if n > 1)
    window = max(2 * CONCURRENCY, -(-20000 // BATCH))  # DeliveryPolicy's default
    assert resent <= phases["sending"] * window * BATCH, (resent, phases)
    print(f"\ninsert: {runs} runs (clean run {typical:.2f} s): {dict(phases)}; records applied twice "
          f"(absorbed as updates by the keyed API) {resent}, batches answered by Idempotency-Key replay "
          f"{replayed}; lock busy retries {h.busy_retries}")
    assert phases["sending"] >= 2, phases


def sent_records(api: RecordingHTTPServer, prefix: str, since: int) -> int:
    n = 0
    for r in api.requests[since:]:
        if r.path.startswith(prefix):
            n += len(r.body) if r.method == "POST" else 1
    return n


def differing(dest: dict[str, Any], source: dict[str, Any]) -> int:
    return sum(dest.get(k) != source.get(k) for k in set(dest) | set(source))


def test_kill_resends_at_most_the_batches_in_flight(harness: Any) -> None:
    h: Harness = harness("mirror", "crash_items_win", "/win")
    h.window = WINDOW
    rng = random.Random(99)
    h.setup({i: fresh(rng, 0) for i in range(1, SEED_ROWS + 1)})
    h.run()
    h.api.latency(0.01)
    bound, landed, extra = WINDOW * BATCH, 0, []
    for it in range(1, 6):
        ids = list(range(1, SEED_ROWS + 1))
        h.write({i: fresh(rng, it) for i in rng.sample(ids, 1200)})
        proc = h.start()
        wanted = rng.randint(1, 20)  # kill after this many batches (of 24) went out
        sends = 0
        assert proc.stdout is not None
        while sends < wanted and (line := proc.stdout.readline()):
            sends += line.startswith("send ")
        proc.kill()
        h.finish(proc)
        landed += sends >= wanted
        time.sleep(0.1)  # let the server apply what reached it
        changed = differing(h.api.state("/win"), h.source())  # what the destination truly lacks
        mark = len(h.api.requests)
        h.run()
        sent = sent_records(h.api, "/win", mark)
        assert h.api.state("/win") == h.source()
        assert changed <= sent <= changed + bound, (it, changed, sent, bound)
        extra.append(sent - changed)
    print(f"\nwindow: {landed} kills mid-delivery; records re-sent beyond the real changes {extra} "
          f"(bound {bound})")
    assert landed >= 3


def test_revert_after_kill_is_not_lost(harness: Any) -> None:
    h: Harness = harness("mirror", "crash_items_rev", "/rev")
    h.setup({1: "A", 2: "A"})
    h.run()
    h.api.latency(0)
    h.sql(f"UPDATE {h.table} SET v = 'B' WHERE id = 1")
    h.api.hang_next(1.0, path_prefix="/rev")  # the server holds the request, then applies it
    proc = h.start()
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) and not line.startswith("send "):
        pass
    time.sleep(0.2)
    proc.kill()  # the update reached the server; its confirmation will never be recorded
    h.finish(proc)
    deadline = time.monotonic() + 5
    while h.api.state("/rev")["1"]["v"] != "B" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.api.state("/rev")["1"]["v"] == "B"
    h.sql(f"UPDATE {h.table} SET v = 'A' WHERE id = 1")  # back to the value the state store holds
    h.run()
    assert h.api.state("/rev") == h.source()  # the write-ahead mark made key 1 pending: 'A' sent again


def test_insert_then_delete_after_kill_is_not_orphaned(harness: Any) -> None:
    h: Harness = harness("mirror", "crash_items_orphan", "/orphan")
    h.setup({1: "A", 2: "A"})
    h.run()
    h.api.latency(0)
    h.write({3: "A"})
    h.api.hang_next(1.0, path_prefix="/orphan")
    proc = h.start()
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) and not line.startswith("send "):
        pass
    time.sleep(0.2)
    proc.kill()  # the insert of 3 reached the server; its confirmation will never be recorded
    h.finish(proc)
    deadline = time.monotonic() + 5
    while "3" not in h.api.state("/orphan") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "3" in h.api.state("/orphan")
    h.write(deletes=[3])
    h.run()
    assert h.api.state("/orphan") == h.source()  # 3 was marked before its insert went out: deleted


def test_state_reset_by_a_killed_run_keeps_deletes(harness: Any) -> None:
    # Upgrading opsflow changed PostgreSQL's hash scheme (sql-postgres-v1 -> v2): the first run resets the
    # stored hashes. When that run is killed, the keys that left the source must still be deleted by the
    # next one (a reset to NULL hashes made them look never sent: forgotten, left at the destination).
    h: Harness = harness("mirror", "crash_items_kind", "/kind")
    h.setup({i: "A" for i in range(1, 6)})
    h.run()
    h.sql("UPDATE opsflow_sync_meta SET hash_kind = 'sql-postgres-v0' WHERE sync_id = %s", (h.sync_id,))
    h.write(deletes=[4, 5])
    h.api.latency(0)
    h.api.hang_next(1.0, path_prefix="/kind")
    proc = h.start()
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) and not line.startswith("send "):
        pass
    if not line:  # (a reset to NULL hashes had the run refuse the deletes: "would delete over 0 of 0")
        rc, _, err = h.finish(proc)
        pytest.fail(f"the run ended ({rc}) before sending anything:\n{err[-2000:]}")
    proc.kill()  # the reset is committed before anything is sent
    h.finish(proc)
    time.sleep(1.2)  # the held request is applied meanwhile
    report = h.run()
    assert (report["counts"]["changed"], report["counts"]["deleted"]) == (3, 2), report
    assert h.api.state("/kind") == h.source()
    assert h.confirmed() == set(h.source())
    assert h.run()["requests"] == {"total": 0}
