"""Reverse sync into the CRM and support fakes: records/s and requests per run, against the fewest requests
the API's batch limits allow. `python bench/crm_sync.py` (or `make bench`).

    python bench/crm_sync.py [--rows 2000] [--sf-sizes 1000,100000] [--sqlite] [--doc docs/benchmarks.md]

Destinations: Zendesk organizations and users (bulk jobs of 100), Zendesk ticket ranking (the open tickets
of each account's organization set to the priority its spend earns, ``organization_tickets``), HubSpot tickets
(batch upsert of 100), Salesforce Accounts through sObject Collections (200 a request), Bulk API 2.0 (one job
per batch of up to 100,000 records) and the automatic choice (Bulk from 2,000 changes, the default). Each: a
full sync (fresh state), a run after 1 % of the rows changed, a run with nothing changed.

Each run is a fresh process running the engine client of the destination (``--driver``: the same client the
operator opens, without Airflow, unpaced); the fake runs in this process and counts what reaches it. State on
a throwaway PostgreSQL holding the source too (the diff pushed down), or with ``--sqlite`` a SQLite source and
a SQLite state file. The fakes move a job one step per status read (Zendesk: queued, working, completed;
Bulk: InProgress, then processed), so job polls are counted, not timed.

The minimum per run: Zendesk ceil(n/100) jobs x (the job's request + 2 status reads); HubSpot ceil(n/100);
Collections ceil(n/200); Bulk one job per 100 MB of CSV (one here) x 6 requests (create, upload,
UploadComplete, 2 status reads, successfulResults); the automatic choice the cheaper of the two. Records/s is
records written over the run's time inside the process (the fake's own work included: it is Python, so these
are floors, not Zendesk's or Salesforce's speed; on a real account the plan's rate limit decides).

Zendesk ticket ranking: max(100, --rows/10) accounts, one organization each, with an uneven, seeded number of
tickets (0-12 open for most, 101-250 open for one in 50 (3 at least), up to 15 solved/closed; priorities and
tags drawn at random, so some open tickets already hold what their account wants); the source row is the
account's priority (urgent, high, normal, low by spend) and the tag ``vip`` for urgent. The 1 % run moves the
spend of every 100th account into another tier. Its minimum is counted from the fake's tickets before each
run, for the accounts the run writes: ceil(organizations without a known id / 100) ``organizations/show_many``
(every one on the full run, none later: the id is the record's ref) + per account max(1, ceil(its open
tickets / 100)) ``search/export`` pages (one page even for none: only the search tells) + per distinct change
(priority and tags) ceil(open tickets not already holding it, over all the run's accounts / 100)
``tickets/update_many`` jobs x 3 (the job, 2 status reads). The client groups a job's tickets within one batch
of 100 accounts, so a run of several batches may need more jobs than this pooled count. No-change runs must
send nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _doc  # noqa: E402

TIERS = ["LOW", "MEDIUM", "HIGH"]
EXT = "Warehouse_Id__c"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
PHASES = ("full", "1 % changed", "no change")
START, END = "<!-- bench:crm-sync:start -->", "<!-- bench:crm-sync:end -->"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the driver: one sync run in its own process -------------------------------------------------------------


def driver(config: dict[str, Any]) -> int:
    """One SyncRun as ``config`` says; prints its report as one JSON line."""
    import psycopg2

    from airflow_opsflow.core.sql_source import SqlSource
    from airflow_opsflow.state.store import StateStore
    from airflow_opsflow.sync.deliver import DeliveryPolicy
    from airflow_opsflow.sync.destinations.base import DestinationClient
    from airflow_opsflow.sync.destinations.hubspot import HubSpotObjectsClient
    from airflow_opsflow.sync.destinations.salesforce import SalesforceObjectsClient
    from airflow_opsflow.sync.destinations.salesforce_api import Login, SalesforceApi
    from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
    from airflow_opsflow.sync.destinations.zendesk import ZendeskObjectsClient
    from airflow_opsflow.sync.destinations.zendesk_tickets import ZendeskTicketsClient
    from airflow_opsflow.sync.engine import SyncRun
    from airflow_opsflow.sync.mapping import Field
    from airflow_opsflow.sync.plan import source_query
    from airflow_opsflow.sync.ratelimit import RateLimiter
    from airflow_opsflow.sync.spec import SyncSpec

    d, db, concurrency = config["destination"], config["db"], 4
    limiter = RateLimiter()
    dest: DestinationClient
    if d["system"] == "zendesk":
        target = HttpTarget(d["url"], {"Authorization": d["auth"]})
        transport = HttpTransport(target, concurrency, limiter)
        if d["object_type"] == "organization_tickets":  # search/export unpaced too (Zendesk: 100 a minute)
            dest = ZendeskTicketsClient(transport, search_limiter=RateLimiter())
        else:
            dest = ZendeskObjectsClient(transport, d["object_type"])
    elif d["system"] == "hubspot":
        target = HttpTarget(d["url"], {"Authorization": f"Bearer {d['token']}"})
        dest = HubSpotObjectsClient(HttpTransport(target, concurrency, limiter), d["object_type"], d["id_property"])
    else:
        login = Login(d["session"], d["url"], "59.0", d["ca_bundle"])
        dest = SalesforceObjectsClient(SalesforceApi(lambda: login, concurrency, limiter), "Account", EXT, d["api"],
                                       d["bulk_threshold"], concurrency)
    if db["dialect"] == "postgres":
        def connect() -> Any:
            return psycopg2.connect(db["uri"])

        source, pushdown = SqlSource(connect, "postgres"), True

        def store() -> StateStore:
            return StateStore(connect, "postgres")
    else:
        source, pushdown = SqlSource(lambda: sqlite3.connect(db["source"]), "sqlite"), False

        def store() -> StateStore:
            return StateStore(lambda: sqlite3.connect(db["state"]), "sqlite")
    mapping = {k: Field(*v) if isinstance(v, list) else v for k, v in config["mapping"].items()}
    spec = SyncSpec.build(config["sync_id"], ["id"], mapping=mapping, mode="upsert", max_failed=0)
    batch = config["batch"]
    cpu = time.process_time()
    try:
        report = SyncRun(spec, source, source_query(db["dialect"], None, config["table"], "bench"), store, dest,
                         DeliveryPolicy(batch_size=batch, concurrency=concurrency), pushdown_ok=pushdown,
                         source_table=config["table"], limiter=limiter).run()
    finally:
        dest.close()
    print(json.dumps({"counts": dict(report.counts), "requests": report.requests, "seconds": report.seconds,
                      "cpu": time.process_time() - cpu}))
    return 0


# -- the systems ----------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One destination setting on its fake: ``per_request`` records a write request takes, ``job`` requests of
    a job beyond its write (Zendesk: 2 status reads) or None, ``bulk``: one Bulk API 2.0 job per run at least;
    ``ranking``: the ticket ranking (its own source table and seeded tickets; its minimum counted from them)."""

    label: str
    system: str
    rows: int
    mapping: dict[str, Any]
    batch: int
    settings: dict[str, Any] = field(default_factory=dict)
    per_request: int = 100
    job: int = 0
    minimum: Callable[[int], int] | None = None
    ranking: bool = False

    def fewest(self, n: int) -> int:
        if n == 0:
            return 0
        if self.minimum is not None:
            return self.minimum(n)
        return math.ceil(n / self.per_request) * (1 + self.job)


BULK_JOB = 6  # create, upload, UploadComplete, 2 status reads, successfulResults


def scenarios(rows: int, sf_sizes: list[int]) -> list[Scenario]:
    zd_orgs = {"external_id": "id", "name": "name", "tier": "tier"}
    zd_users = {"external_id": "id", "name": "name", "email": "email", "plan": "tier"}
    hs = {"warehouse_id": ["id", "string"], "subject": "name", "hs_ticket_priority": "tier",
          "hs_pipeline_stage": "stage"}
    sf = {EXT: ["id", "string"], "Name": "name", "Tier__c": "tier"}
    out = [Scenario("Zendesk organizations", "zendesk", rows, zd_orgs, 100, {"object_type": "organizations"}, job=2),
           Scenario("Zendesk users", "zendesk", rows, zd_users, 100, {"object_type": "users"}, job=2),
           Scenario("Zendesk ticket ranking", "zendesk", max(100, rows // 10),
                    {"external_id": "id", "priority": "priority", "tags": "tags"}, 100,
                    {"object_type": "organization_tickets"}, job=2, ranking=True),
           Scenario("HubSpot tickets", "hubspot", rows, hs, 100)]
    for n in sf_sizes:
        out += [Scenario("Salesforce Collections", "salesforce", n, sf, 200, {"api": "collections",
                                                                              "bulk_threshold": 2_000},
                         per_request=200),
                Scenario("Salesforce Bulk 2.0", "salesforce", n, sf, 100_000,
                         {"api": "bulk", "bulk_threshold": 2_000}, minimum=lambda k: math.ceil(k / 100_000) * BULK_JOB),
                Scenario("Salesforce auto (default)", "salesforce", n, sf, 100_000,
                         {"api": "auto", "bulk_threshold": 2_000},
                         minimum=lambda k: min(math.ceil(k / 200), math.ceil(k / 100_000) * BULK_JOB))]
    return out


@contextmanager
def fake_for(system: str) -> Iterator[tuple[Any, dict[str, Any], Callable[[Any, int], Counter[str]]]]:
    """The started fake, the driver's destination settings, and what reached the fake since a mark."""
    if system == "zendesk":
        import base64

        from airflow_opsflow_testing.zendesk_server import FakeZendesk

        with FakeZendesk(rate_limit=10**7, search_export_limit=10**7) as zd:
            zd.define_field("organization", "tier", "dropdown", options=TIERS)
            zd.define_field("user", "plan", "dropdown", options=TIERS)
            auth = base64.b64encode(f"{zd.email}/token:{zd.token}".encode()).decode()
            yield zd, {"system": "zendesk", "url": f"{zd.url}/api/v2", "auth": f"Basic {auth}"}, \
                lambda f, mark: Counter(r.name for r in f.requests[mark:])
    elif system == "hubspot":
        from airflow_opsflow_testing.hubspot_server import FakeHubSpot

        with FakeHubSpot(rate_limit=10**7, daily_limit=10**9) as hs:
            hs.define_property("tickets", "warehouse_id", unique=True)
            yield hs, {"system": "hubspot", "url": hs.url, "token": hs.token, "object_type": "tickets",
                       "id_property": "warehouse_id"}, \
                lambda f, mark: Counter(r.endpoint for r in f.requests[mark:])
    else:
        from airflow_opsflow_testing.salesforce_server import FakeSalesforce

        with FakeSalesforce(api_limit=10**9) as sf:
            sf.define_field("Account", EXT, external_id=True, unique=True)
            sf.define_field("Account", "Tier__c", "picklist", picklist=TIERS, restricted=True)
            yield sf, {"system": "salesforce", "url": sf.url, "session": sf.issue_session(),
                       "ca_bundle": sf.ca_bundle}, lambda f, mark: Counter(r.name for r in f.requests[mark:])


# -- source and state -----------------------------------------------------------------------------------------


class Source:
    """The source table of one scenario (PostgreSQL, or a SQLite file with the state in another)."""

    def __init__(self, db: dict[str, Any], table: str) -> None:
        self.db, self.table = db, table
        if db["dialect"] == "postgres":
            import psycopg2

            self.conn: Any = psycopg2.connect(db["uri"])
        else:
            self.conn = sqlite3.connect(db["source"])

    def create(self, n: int) -> None:
        cur = self.conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {self.table}")
        cur.execute(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
                    "tier VARCHAR(20) NOT NULL, email VARCHAR(100) NOT NULL, stage VARCHAR(4) NOT NULL)")
        mark = "%s" if self.db["dialect"] == "postgres" else "?"
        rows = [(i, f"Account {i}", TIERS[i % 3], f"user{i}@example.com", "1") for i in range(1, n + 1)]
        cur.executemany(f"INSERT INTO {self.table} VALUES ({', '.join([mark] * 5)})", rows)
        self.conn.commit()

    def change(self, share: float) -> int:
        """Rename every (1/share)-th row; the number changed."""
        step = round(1 / share)
        cur = self.conn.cursor()
        cur.execute(f"UPDATE {self.table} SET name = name || ' (renamed)' WHERE id % {step} = 0")
        changed = int(cur.rowcount)
        self.conn.commit()
        return changed

    def close(self) -> None:
        self.conn.close()


SEED = 18  # the ticket ranking's draws: fixed, so every run of the benchmark ranks the same tickets
OPEN = ("new", "open", "pending", "hold")  # status<solved: what the client ranks by default
SPEND = {"urgent": (100_000, 400_000), "high": (25_000, 100_000), "normal": (5_000, 25_000), "low": (0, 5_000)}
VIP = "urgent"  # the top tier's accounts also get the tag "vip"


def rank(spend: int) -> tuple[str, str]:
    """An account's (priority, tags) by its spend, as a warehouse model would rank it."""
    priority = next(p for p, (low, _) in SPEND.items() if spend >= low)
    return priority, "vip" if priority == VIP else ""


class Ranking(Source):
    """The ticket ranking's accounts (id, name, spend, priority, tags: the last two follow the spend) and their
    organizations and tickets on the fake; what the API needs at least for a run, and a check of the result."""

    def __init__(self, db: dict[str, Any], table: str) -> None:
        super().__init__(db, table)
        self.rng = random.Random(SEED)
        self.wanted: dict[int, tuple[str, str]] = {}  # account -> (priority, tags) of its source row
        self.orgs: dict[int, int] = {}  # account -> its organization's id on the fake
        self.changed: list[int] = []  # the accounts the last change() moved
        self.shape = ""

    def create(self, n: int) -> None:
        cur = self.conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {self.table}")
        cur.execute(f"CREATE TABLE {self.table} (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
                    "spend INTEGER NOT NULL, priority VARCHAR(10) NOT NULL, tags VARCHAR(100) NOT NULL)")
        rows = []
        for i in range(1, n + 1):
            spend = round(self.rng.lognormvariate(9, 1.5))  # median ~8,100; ~5 % of accounts at 100,000 or more
            self.wanted[i] = rank(spend)
            rows.append((i, f"Account {i}", spend, *self.wanted[i]))
        mark = "%s" if self.db["dialect"] == "postgres" else "?"
        cur.executemany(f"INSERT INTO {self.table} VALUES ({', '.join([mark] * 5)})", rows)
        self.conn.commit()

    def change(self, share: float) -> int:
        """Move every (1/share)-th account's spend into another tier (so its priority changes); the number moved."""
        step = round(1 / share)
        self.changed = [i for i in self.wanted if i % step == 0]
        rows = []
        for i in self.changed:
            low, high = SPEND[self.rng.choice([p for p in SPEND if p != self.wanted[i][0]])]
            spend = self.rng.randrange(low, high)
            self.wanted[i] = rank(spend)
            rows.append((spend, *self.wanted[i], i))
        mark = "%s" if self.db["dialect"] == "postgres" else "?"
        cur = self.conn.cursor()
        cur.executemany(f"UPDATE {self.table} SET spend = {mark}, priority = {mark}, tags = {mark} WHERE id = {mark}",
                        rows)
        self.conn.commit()
        return len(self.changed)

    def seed(self, fake: Any) -> None:
        """One organization per account (external_id: the account id) and its tickets: most have 0-12 open
        (skewed low), one in 50 (3 at least) 101-250 (several export pages), each up to 15 solved or closed; priorities
        and tags drawn, so some open tickets already hold what their account wants."""
        rng = random.Random(SEED + 1)
        accounts = sorted(self.wanted)
        big = set(rng.sample(accounts, max(3, len(accounts) // 50)))
        opened = done = 0
        for i in accounts:
            org = fake.add_organization(f"Account {i}", external_id=str(i))
            self.orgs[i] = org.id
            n_open = rng.randint(101, 250) if i in big else min(12, int(rng.expovariate(1 / 3)))
            n_done = rng.randint(0, 15)
            statuses = rng.choices(OPEN, weights=(15, 50, 25, 10), k=n_open)
            statuses += rng.choices(("solved", "closed"), weights=(1, 2), k=n_done)
            for status in statuses:
                priority = rng.choices((None, "low", "normal", "high", "urgent"), weights=(35, 15, 30, 15, 5))[0]
                tags = [t for t, p in (("billing", 0.2), ("bug", 0.2), ("api", 0.1), ("vip", 0.03)) if rng.random() < p]
                fake.add_ticket(f"Account {i}: issue", status=status, priority=priority, tags=tags,
                                organization_id=org.id)
            opened, done = opened + n_open, done + n_done
        none = sum(1 for t in self._open(fake).values() if not t)
        self.shape = (f"{len(accounts):,} organizations, {opened:,} open tickets ({none} organizations with none, "
                      f"{len(big)} with 101-250), {done:,} solved or closed")

    def _open(self, fake: Any) -> dict[int, list[Any]]:
        """Each account's open tickets on the fake now."""
        by_org: dict[int, list[Any]] = {}
        for t in fake.tickets:
            if t.status in OPEN:
                by_org.setdefault(t.organization_id, []).append(t)
        return {i: by_org.get(org, []) for i, org in self.orgs.items()}

    def fewest(self, fake: Any, accounts: list[int], lookups: int) -> tuple[int, str]:
        """The fewest requests that rank ``accounts`` from the fake's tickets now (``lookups``: of them, those
        whose organization id is not known yet), and their parts."""
        if not accounts:
            return 0, "0"
        tickets = self._open(fake)
        pages = 0
        needing: Counter[tuple[str, str]] = Counter()  # (priority, tags) -> open tickets not holding it
        for i in accounts:
            pages += max(1, math.ceil(len(tickets[i]) / 100))
            priority, tag = self.wanted[i]
            needing[(priority, tag)] += sum(1 for t in tickets[i] if t.priority != priority
                                            or (tag and tag not in t.tags))
        show_many = math.ceil(lookups / 100)
        jobs = sum(math.ceil(k / 100) for k in needing.values())
        parts = (f"{show_many} show_many + {pages} export pages + {jobs} jobs x 3 ({sum(needing.values()):,} "
                 f"tickets needing {len(needing)} distinct changes)")
        return show_many + pages + 3 * jobs, parts

    def check(self, fake: Any) -> None:
        """Every open ticket holds its account's priority and tag (what the run was to leave)."""
        wrong = [(i, t.id) for i, open_ in self._open(fake).items() for t in open_
                 if t.priority != self.wanted[i][0] or (self.wanted[i][1] and self.wanted[i][1] not in t.tags)]
        if wrong:
            raise RuntimeError(f"Zendesk ticket ranking: {len(wrong)} open tickets not ranked, e.g. "
                               f"(account, ticket) {wrong[:5]}")


def forget(db: dict[str, Any], sync_id: str) -> None:
    """Drop a sync's state (a fresh full run)."""
    conn: Any
    if db["dialect"] == "postgres":
        import psycopg2

        conn, mark = psycopg2.connect(db["uri"]), "%s"
    else:
        conn, mark = sqlite3.connect(db["state"]), "?"
    cur = conn.cursor()
    for table in ("opsflow_sync_keys", "opsflow_sync_meta", "opsflow_sync_marks"):
        try:
            cur.execute(f"DELETE FROM {table} WHERE sync_id = {mark}", (sync_id,))
        except Exception:  # no state tables yet: the first run creates them
            conn.rollback()
    conn.commit()
    conn.close()


# -- the runs -------------------------------------------------------------------------------------------------


def run_driver(config: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--driver", json.dumps(config)], capture_output=True,
                          text=True, timeout=3600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report, wall


def run_scenario(s: Scenario, db: dict[str, Any], index: int) -> list[dict[str, Any]]:
    table, sync_id = f"bench_crm_{index}", f"bench-crm-{index}"
    src = Ranking(db, table) if s.ranking else Source(db, table)
    src.create(s.rows)
    forget(db, sync_id)
    rows = []
    with fake_for(s.system) as (fake, destination, seen):
        config = {"db": db, "table": table, "mapping": s.mapping, "sync_id": sync_id, "batch": s.batch,
                  "destination": {**destination, **s.settings}}
        if isinstance(src, Ranking):
            src.seed(fake)
        for phase in PHASES:
            expected = s.rows if phase == "full" else src.change(0.01) if phase == "1 % changed" else 0
            extra: dict[str, Any] = {}
            if isinstance(src, Ranking):  # counted before the run changes the tickets
                accounts = sorted(src.wanted) if phase == "full" else src.changed if phase == "1 % changed" else []
                fewest, parts = src.fewest(fake, accounts, lookups=len(accounts) if phase == "full" else 0)
                extra = {"parts": parts, "shape": src.shape}
            mark = len(fake.requests)
            report, wall = run_driver(config)
            calls = seen(fake, mark)
            c = report["counts"]
            written = c["added"] + c["changed"]
            if written != expected or c["failed"]:
                raise RuntimeError(f"{s.label} {phase}: {c} (expected {expected} written)")
            if isinstance(src, Ranking):
                src.check(fake)
            else:
                fewest = s.fewest(written)
            total = sum(calls.values())
            rows.append({"label": s.label, "n": s.rows, "phase": phase, "written": written, "requests": total,
                         "fewest": fewest, "seconds": report["seconds"], "wall": wall, "cpu": report["cpu"],
                         "calls": calls, **extra})
            rate = f"{written / report['seconds']:,.0f} records/s" if written else ""
            say(f"  {s.label} n={s.rows:,} {phase}: {written:,} written, {total} requests (fewest {fewest}), "
                f"{report['seconds']:.2f} s {rate}")
    src.close()
    return rows


def ratio(r: dict[str, Any]) -> str:
    if r["fewest"] == 0:
        return "—" if r["requests"] == 0 else "**∞**"
    return f"{r['requests'] / r['fewest']:.2f}"


def markdown(rows: list[dict[str, Any]], facts: list[str]) -> str:
    lines = ["## Reverse sync into CRM and support systems: records/s and requests per run", "",
             "_Written by `python bench/crm_sync.py`; regenerate rather than edit._", "", *facts, "",
             "| destination | rows | run | written | requests | fewest | x fewest | s in the sync | records/s | "
             "CPU s (sync process) | requests by endpoint |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        rate = f"{r['written'] / r['seconds']:,.0f}" if r["written"] else "—"
        detail = ", ".join(f"{n} {v}" for n, v in sorted(r["calls"].items(), key=lambda x: -x[1])) or "—"
        lines.append(f"| {r['label']} | {r['n']:,} | {r['phase']} | {r['written']:,} | {r['requests']:,} | "
                     f"{r['fewest']:,} | {ratio(r)} | {r['seconds']:.2f} | {rate} | {r['cpu']:.2f} | {detail} |")
    lines += ["", targets(rows)]
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> str:
    quiet = [r for r in rows if r["phase"] == "no change"]
    noisy = [r for r in quiet if r["requests"]]
    out = [f"- no-change runs send 0 requests: {'met' if not noisy else '**not met**'} "
           f"({len(quiet) - len(noisy)} of {len(quiet)} runs sent none)"]
    sending = [r for r in rows if r["written"]]
    far = [r for r in sending if r["requests"] > 1.1 * r["fewest"]]
    out.append(f"- requests within 10 % of the fewest the batch limits allow: {'met' if not far else '**not met**'} "
               f"(within it in {len(sending) - len(far)} of the {len(sending)} runs that wrote)")
    for r in far:
        out.append(f"  - {r['label']}, {r['n']:,} rows, {r['phase']}: {r['requests']:,} for {r['fewest']:,} "
                   f"({ratio(r)}x): {why(r)}")
    if any(r["label"].startswith("Salesforce") for r in far):
        out += ["", "Where Salesforce's extra requests come from: `describe`, the object's describe, read only when "
                "Salesforce refused something the configuration may cause; `job list`, the org's ingest jobs, read "
                "only before re-sending records a stopped run left unconfirmed (its job would overwrite newer "
                "values); `N jobs`, Bulk jobs beyond one per 100,000 records."]
    return "Targets (issue 18), this run:\n\n" + "\n".join(out)


def why(r: dict[str, Any]) -> str:
    calls: Counter[str] = r["calls"]
    extra = [f"+{calls[name]} {what}" for name, what in (("describe", "describe"), ("ingest_jobs", "job list"))
             if calls.get(name)]
    if calls.get("ingest_create", 0) > 1:
        extra.append(f"{calls['ingest_create']} jobs for 1")
    return ", ".join(extra) or "see the endpoints"


def place_section(doc: Path) -> None:
    """Empty markers after the reverse sync's section when there are none yet (the body has its own heading)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if START in text:
        return
    anchor = "<!-- bench:sync:end -->"
    markers = f"{START}\n{END}"
    text = (text.replace(anchor, f"{anchor}\n\n{markers}", 1) if anchor in text
            else f"{text.rstrip()}\n\n{markers}\n")
    doc.write_text(text)


def ranking_facts(rows: list[dict[str, Any]]) -> list[str]:
    """What the ticket ranking ran on and how its fewest adds up, when it ran."""
    ranked = [r for r in rows if "parts" in r]
    if not ranked:
        return []
    runs = "; ".join(f"{r['phase']}: {r['parts']}" for r in ranked if r["fewest"])
    return [f"- Zendesk ticket ranking (seed {SEED}): {ranked[0]['shape']}; each account's priority by spend "
            "(urgent, high, normal, low) and the tag vip for urgent; the 1 % run moves every 100th account's "
            "spend into another tier",
            "  - its fewest, counted from the fake's tickets before the run, for the accounts written: "
            "ceil(organizations without a known id / 100) show_many (all on the full run; later the id is the "
            "record's ref) + per account max(1, ceil(open tickets / 100)) search/export pages + per distinct "
            "change ceil(open tickets not holding it, pooled over the run's accounts / 100) update_many jobs x 3 "
            "(1 write + 2 status reads); the client pools a job's tickets within one batch of 100 accounts, "
            f"so runs of several batches can need more jobs — {runs}",
            "  - its records/s here is mostly the job polls' waits; on a real account the client paces "
            "search/export to Zendesk's 100 a minute (90 after its 10 % margin), one page per changed organization "
            "at least, so at most ~90 changed organizations a minute"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--driver"]:
        return driver(json.loads(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000,
                        help="rows for Zendesk and HubSpot (the ticket ranking: a tenth as many organizations, 100 at "
                        "least)")
    parser.add_argument("--sf-sizes", default="1000,100000", help="rows for each Salesforce run")
    parser.add_argument("--sqlite", action="store_true", help="SQLite source and state instead of PostgreSQL")
    parser.add_argument("--only", default="", help="only the destinations whose label holds this text")
    parser.add_argument("--doc", type=Path, default=_doc.DOC)
    args = parser.parse_args(argv)
    for name in PROXY_VARS:  # the fakes are on 127.0.0.1
        os.environ.pop(name, None)
    began = time.monotonic()
    todo = [s for s in scenarios(args.rows, [int(x) for x in args.sf_sizes.split(",") if x])
            if args.only.lower() in s.label.lower()]
    with ExitStack() as stack:
        if args.sqlite:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opsflow-bench-crm-")))
            db: dict[str, Any] = {"dialect": "sqlite", "source": str(tmp / "source.db"), "state": str(tmp / "state.db")}
            where = "SQLite (the source in one file, the state in another)"
        else:
            from airflow_opsflow_testing.postgres import ThrowawayPostgres

            pg = stack.enter_context(ThrowawayPostgres(database="bench"))
            db = {"dialect": "postgres", "uri": pg.uri}
            where = "a throwaway PostgreSQL holding the source too (the diff pushed down)"
        rows: list[dict[str, Any]] = []
        for i, s in enumerate(todo):
            say(f"{s.label}, {s.rows:,} rows:")
            rows += run_scenario(s, db, i)
    facts = [f"- machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; state on {where}",
             "- each run a fresh process (the destination's engine client, 4 senders, unpaced) against the testing "
             "kit's fake in the benchmark's process, which counts the requests reaching it",
             "- fewest: what the batch limits allow — Zendesk ceil(n/100) jobs x (1 write + 2 status reads, the "
             "fake's job moving a step per read), HubSpot ceil(n/100), Collections ceil(n/200), Bulk API 2.0 one "
             "job (100 MB of CSV) x 6 requests (create, upload, UploadComplete, 2 status reads, successfulResults), "
             "the automatic choice the cheaper of the two",
             *ranking_facts(rows),
             "- records/s: records written over the run's time in the sync process; the fakes are Python and "
             "share the 2 CPUs, so these are floors; a real account's rate limit decides first (Zendesk 200-700 "
             "requests a minute by plan: 100 records a job of 3 requests, ~110-390 records/s; HubSpot 100-190 "
             "requests per 10 s: 1,000-1,900 records/s)",
             f"- whole benchmark {time.monotonic() - began:.0f} s"]
    body = markdown(rows, facts)
    place_section(args.doc)
    _doc.write_section("crm-sync", body, "Reverse sync into CRM and support systems", args.doc)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
