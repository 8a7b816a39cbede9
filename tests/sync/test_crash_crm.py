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

The Zendesk ticket ranking (``organization_tickets``: an account's priority and tags set on its organization's
open tickets) has checks of its own (:func:`check_ranking`): its records create nothing, and what it writes is
the tickets the fake holds, which the test also opens, solves and closes between runs. Its ranks flap (a row
goes back to its value before), so a killed run's job still queued when the next run lists the organization
would, unwaited for, overwrite the newer value on tickets that run found already ranked: checked after every
run left to finish, not only at the end, where a later change could hide it.
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
PRIORITIES = ["low", "normal", "high", "urgent"]  # Zendesk's ticket priorities
OPEN = ("new", "open", "pending", "hold")  # what the ranking lists (status<solved)
SEEDED_STATUSES = ["new", "open", "open", "open", "pending", "hold", "solved", "solved", "closed", "closed"]
RANK_PACE = 0.5  # seconds a ranking job spends queued, then working (half its tickets applied)
RUN_HEADER = "X-Crash-Run"

Values = dict[str, Any]  # {"name": ..., "tier": ...} (ranking: {"priority", "tags"}): a source row's values


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


class HubSpotAssociatedTickets(HubSpotTickets):
    """HubSpot tickets each associated with the company its row names (``company``: a company's ``account_key``);
    the ``companies`` companies are made in the fake up front (not synced)."""

    def __init__(self, stack: ExitStack, companies: int) -> None:
        import requests

        super().__init__(stack)
        self.label = "HubSpot tickets with company associations"
        self.fake.define_property("companies", "account_key", unique=True)
        inputs = [{"properties": {"account_key": f"acct-{c}", "name": f"Company {c}"}}
                  for c in range(1, companies + 1)]
        answer = requests.post(f"{self.fake.url}/crm/v3/objects/companies/batch/create", json={"inputs": inputs},
                               headers={"Authorization": f"Bearer {self.fake.token}"}, timeout=10)
        assert answer.status_code == 201, answer.text
        self.companies = {r["properties"]["account_key"]: r["id"] for r in answer.json()["results"]}
        self.mapping = {**self.mapping, "company_key": "company"}

    def destination(self) -> dict[str, Any]:
        return {**super().destination(), "associations": [["companies", "company_key", "account_key"]]}


class ZendeskRanking(System):
    """The ranking of organizations' open tickets (``organization_tickets``): ``orgs`` organizations (external id
    = the account id) with an uneven number of tickets in every status, and a few tickets of no organization;
    between runs the test opens, solves and closes tickets (:meth:`touch`). Zendesk's search index lag is off:
    what a run lists is what the fake holds (a killed run's jobs still running included)."""

    mode = "upsert"  # mirror is refused: a row leaving the source has nothing to undo
    # Small batches, many senders: a batch's jobs go one after the other (one per distinct change), so a run's
    # organizations are listed and their jobs submitted at about the same time, whichever batch they are in.
    batch = 3
    concurrency = 8
    mapping = {"external_id": ["id", "string"], "priority": "priority", "tags": "tags"}

    def __init__(self, stack: ExitStack, seed: int, orgs: int) -> None:
        from airflow_opsflow_testing.zendesk_server import FakeZendesk

        self.fake = stack.enter_context(FakeZendesk(rate_limit=10**6, search_export_limit=10**6))
        self.label = "Zendesk ticket ranking"
        self.fake.search_delay(0)
        # Jobs move a step every RANK_PACE s whether or not anyone polls: a killed run's update_many is still
        # queued or half applied when the next run lists the same organization's tickets.
        self.fake.job_pace(polls=None, seconds=RANK_PACE)
        self.fake.latency(0.002)
        rng = random.Random(seed)
        self.orgs = {str(k): self.fake.add_organization(f"Account {k}", external_id=str(k)).id
                     for k in range(1, orgs + 1)}
        for org_id in [*self.orgs.values(), None, None]:
            for _ in range(rng.choice([0, 1, 1, 2, 3, 4, 6, 9])):
                self.fake.add_ticket(status=rng.choice(SEEDED_STATUSES), organization_id=org_id,
                                     priority=rng.choice([None, *PRIORITIES]),
                                     tags=rng.sample(["billing", "renewal", "vip", "onboarding"], rng.randint(0, 2)))
        tickets = self.fake.tickets
        self.seeded = len(tickets)
        self.opened: list[int] = []  # tickets the test opened between runs
        self.born = {t.id: (t.priority, list(t.tags)) for t in tickets}  # each ticket's values when made
        self.left_open = {t.id: 0 for t in tickets if t.status not in OPEN}  # -> request log mark when it left

    def destination(self) -> dict[str, Any]:
        import base64

        auth = base64.b64encode(f"{self.fake.email}/token:{self.fake.token}".encode()).decode()
        # A token per worker process: which requests came from one run (see check_ranking).
        return {"system": "zendesk", "url": f"{self.fake.url}/api/v2", "auth": f"Basic {auth}",
                "object_type": "organization_tickets", "poll": [0.01, 0.05], "search_per_minute": 10**6,
                "headers": {RUN_HEADER: uuid.uuid4().hex}}

    def touch(self, rng: random.Random, latest: dict[int, Values]) -> None:
        """Between runs: open a ticket on a random organization (ranked by the account's trigger, as the latest
        row says, before this step changes the row), solve open tickets, close the solved ones (Zendesk's
        automation, 4 days on)."""
        keys = list(self.orgs)
        for _ in range(rng.choice([0, 0, 1, 2])):
            key = rng.choice(keys)
            row = latest.get(int(key))
            priority = row["priority"] if row else rng.choice(PRIORITIES)
            ticket = self.fake.add_ticket(status=rng.choice(OPEN), organization_id=self.orgs[key], priority=priority,
                                          tags=row["tags"].split() if row else [])
            self.opened.append(ticket.id)
            self.born[ticket.id] = (ticket.priority, list(ticket.tags))
        open_ids = [t.id for t in self.fake.tickets if t.status in OPEN]
        for tid in rng.sample(open_ids, min(len(open_ids), rng.choice([0, 0, 1, 2, 3]))):
            self.left_open[tid] = self.fake.mark()
            self.fake.desk.update(tid, {"ticket": {"status": "solved"}}, self.fake.agent)
        if rng.random() < 0.3:
            self.fake.advance(days=4)
            self.fake.close_solved(4)

    def live(self) -> dict[str, tuple[Values, str]]:
        raise NotImplementedError("the ranking's end state is checked by check_ranking")

    def creates(self) -> Counter[str]:
        raise NotImplementedError("the ranking creates nothing: check_ranking counts the tickets")


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


class RankingHarness(Harness):
    """The ranking's source: account id -> priority and tags (space-separated). After every run left to finish
    (the clean ones of the kill loop included), every open ticket is ranked as the source says: a killed run's
    job that overwrote a newer value is caught when it happens, not only if no later change hides it."""

    system: ZendeskRanking

    def run(self) -> dict[str, Any]:
        report = super().run()
        assert report["counts"]["failed"] == 0, report  # (a ticket closed before its job ran is no failure)
        wrong = misranked(self.source(), self.system)
        assert not wrong, (len(wrong), wrong[:10])
        return report

    def setup(self, rows: dict[int, Values]) -> None:
        store = self.store()
        store.migrate()
        store.close()
        cur = self.conn.cursor()
        cur.execute(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, priority VARCHAR(10) NOT NULL, "
                    "tags VARCHAR(100) NOT NULL)")
        self.conn.commit()
        self.write(rows)

    def write(self, upserts: dict[int, Values] | None = None, deletes: list[int] | None = None) -> None:
        m, cur = self.mark, self.conn.cursor()
        rows = upserts or {}
        cur.executemany(f"DELETE FROM {self.table} WHERE id = {m}", [(i,) for i in [*rows, *(deletes or [])]])
        cur.executemany(f"INSERT INTO {self.table} VALUES ({m}, {m}, {m})",
                        [(i, v["priority"], v["tags"]) for i, v in rows.items()])
        self.conn.commit()
        cur.close()

    def source(self) -> dict[str, Values]:
        cur = self.conn.cursor()
        cur.execute(f"SELECT id, priority, tags FROM {self.table}")
        rows = {str(i): {"priority": p, "tags": t} for i, p, t in cur.fetchall()}
        cur.close()
        self.conn.commit()
        return rows


class Ranking(Mutator):
    """Source changes for the ranking: ranks flap (about half the rows changed by the last step go back to
    their value before, which their organization's tickets may still have while a killed run's job is queued),
    other rows get a random priority; ``vip`` for urgent and now and then ``renewal``; accounts join the source
    (and never leave: upsert). Before each change, tickets are opened, solved and closed."""

    def __init__(self, seed: int, system: ZendeskRanking, rows: int, joining: int) -> None:
        super().__init__(seed, rows, deletes=False, changes=8)
        self.system = system
        self.joining = list(range(rows + 1, rows + joining + 1))  # organizations that join the source later
        self.latest: dict[int, Values] = {}
        self.last: list[int] = []  # the keys the last step changed

    def value(self, key: int, back: bool = False) -> Values:
        past = self.history.setdefault(key, [])
        priority = past[-2] if back and len(past) >= 2 else self.rng.choice(PRIORITIES)
        past.append(priority)
        tags = ["vip"] if priority == "urgent" else []
        if self.rng.random() < 0.15:
            tags.append("renewal")
        self.latest[key] = {"priority": priority, "tags": " ".join(tags)}
        return self.latest[key]

    def step(self, h: Harness) -> None:
        rng = self.rng
        self.system.touch(rng, self.latest)
        upserts = {i: self.value(i, back=True) for i in self.last if rng.random() < 0.5}
        for i in rng.sample(sorted(self.present), rng.randint(0, self.changes)):
            upserts.setdefault(i, self.value(i))
        for _ in range(min(len(self.joining), rng.randint(0, 2))):
            key = self.joining.pop(0)
            upserts[key] = self.value(key)
        h.write(upserts)
        self.present |= set(upserts)
        self.last = sorted(upserts)


class AssociationHarness(Harness):
    """The tickets' source with a ``company`` column: the account_key of the company each ticket belongs to."""

    def setup(self, rows: dict[int, Values]) -> None:
        store = self.store()
        store.migrate()
        store.close()
        cur = self.conn.cursor()
        cur.execute(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
                    "tier VARCHAR(20) NOT NULL, stage VARCHAR(4) NOT NULL, company VARCHAR(20) NOT NULL)")
        self.conn.commit()
        self.write(rows)

    def write(self, upserts: dict[int, Values] | None = None, deletes: list[int] | None = None) -> None:
        m, cur, rows = self.mark, self.conn.cursor(), upserts or {}
        cur.executemany(f"DELETE FROM {self.table} WHERE id = {m}", [(i,) for i in [*rows, *(deletes or [])]])
        cur.executemany(f"INSERT INTO {self.table} VALUES ({m}, {m}, {m}, '1', {m})",
                        [(i, v["name"], v["tier"], v["company"]) for i, v in rows.items()])
        self.conn.commit()
        cur.close()

    def source(self) -> dict[str, Values]:
        """The values the ticket's properties hold (the company is checked by :func:`check_associations`)."""
        return {k: {"name": v["name"], "tier": v["tier"]} for k, v in self.rows().items()}

    def rows(self) -> dict[str, Values]:
        cur = self.conn.cursor()
        cur.execute(f"SELECT id, name, tier, company FROM {self.table}")
        rows = {str(i): {"name": n, "tier": t, "company": c} for i, n, t, c in cur.fetchall()}
        cur.close()
        self.conn.commit()
        return rows


class Moves(Mutator):
    """The mutator's changes, each row also naming a company: of the rows a step changes, about three in ten move
    to another company with nothing else changed and two in ten move along with a rename (one move in four back
    to the company before); deleted ids come back under any company. Remembers every company a key named."""

    def __init__(self, seed: int, rows: int, companies: list[str]) -> None:
        super().__init__(seed, rows, deletes=True)
        self.companies = companies
        self.latest: dict[int, Values] = {}
        self.moves: dict[int, list[str]] = {}  # key -> the companies its rows named, in order
        self.moved = 0

    def _company(self, key: int, move: bool) -> str:
        past = self.moves.setdefault(key, [])
        if not past:
            company = self.rng.choice(self.companies)
        elif not move:
            company = past[-1]
        elif len(past) >= 2 and past[-2] != past[-1] and self.rng.random() < 0.25:
            company = past[-2]  # back to the company before, still associated (associations are only added)
        else:
            company = self.rng.choice([c for c in self.companies if c != past[-1]])
        if past and company != past[-1]:
            self.moved += 1
        past.append(company)
        return company

    def value(self, key: int) -> Values:
        current, draw = self.latest.get(key), self.rng.random()
        if current is not None and draw < 0.3:  # only the company changes: the key alone makes the row send
            values = {**current, "company": self._company(key, move=True)}
        else:
            values = {**super().value(key), "company": self._company(key, move=current is not None and draw < 0.5)}
        self.latest[key] = values
        return values


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


def misranked(source: dict[str, Values], z: ZendeskRanking) -> list[Any]:
    """The open tickets of the source's organizations that lack the row's priority or one of its tags."""
    ranked = {z.orgs[k]: v for k, v in source.items()}
    return [(t.id, t.organization_id, t.status, t.priority, t.tags, ranked[t.organization_id])
            for t in z.fake.tickets if t.organization_id in ranked and t.status in OPEN and (
                t.priority != ranked[t.organization_id]["priority"]
                or not set(ranked[t.organization_id]["tags"].split()) <= set(t.tags))]


def check_ranking(h: Harness, z: ZendeskRanking) -> dict[str, Any]:
    """Every open ticket of each account's organization has the latest row's priority and tags; the sync made no
    ticket; tickets never open, or of organizations never in the source, kept their values and were never
    sent; tickets the test solved were never sent by a run that started after; the state agrees; one more run
    sends nothing. Returns the last clean run's report."""
    final = h.run()
    source = h.source()
    tickets = z.fake.tickets
    assert len(tickets) == z.seeded + len(z.opened), "the sync created tickets"
    wrong = misranked(source, z)
    assert not wrong, (len(wrong), wrong[:10])
    ranked = {z.orgs[k] for k in source}
    assert any(t.organization_id not in ranked | {None} for t in tickets)  # some organizations are left out
    sent: dict[int, list[tuple[int, str]]] = {}  # ticket id -> (log index, run token) of each update_many
    first: dict[str, int] = {}  # run token -> log index of the run's first request
    for n, r in enumerate(z.fake.requests):
        run = next((v for k, v in r.headers.items() if k.lower() == RUN_HEADER.lower()), "")
        first.setdefault(run, n)
        if r.name == "update_many_tickets":
            for tid in r.query["ids"][0].split(","):
                sent.setdefault(int(tid), []).append((n, run))
    kept = [t for t in tickets if z.left_open.get(t.id) == 0 or t.organization_id not in ranked]
    changed = [(t.id, t.priority, t.tags, z.born[t.id]) for t in kept if (t.priority, t.tags) != z.born[t.id]]
    assert not changed, changed[:10]
    touched = sorted(t.id for t in kept if t.id in sent)
    assert not touched, f"tickets never open, or of organizations not in the source, were sent: {touched[:10]}"
    # A ticket solved between runs may still be in a killed run's job, but no later run may list it.
    late = sorted(tid for tid, mark in z.left_open.items() if any(first[run] >= mark for _, run in sent.get(tid, [])))
    assert not late, f"tickets sent by a run that started after they were solved: {late[:10]}"
    state = h.state()
    assert set(state) == set(source), sorted(set(state) ^ set(source), key=int)[:10]
    bad = {k: v for k, v in state.items() if v[0] is None or v[2] != "ok" or v[1] != str(z.orgs[k])}
    assert not bad, list(bad.items())[:5]
    mark = z.fake.mark()
    again = h.run()
    assert z.fake.mark() == mark, "a run with nothing to send reached Zendesk"
    assert (again["counts"]["added"], again["counts"]["changed"]) == (0, 0), again
    assert again["requests"] == {"total": 0}, again["requests"]
    return final


def check_associations(h: AssociationHarness, hs: HubSpotAssociatedTickets, m: Moves) -> None:
    """Every live ticket is associated with the company its latest row names, each company at most once (one
    association type, HubSpot's unlabeled ticket-to-company), and with no company its rows never named. Old
    companies stay associated after a move: the destination only adds associations (documented)."""
    from airflow_opsflow_testing.hubspot_associations import Associations

    unlabeled = Associations.unlabeled("tickets", "companies").type_id
    account_key = {object_id: key for key, object_id in hs.companies.items()}
    rows, missing, foreign, twice, stale = h.rows(), [], [], [], 0
    for ticket in hs.fake.objects("tickets"):
        key = str(ticket.properties["warehouse_id"])
        linked = hs.fake.associations("tickets", ticket.id, "companies")
        companies = {account_key[object_id] for object_id in linked}
        if rows[key]["company"] not in companies:
            missing.append((key, rows[key]["company"], sorted(companies)))
        if not companies <= set(m.moves[int(key)]):
            foreign.append((key, sorted(companies), m.moves[int(key)]))
        twice += [(key, account_key[i], sorted(kinds)) for i, kinds in linked.items() if kinds != {unlabeled}]
        stale += len(companies) - 1
    assert not missing, f"tickets not associated with their row's company: {missing[:10]}"
    assert not foreign, f"tickets associated with a company their rows never named: {foreign[:10]}"
    assert not twice, f"a ticket associated with a company more than once: {twice[:10]}"
    assert m.moved >= 50 and stale > 0, (m.moved, stale)  # tickets did move, and their old companies stayed


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


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_hubspot_ticket_company_associations_killed_at_random_points(request: pytest.FixtureRequest, tmp_path: Path,
                                                                     stack: ExitStack, seed: int, kind: str) -> None:
    """Tickets moving between companies while workers die: a killed run may have written a ticket and not
    associated it, or associated it and not confirmed it; the next runs associate it, once."""
    hs = HubSpotAssociatedTickets(stack, companies=12)
    h = AssociationHarness(hs, make_db(request, kind, tmp_path))
    request.addfinalizer(h.close)
    m = Moves(seed, rows=600, companies=sorted(hs.companies))
    h.setup(m.initial())
    first = h.run()
    assert first["counts"]["added"] == 600 and first["counts"]["failed"] == 0, first
    started = time.monotonic()
    phases, typical = kill_loop(h, m, RUNS)
    loop = time.monotonic() - started
    final = check_end_state(h, m)
    check_associations(h, hs, m)
    print(f"\n{hs.label} seed {seed} on {kind}: {RUNS} runs in {loop:.1f} s (clean run {typical:.2f} s): "
          f"{dict(phases)}; lock busy retries {h.busy_retries}; moves {m.moved}; final run {final['counts']}")
    assert phases["sending"] >= RUNS // 4, phases


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_zendesk_ticket_ranking_killed_at_random_points(request: pytest.FixtureRequest, tmp_path: Path,
                                                        stack: ExitStack, seed: int, kind: str) -> None:
    """A killed run's update_many may still be queued when the next run re-sends its record: that run waits
    for it before listing (else a row gone back to the tickets' old priority finds them "done" and the job
    then overwrites them)."""
    z = ZendeskRanking(stack, seed, orgs=100)
    h = RankingHarness(z, make_db(request, kind, tmp_path))
    request.addfinalizer(h.close)
    m = Ranking(seed, z, rows=60, joining=25)
    h.setup(m.initial())
    first = h.run()
    assert first["counts"]["added"] == 60 and first["counts"]["failed"] == 0, first
    started = time.monotonic()
    phases, typical = kill_loop(h, m, RUNS)
    loop = time.monotonic() - started
    final = check_ranking(h, z)
    print(f"\n{z.label} seed {seed} on {kind}: {RUNS} runs in {loop:.1f} s (clean run {typical:.2f} s): "
          f"{dict(phases)}; lock busy retries {h.busy_retries}; tickets opened {len(z.opened)}, solved "
          f"{sum(1 for v in z.left_open.values() if v)}; final run {final['counts']}")
    assert phases["sending"] >= RUNS // 4, phases
