"""Workers killed mid-sync into the CRM and support fakes: SIGKILL the sync process at random points, over many
runs and several seeds, then let a clean run finish, and check every source row is in the destination exactly
once, with its latest values, and that the state store agrees.

As tests/sync/test_crash.py does for the HTTP destination: each run is a real process (tests/sync/crash_worker.py
``crm``: the engine clients of Zendesk organizations and users, Salesforce sObjects through Collections and Bulk
API 2.0, HubSpot tickets; no Airflow), the fake runs in this process and keeps applying what reached it when the
client dies, and the source changes between runs (deterministic random: new ids, renamed records, values going
back to earlier ones, and in mirror mode deleted ids and deleted ids re-added). The kill delay is drawn uniformly
between 0 and the median duration of the runs that finished, measured from the moment the worker, its imports
done, is told to run.

Jobs run on without their client, as on the real systems: a Zendesk job moves a step every 50 ms (jobs in the
order they were submitted), a Bulk API 2.0 job is processed 0.6 s after its upload completed (a thread of the test
lists the org's jobs, which moves them on). So a killed run's jobs may still be running when the next run writes:
a Bulk job left so would overwrite newer values written through Collections (the destination waits for it first;
without that wait the ``auto`` cases fail). Source and state are on PostgreSQL (the diff pushed down) or on two
SQLite files (the lease lock taken over from a dead process).

Checked at the end: the destination's live records equal the source (same external ids, same values); no record
was created more often than its key was (re-)added (Zendesk: creates read from the job results; Salesforce and
HubSpot: the fakes' write logs); every state row is confirmed, with the destination's id of the live record; and
one more run sends nothing.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_opsflow.state.store import StateStore
from tests.sync.crash_worker import BUSY

# Minutes of kill loops: run by `make test`, not by `make unit`.
pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("crash_worker.py")
TIERS = ["LOW", "MEDIUM", "HIGH"]  # HubSpot's ticket priorities; a Zendesk dropdown's and a Salesforce picklist's
EXT = "Warehouse_Id__c"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")

Values = dict[str, Any]  # {"name": ..., "tier": ...}: what the source says and the destination holds


# -- the systems ------------------------------------------------------------------------------------------------


class System:
    """One destination on its fake: how the worker reaches it, what it holds, what it created."""

    label = ""
    fake: Any
    mode = "mirror"
    batch = 100
    concurrency = 4
    mapping: dict[str, Any] = {}

    def destination(self) -> dict[str, Any]:
        raise NotImplementedError

    def settle(self) -> None:
        """Let the fake finish what a killed run left with it (requests still arriving, jobs)."""
        time.sleep(0.05)

    def observe(self) -> None:
        """Called after every run: note what the fake may forget later (Zendesk keeps 100 job statuses)."""

    def quiet(self) -> None:
        """Stop whatever sends requests to the fake besides the sync (before counting a run's requests)."""

    def live(self) -> dict[str, tuple[Values, str]]:
        """External id -> (values, the destination's id) of every live record; fails on a duplicate."""
        raise NotImplementedError

    def creates(self) -> Counter[str]:
        """Records created per external id, over the whole test."""
        raise NotImplementedError


class Zendesk(System):
    def __init__(self, stack: ExitStack, object_type: str) -> None:
        from airflow_opsflow_testing.zendesk_server import FakeZendesk

        self.fake = stack.enter_context(FakeZendesk(rate_limit=10**6))
        self.object_type = object_type
        self.label = f"Zendesk {object_type}"
        self.fake.define_field("organization", "tier", "dropdown", options=TIERS)
        self.fake.define_field("user", "plan", "dropdown", options=TIERS)
        # Jobs move a step (queued, working: half applied, completed) every 50 ms whether or not anyone polls,
        # one after the other as submitted: a killed run's jobs go on while the next run starts.
        self.fake.job_pace(polls=None, seconds=0.05)
        self.fake.latency(0.002)
        self.created: dict[str, set[int]] = {}  # external id -> the Zendesk ids made for it
        self.jobs_seen: set[str] = set()
        if object_type == "organizations":
            self.mapping = {"external_id": "id", "name": "name", "tier": "tier"}
        else:  # users in upsert mode: Zendesk soft-deletes users, a deleted one is not made again
            self.mode = "upsert"
            self.mapping = {"external_id": "id", "name": "name", "email": "email", "plan": "tier"}

    def destination(self) -> dict[str, Any]:
        import base64

        auth = base64.b64encode(f"{self.fake.email}/token:{self.fake.token}".encode()).decode()
        return {"system": "zendesk", "url": f"{self.fake.url}/api/v2", "auth": f"Basic {auth}",
                "object_type": self.object_type, "poll": [0.01, 0.05]}

    def observe(self) -> None:
        jobs = self.fake.jobs
        jobs.tick()
        with jobs.lock:
            done = {i: list(j.results) for i, j in jobs.jobs.items() if not j.active and i not in self.jobs_seen}
        for job_id, results in done.items():  # (jobs a killed run left are read once they are done)
            self.jobs_seen.add(job_id)
            for r in results:
                if r.get("action") == "create":
                    self.created.setdefault(str(r.get("external_id")), set()).add(int(r["id"]))

    def live(self) -> dict[str, tuple[Values, str]]:
        if self.object_type == "organizations":
            records = [(o.external_id, o.name, o.fields.get("tier"), o.id) for o in self.fake.organizations]
        else:
            records = [(u.external_id, u.name, u.fields.get("plan"), u.id) for u in self.fake.users
                       if u.id != self.fake.agent.id and u.active]
        out: dict[str, tuple[Values, str]] = {}
        for ext, name, tier, zid in records:
            assert ext is not None and ext.lower() not in out, f"{self.object_type} {ext!r}: made twice"
            out[ext.lower()] = ({"name": name, "tier": tier}, str(zid))
        return out

    def creates(self) -> Counter[str]:
        self.observe()
        # Every bulk write is a job: all of them were read (the fake keeps the last 100 job statuses).
        submitted = sum(r.status == 200 for r in self.fake.writes())
        assert len(self.jobs_seen) == submitted, (len(self.jobs_seen), submitted)
        return Counter({ext: len(ids) for ext, ids in self.created.items()})


class Salesforce(System):
    def __init__(self, stack: ExitStack, api: str, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow_opsflow_testing.salesforce_server import FakeSalesforce

        for name in _PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
        self.fake = stack.enter_context(FakeSalesforce(api_limit=10**9))
        self.api = api
        self.label = f"Salesforce ({api})"
        self.fake.define_field("Account", EXT, external_id=True, unique=True)
        self.fake.define_field("Account", "Tier__c", "picklist", picklist=TIERS, restricted=True)
        # A Bulk job is processed 0.6 s after its upload completes, when its status is read or the jobs are
        # listed: a thread lists them every 20 ms, as Salesforce works through its queue, whoever waits for
        # them. So a killed run's job may still be running when the next run writes (that run must wait for it).
        self.fake.bulk_progress(polls=0, seconds=0.6)
        self.fake.latency(0.002)
        self.session_id = self.fake.issue_session()
        self._stop = threading.Event()
        self._processor = threading.Thread(target=self._process_jobs, daemon=True)
        self._processor.start()
        stack.callback(self.quiet)
        self.mapping = {EXT: ["id", "string"], "Name": "name", "Tier__c": "tier"}
        # auto: batches of 100, a full one by Bulk, a run's remainder by Collections, which would overtake a job
        # a killed run left running
        self.batch = {"collections": 200, "bulk": 250, "auto": 100}[api]

    def destination(self) -> dict[str, Any]:
        return {"system": "salesforce", "url": self.fake.url, "session": self.session_id,
                "ca_bundle": self.fake.ca_bundle, "object": "Account", "external_id": EXT, "api": self.api,
                "bulk_threshold": self.batch if self.api != "collections" else 10_000, "poll": [0.01, 0.05]}

    def _process_jobs(self) -> None:
        with self.fake.session() as s:
            while not self._stop.wait(0.02):
                answer = s.get(f"{self.fake.url}/services/data/v59.0/jobs/ingest",
                               headers={"Authorization": f"Bearer {self.session_id}"}, timeout=10)
                assert answer.status_code == 200, answer.text

    def quiet(self) -> None:
        self._stop.set()
        self._processor.join()

    def live(self) -> dict[str, tuple[Values, str]]:
        out: dict[str, tuple[Values, str]] = {}
        for r in self.fake.records("Account"):
            ext = str(r[EXT]).lower()
            assert ext not in out, f"Account {ext!r}: made twice"
            out[ext] = ({"name": r["Name"], "tier": r["Tier__c"]}, str(r["Id"]))
        return out

    def creates(self) -> Counter[str]:
        return Counter(str(w.values.get(EXT)).lower() for w in self.fake.creates("Account"))


class HubSpotTickets(System):
    def __init__(self, stack: ExitStack) -> None:
        from airflow_opsflow_testing.hubspot_server import FakeHubSpot

        self.fake = stack.enter_context(FakeHubSpot(rate_limit=10**6, daily_limit=10**9))
        self.label = "HubSpot tickets"
        self.fake.define_property("tickets", "warehouse_id", unique=True)
        self.fake.latency(0.002)
        self.mapping = {"warehouse_id": ["id", "string"], "subject": "name", "hs_ticket_priority": "tier",
                        "hs_pipeline_stage": "stage"}

    def destination(self) -> dict[str, Any]:
        return {"system": "hubspot", "url": self.fake.url, "token": self.fake.token, "object_type": "tickets",
                "id_property": "warehouse_id"}

    def live(self) -> dict[str, tuple[Values, str]]:
        out: dict[str, tuple[Values, str]] = {}
        for t in self.fake.objects("tickets"):
            ext = str(t.properties.get("warehouse_id")).lower()
            assert ext not in out, f"ticket {ext!r}: made twice"
            out[ext] = ({"name": t.properties.get("subject") or "", "tier": t.properties.get("hs_ticket_priority")
                         or ""}, t.id)
        return out

    def creates(self) -> Counter[str]:
        return Counter({k.lower(): n for k, n in self.fake.create_counts("tickets", "warehouse_id").items()})


# -- source, state and worker processes ----------------------------------------------------------------------


@dataclass
class Killed:
    phase: str  # "planning" (no batch announced), "sending", "finished" (not killed)
    busy: bool = False


@dataclass
class Harness:
    """One sync (its own id and source table) of ``system``, its source and state, and the worker processes."""

    system: System
    db: dict[str, Any]  # {"dialect": "postgres", "uri"} or {"dialect": "sqlite", "source", "state"}
    table: str = field(default_factory=lambda: f"crm_{uuid.uuid4().hex[:8]}")
    sync_id: str = field(default_factory=lambda: f"crash-crm-{uuid.uuid4().hex[:10]}")
    busy_retries: int = 0
    seconds: float = 0.0  # the last run that finished, from "go" to its exit

    def __post_init__(self) -> None:
        self.postgres = self.db["dialect"] == "postgres"
        if self.postgres:
            import psycopg2

            self.conn = psycopg2.connect(self.db["uri"])
        else:
            self.conn = sqlite3.connect(self.db["source"])
        self.mark = "%s" if self.postgres else "?"
        self._spare: subprocess.Popen[str] | None = None

    def store(self) -> StateStore:
        if self.postgres:
            import psycopg2

            return StateStore(lambda: psycopg2.connect(self.db["uri"]), "postgres")
        return StateStore(lambda: sqlite3.connect(self.db["state"]), "sqlite")

    def setup(self, rows: dict[int, Values]) -> None:
        store = self.store()
        store.migrate()
        store.close()
        cur = self.conn.cursor()
        cur.execute(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
                    "tier VARCHAR(20) NOT NULL, email VARCHAR(100) NOT NULL, stage VARCHAR(4) NOT NULL)")
        self.conn.commit()
        self.write(rows)

    def write(self, upserts: dict[int, Values] | None = None, deletes: list[int] | None = None) -> None:
        m, cur = self.mark, self.conn.cursor()
        if deletes:
            cur.executemany(f"DELETE FROM {self.table} WHERE id = {m}", [(i,) for i in deletes])
        if upserts:
            cur.executemany(f"DELETE FROM {self.table} WHERE id = {m}", [(i,) for i in upserts])
            cur.executemany(f"INSERT INTO {self.table} VALUES ({m}, {m}, {m}, {m}, '1')",
                            [(i, v["name"], v["tier"], f"user{i}@example.com") for i, v in upserts.items()])
        self.conn.commit()
        cur.close()

    def source(self) -> dict[str, Values]:
        cur = self.conn.cursor()
        cur.execute(f"SELECT id, name, tier FROM {self.table}")
        rows = {str(i): {"name": n, "tier": t} for i, n, t in cur.fetchall()}
        cur.close()
        self.conn.commit()
        return rows

    def state(self) -> dict[str, tuple[str | None, str | None, str]]:
        """key -> (row_hash, dest_ref, status) of this sync's state rows."""
        conn = self.conn if self.postgres else sqlite3.connect(self.db["state"])
        cur = conn.cursor()
        cur.execute(f"SELECT key_text, row_hash, dest_ref, status FROM opsflow_sync_keys WHERE sync_id = {self.mark}",
                    (self.sync_id,))
        rows = {k: (h, ref, s) for k, h, ref, s in cur.fetchall()}
        cur.close()
        conn.commit()
        if conn is not self.conn:
            conn.close()
        return rows

    def config(self) -> str:
        s = self.system
        return json.dumps({"db": self.db, "table": self.table, "key": ["id"], "mapping": s.mapping, "mode": s.mode,
                           "sync_id": self.sync_id, "batch": s.batch, "concurrency": s.concurrency,
                           "destination": s.destination()})

    def _spawn(self) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(WORKER), "crm", self.config()], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def start(self) -> subprocess.Popen[str]:
        """A worker whose imports are done, told to run now; the next one is spawned meanwhile."""
        proc, self._spare = self._spare or self._spawn(), None
        assert proc.stdin is not None and proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "started\n", (line, proc.communicate()[1][-3000:])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        self._spare = self._spawn()
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen[str]) -> tuple[int, list[str], str]:
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out.splitlines(), err

    def run(self) -> dict[str, Any]:
        """One run left to finish; retried while a killed run's lock is not released yet."""
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
            self.system.observe()
            report: dict[str, Any] = json.loads(lines[-1].removeprefix("report "))
            return report
        raise AssertionError("the sync's lock was never released")

    def run_killed(self, delay: float) -> Killed:
        """Start a run and SIGKILL it after ``delay`` seconds (unless it finished first)."""
        proc = self.start()
        started = time.monotonic()
        try:
            proc.wait(timeout=delay)
            self.seconds = time.monotonic() - started
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            killed = True
        rc, lines, err = self.finish(proc)
        sends = sum(line.startswith("send ") for line in lines)
        if not killed:
            if rc == BUSY:
                self.busy_retries += 1
                return Killed("finished", busy=True)
            assert rc == 0, f"worker failed ({rc}):\n{err[-3000:]}"
        self.system.settle()
        self.system.observe()
        return Killed("finished" if not killed else "sending" if sends else "planning")

    def close(self) -> None:
        if self._spare is not None:
            self._spare.kill()
            self._spare.communicate()
        self.conn.close()


class Mutator:
    """Random changes to the source: renames (one in four back to a name the key had), new tiers, new ids and,
    in mirror mode, deletes and deleted ids re-added. Remembers how often each key came back."""

    def __init__(self, seed: int, rows: int, deletes: bool, changes: int = 150, new: int = 30) -> None:
        self.rng, self.deletes, self.changes, self.new = random.Random(seed), deletes, changes, new
        self.present = set(range(1, rows + 1))
        self.gone: set[int] = set()
        self.history: dict[int, list[str]] = {}
        self.next_id = rows + 1
        self.readded: Counter[str] = Counter()

    def value(self, key: int) -> Values:
        past = self.history.setdefault(key, [])
        if past and self.rng.random() < 0.25:
            name = self.rng.choice(past)  # a revert: back to a value the state store may have confirmed
        else:
            name = f"Account {key} {self.rng.getrandbits(32):08x}"  # the key in it: names stay unique
        past.append(name)
        return {"name": name, "tier": self.rng.choice(TIERS)}

    def initial(self) -> dict[int, Values]:
        return {i: self.value(i) for i in sorted(self.present)}

    def step(self, h: Harness) -> None:
        rng, present = self.rng, sorted(self.present)
        upserts = {i: self.value(i) for i in rng.sample(present, rng.randint(0, self.changes))}
        for _ in range(rng.randint(0, self.new)):
            upserts[self.next_id] = self.value(self.next_id)
            self.next_id += 1
        back: list[int] = []
        dropped: list[int] = []
        if self.deletes:
            back = rng.sample(sorted(self.gone), min(len(self.gone), rng.randint(0, 8)))
            upserts.update({i: self.value(i) for i in back})
            dropped = [i for i in rng.sample(present, rng.randint(0, 25)) if i not in upserts]
        h.write(upserts, dropped)
        self.present = (self.present | set(upserts)) - set(dropped)
        self.gone = (self.gone - set(back)) | set(dropped)
        self.readded.update(str(i) for i in back)


def kill_loop(h: Harness, m: Mutator, runs: int, clean_every: int = 5) -> tuple[Counter[str], float]:
    """Calibrate on one clean run, then mutate, start, kill at a random point, ``runs`` times. The kill delay
    is drawn up to the median duration of the runs that finished (clean, or done before their kill)."""
    m.step(h)
    h.run()
    durations = [h.seconds]
    phases: Counter[str] = Counter()
    for i in range(runs):
        m.step(h)
        if i % clean_every == clean_every - 1:
            h.run()
            durations.append(h.seconds)
            phases["clean"] += 1
            continue
        k = h.run_killed(m.rng.uniform(0, statistics.median(durations)))
        if k.phase == "finished" and not k.busy:
            durations.append(h.seconds)
        phases[k.phase] += 1
        phases["busy"] += k.busy
    return phases, statistics.median(durations)


def check_end_state(h: Harness, m: Mutator) -> dict[str, Any]:
    """The destination equals the source, nothing was created twice, the state agrees; one more run sends
    nothing. Returns the last clean run's report."""
    final = h.run()
    source, live = h.source(), h.system.live()
    wrong = sorted((k for k in set(source) | set(live) if source.get(k) != (live.get(k) or (None,))[0]), key=int)
    assert not wrong, [(k, source.get(k), live.get(k)) for k in wrong[:10]]
    creates = h.system.creates()
    twice = {k: n for k, n in creates.items() if n > 1 + m.readded[k]}
    assert not twice, f"records created more often than their key was re-added after a delete: {twice}"
    assert set(source) <= set(creates)  # (Zendesk: every record's create was read from its job's results)
    state = h.state()
    assert set(state) == set(source), (sorted(set(state) ^ set(source), key=int)[:10])
    unconfirmed = {k: v for k, v in state.items() if v[0] is None or v[2] != "ok"}
    assert not unconfirmed, list(unconfirmed.items())[:5]
    refs = {k: ref for k, (_, ref, _) in state.items() if ref != live[k][1]}
    assert not refs, [(k, ref, live[k][1]) for k, ref in list(refs.items())[:5]]
    h.system.quiet()
    mark = len(h.system.fake.requests)
    again = h.run()
    assert len(h.system.fake.requests) == mark, "a run with nothing to send reached the system"
    assert (again["counts"]["added"], again["counts"]["changed"], again["counts"]["deleted"]) == (0, 0, 0), again
    assert again["requests"] == {"total": 0}, again["requests"]
    return final


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExitStack]:
    for name in _PROXY_VARS:  # the worker inherits the environment: 127.0.0.1 goes to no proxy
        monkeypatch.delenv(name, raising=False)
    with ExitStack() as s:
        yield s


def make_db(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> dict[str, Any]:
    if kind == "pg":
        return {"dialect": "postgres", "uri": request.getfixturevalue("pg_uri")}
    return {"dialect": "sqlite", "source": str(tmp_path / "source.db"), "state": str(tmp_path / "state.db")}


def crash(request: pytest.FixtureRequest, tmp_path: Path, system: System, kind: str, seed: int, rows: int,
          runs: int) -> None:
    h = Harness(system, make_db(request, kind, tmp_path))
    request.addfinalizer(h.close)
    m = Mutator(seed, rows, deletes=system.mode == "mirror")
    h.setup(m.initial())
    first = h.run()
    assert first["counts"]["added"] == rows and first["counts"]["failed"] == 0, first
    started = time.monotonic()
    phases, typical = kill_loop(h, m, runs)
    loop = time.monotonic() - started
    final = check_end_state(h, m)
    print(f"\n{system.label} seed {seed} on {kind}: {runs} runs in {loop:.1f} s (clean run {typical:.2f} s): "
          f"{dict(phases)}; lock busy retries {h.busy_retries}; final run {final['counts']}")
    assert phases["sending"] >= runs // 4, phases  # the kills did land mid-delivery, not only before or after


# 3 seeds each; PostgreSQL (source and state in one database, the diff pushed down) and SQLite (two files).
PG = pytest.mark.postgres
CASES = [pytest.param(7, "pg", id="seed7-pg", marks=PG), pytest.param(8, "sqlite", id="seed8-sqlite"),
         pytest.param(9, "pg", id="seed9-pg", marks=PG)]
RUNS = 21  # the last runs killed, so the final clean run has to recover


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_zendesk_organizations_killed_at_random_points(request: pytest.FixtureRequest, tmp_path: Path,
                                                       stack: ExitStack, seed: int, kind: str) -> None:
    crash(request, tmp_path, Zendesk(stack, "organizations"), kind, seed, rows=600, runs=RUNS)


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_zendesk_users_killed_at_random_points(request: pytest.FixtureRequest, tmp_path: Path, stack: ExitStack,
                                               seed: int, kind: str) -> None:
    crash(request, tmp_path, Zendesk(stack, "users"), kind, seed, rows=600, runs=RUNS)


@pytest.mark.parametrize(("api", "seed", "kind"), [
    pytest.param("auto", 7, "pg", id="auto-seed7-pg", marks=PG),
    pytest.param("bulk", 8, "sqlite", id="bulk-seed8-sqlite"),
    pytest.param("collections", 9, "pg", id="collections-seed9-pg", marks=PG),
    pytest.param("auto", 10, "sqlite", id="auto-seed10-sqlite")])
def test_salesforce_killed_at_random_points(request: pytest.FixtureRequest, tmp_path: Path, stack: ExitStack,
                                            monkeypatch: pytest.MonkeyPatch, api: str, seed: int, kind: str) -> None:
    crash(request, tmp_path, Salesforce(stack, api, monkeypatch), kind, seed, rows=1000, runs=RUNS)


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_hubspot_tickets_killed_at_random_points(request: pytest.FixtureRequest, tmp_path: Path, stack: ExitStack,
                                                 seed: int, kind: str) -> None:
    crash(request, tmp_path, HubSpotTickets(stack), kind, seed, rows=600, runs=RUNS)
