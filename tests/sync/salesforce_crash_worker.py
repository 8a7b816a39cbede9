"""One sync run into the fake Salesforce in its own process, for tests/sync/test_salesforce_destination.py to
SIGKILL at random points.

    python tests/sync/salesforce_crash_worker.py <pg uri> <instance url> <session id> <ca bundle> <api> \
        <sync_id> <table>

PostgreSQL is source and state store (the diff is pushed down); the destination is the fake org of the test
process, Accounts upserted by Warehouse_Id__c (mirror mode; ``api`` collections or bulk, Bulk jobs of 150
records). Progress on stdout as crash_worker.py's: ``started`` (then it waits for ``go`` on stdin), ``send <op>
<n>``, ``report <json>``. Exit codes: 0 done, 75 another run still holds the sync's lock, 1 anything else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

import psycopg2

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.deliver import DeliveryPolicy
from airflow_opsflow.sync.destinations.base import Operation, Outcome, Record
from airflow_opsflow.sync.destinations.salesforce import SalesforceObjectsClient
from airflow_opsflow.sync.destinations.salesforce_api import Login, SalesforceApi
from airflow_opsflow.sync.engine import SyncRun
from airflow_opsflow.sync.mapping import Field
from airflow_opsflow.sync.plan import source_query
from airflow_opsflow.sync.ratelimit import RateLimiter
from airflow_opsflow.sync.repo import SyncBusyError
from airflow_opsflow.sync.spec import SyncSpec

CONCURRENCY, BUSY, BULK_BATCH = 4, 75, 150


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ReportingClient(SalesforceObjectsClient):
    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        say(f"send {op} {len(records)}")
        return super().send(op, records)


def main(argv: list[str]) -> int:
    uri, url, session, bundle, api, sync_id, table = argv[:7]
    say("started")
    if sys.stdin.readline().strip() != "go":
        return 0
    spec = SyncSpec.build(sync_id, ["id"], mapping={"Warehouse_Id__c": Field("id", "string"), "Name": "v"},
                          mode="mirror", max_failed=None, max_delete_share=1.0, allow_empty_source=True)
    limiter = RateLimiter()
    sf = SalesforceApi(lambda: Login(session, url, "59.0", bundle), CONCURRENCY, limiter)
    dest = ReportingClient(sf, "Account", "Warehouse_Id__c", api, bulk_threshold=BULK_BATCH, concurrency=CONCURRENCY,
                           poll=(0.02, 0.1))
    run = SyncRun(spec, SqlSource(lambda: psycopg2.connect(uri), "postgres"),
                  source_query("postgres", None, table, "crash test"),
                  lambda: StateStore(lambda: psycopg2.connect(uri), "postgres"), dest,
                  DeliveryPolicy(batch_size=dest.batch_size, concurrency=CONCURRENCY, backoff=0.05),
                  pushdown_ok=True, source_table=table, limiter=limiter)
    try:
        report = run.run()
    except SyncBusyError as e:
        say(f"busy {e}")
        return BUSY
    finally:
        dest.close()
    say("report " + json.dumps({"counts": dict(report.counts), "requests": report.requests}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
