"""One sync run in its own process, for tests/sync/test_crash.py to SIGKILL at random points.

    python tests/sync/crash_worker.py <pg uri> <api url> <mode> [sync_id] [table] [endpoint] [window]

PostgreSQL is source and state store (the diff is pushed down); the destination is the recording HTTP
server of the test process (batches of 50 from 4 senders, Idempotency-Key headers, deletes per key;
``window``: batches in flight unrecorded, the engine's default when not given).
Progress goes to stdout, one flushed line each, so the test can tell where a kill landed:
``started`` (imports done; the run then waits for a line on stdin, so the test can start the next worker
while the current one runs), ``send <op> <n>`` (each request about to go out), ``report <json>`` (done).
Exit codes: 0 done, 75 another run still holds the sync's lock (SyncBusyError), 1 anything else.

    python tests/sync/crash_worker.py crm '<json>'

The same run into a CRM or support fake of the test process (tests/sync/test_crash_crm.py): Zendesk
organizations or users or the ranking of organizations' open tickets, Salesforce sObjects (Collections or Bulk
API 2.0), HubSpot objects (with associations), through their engine clients (no Airflow); source and state on
PostgreSQL (the diff pushed down) or on two SQLite files. The JSON says which (:func:`crm_main`); the protocol
on stdin and stdout is the one above.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import psycopg2

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.deliver import DeliveryPolicy
from airflow_opsflow.sync.destinations.base import DestinationClient, Operation, Outcome, Record
from airflow_opsflow.sync.destinations.http import HttpEndpointClient
from airflow_opsflow.sync.destinations.hubspot import Association, HubSpotObjectsClient
from airflow_opsflow.sync.destinations.salesforce import SalesforceObjectsClient
from airflow_opsflow.sync.destinations.salesforce_api import Login, SalesforceApi
from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
from airflow_opsflow.sync.destinations.zendesk import ZendeskObjectsClient
from airflow_opsflow.sync.destinations.zendesk_tickets import ZendeskTicketsClient
from airflow_opsflow.sync.engine import SyncRun
from airflow_opsflow.sync.mapping import Field
from airflow_opsflow.sync.plan import source_query
from airflow_opsflow.sync.ratelimit import RateLimiter
from airflow_opsflow.sync.repo import SyncBusyError
from airflow_opsflow.sync.spec import SyncSpec

BATCH, CONCURRENCY, BUSY = 50, 4, 75


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ReportingDestination(HttpEndpointClient):
    """The HTTP destination, announcing each batch before it goes out (same fingerprint, same requests)."""

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        say(f"send {op} {len(records)}")
        return super().send(op, records)


def main(argv: list[str]) -> int:
    if argv[:1] == ["crm"]:
        return crm_main(json.loads(argv[1]))
    uri, api_url, mode = argv[:3]
    sync_id = argv[3] if len(argv) > 3 else "crash"
    table = argv[4] if len(argv) > 4 else "crash_items"
    endpoint = argv[5] if len(argv) > 5 else "/items"
    window = int(argv[6]) if len(argv) > 6 else None
    say("started")
    if sys.stdin.readline().strip() != "go":  # the test is gone (a spare worker never told to run)
        return 0
    spec = SyncSpec.build(sync_id, ["id"], mapping={"id": "id", "v": "v"}, mode=mode, max_failed=None,
                          max_delete_share=1.0, allow_empty_source=True)
    limiter = RateLimiter()
    dest = ReportingDestination(HttpTransport(HttpTarget(api_url, timeout=10), CONCURRENCY, limiter),
                                endpoint=endpoint, batch_size=BATCH, delete_endpoint=endpoint + "/{{ key }}",
                                idempotency_key=True, sync_id=sync_id)
    run = SyncRun(spec, SqlSource(lambda: psycopg2.connect(uri), "postgres"),
                  source_query("postgres", None, table, "crash test"),
                  lambda: StateStore(lambda: psycopg2.connect(uri), "postgres"), dest,
                  DeliveryPolicy(batch_size=BATCH, concurrency=CONCURRENCY, backoff=0.05, window=window),
                  pushdown_ok=True, source_table=table, limiter=limiter)
    try:
        report = run.run()
    except SyncBusyError as e:
        say(f"busy {e}")
        return BUSY
    finally:
        dest.close()
    say("report " + json.dumps({"counts": dict(report.counts), "diff": report.diff, "requests": report.requests},
                               default=str))
    return 0


class ReportingZendesk(ZendeskObjectsClient):
    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        say(f"send {op} {len(records)}")
        return super().send(op, records)


class ReportingZendeskTickets(ZendeskTicketsClient):
    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        say(f"send {op} {len(records)}")
        return super().send(op, records)


class ReportingSalesforce(SalesforceObjectsClient):
    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        say(f"send {op} {len(records)}")
        return super().send(op, records)


class ReportingHubSpot(HubSpotObjectsClient):
    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        say(f"send {op} {len(records)}")
        return super().send(op, records)


def crm_destination(d: dict[str, Any], concurrency: int, limiter: RateLimiter) -> DestinationClient:
    """The engine client ``d`` describes: ``system`` zendesk (``url`` .../api/v2, ``auth`` header value,
    ``object_type``, ``poll`` [first, max], ``headers`` sent besides; ``organization_tickets``:
    ``search_per_minute``, the Search Export budget, Zendesk's 100 when not given), salesforce (``url``,
    ``session``, ``ca_bundle``, ``object``, ``external_id``, ``api``, ``bulk_threshold``, ``poll``) or hubspot
    (``url``, ``token``, ``object_type``, ``id_property``, ``associations``: [[to, key, id_property], ...])."""
    system = d["system"]
    if system == "zendesk":
        first, longest = d.get("poll", (0.2, 5.0))
        target = HttpTarget(d["url"], {**d.get("headers", {}), "Authorization": d["auth"]}, timeout=10)
        if d["object_type"] == "organization_tickets":
            per_minute = d.get("search_per_minute")
            search = RateLimiter(per_minute, 60.0) if per_minute else None
            return ReportingZendeskTickets(HttpTransport(target, concurrency, limiter, what="Zendesk tickets"),
                                           job_timeout=30, first_poll=first, max_poll=longest, search_limiter=search)
        return ReportingZendesk(HttpTransport(target, concurrency, limiter, what="Zendesk"), d["object_type"],
                                job_timeout=30, first_poll=first, max_poll=longest)
    if system == "salesforce":
        login = Login(d["session"], d["url"], "59.0", d["ca_bundle"])
        api = SalesforceApi(lambda: login, concurrency, limiter, timeout=30)
        return ReportingSalesforce(api, d["object"], d["external_id"], d["api"], d["bulk_threshold"], concurrency,
                                   bulk_timeout=60, poll=tuple(d.get("poll", (0.25, 10.0))))
    if system == "hubspot":
        target = HttpTarget(d["url"], {"Authorization": f"Bearer {d['token']}"}, timeout=10)
        return ReportingHubSpot(HttpTransport(target, concurrency, limiter, what="HubSpot"), d["object_type"],
                                d["id_property"], [Association(*a) for a in d.get("associations", [])])
    raise ValueError(f"unknown system {system!r}")


def crm_main(config: dict[str, Any]) -> int:
    """One run as ``config`` says: ``db`` ({"dialect": "postgres", "uri"} or {"dialect": "sqlite", "source",
    "state"}), ``table``, ``key``, ``mapping`` (destination field -> column, or [column, type]), ``mode``,
    ``sync_id``, ``batch``, ``concurrency``, ``window`` (optional) and ``destination``."""
    say("started")
    if sys.stdin.readline().strip() != "go":
        return 0
    db = config["db"]
    if db["dialect"] == "postgres":
        def connect() -> Any:
            return psycopg2.connect(db["uri"])

        source, store = SqlSource(connect, "postgres"), lambda: StateStore(connect, "postgres")
        pushdown = True
    else:
        source = SqlSource(lambda: sqlite3.connect(db["source"]), "sqlite")
        store, pushdown = (lambda: StateStore(lambda: sqlite3.connect(db["state"]), "sqlite")), False
    mapping = {name: Field(*col) if isinstance(col, list) else col for name, col in config["mapping"].items()}
    spec = SyncSpec.build(config["sync_id"], config["key"], mapping=mapping, mode=config["mode"], max_failed=None,
                          max_delete_share=1.0, allow_empty_source=True)
    concurrency, batch = config["concurrency"], config["batch"]
    limiter = RateLimiter()
    dest = crm_destination(config["destination"], concurrency, limiter)
    run = SyncRun(spec, source, source_query(db["dialect"], None, config["table"], "crash test"), store, dest,
                  DeliveryPolicy(batch_size=batch, concurrency=concurrency, backoff=0.05, window=config.get("window")),
                  pushdown_ok=pushdown, source_table=config["table"], limiter=limiter)
    try:
        report = run.run()
    except SyncBusyError as e:
        say(f"busy {e}")
        return BUSY
    finally:
        dest.close()
    say("report " + json.dumps({"counts": dict(report.counts), "diff": report.diff, "requests": report.requests,
                                "seconds": report.seconds}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
