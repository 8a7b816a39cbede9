"""One sync run in its own process, for tests/sync/test_crash.py to SIGKILL at random points.

    python tests/sync/crash_worker.py <pg uri> <api url> <mode> [sync_id] [table] [endpoint] [window]

PostgreSQL is source and state store (the diff is pushed down); the destination is the recording HTTP
server of the test process (batches of 50 from 4 senders, Idempotency-Key headers, deletes per key;
``window``: batches in flight unrecorded, the engine's default when not given).
Progress goes to stdout, one flushed line each, so the test can tell where a kill landed:
``started`` (imports done; the run then waits for a line on stdin, so the test can start the next worker
while the current one runs), ``send <op> <n>`` (each request about to go out), ``report <json>`` (done).
Exit codes: 0 done, 75 another run still holds the sync's lock (SyncBusyError), 1 anything else.
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
from airflow_opsflow.sync.destinations.http import HttpEndpointClient
from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
from airflow_opsflow.sync.engine import SyncRun
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
