"""opsflow's side of the sync benchmark: one SyncRun in a fresh process, its report as one JSON line.

    python bench/_sync_opsflow.py --uri URI --table orders --key o_orderkey --to sink:URL|table:NAME
                                  [--cursor updated_at] [--sync-id ID]

The state store is the source database (the setup the issue names: diff pushed down). Wall time and
peak RSS are measured from outside by ``_sync_peers.run_driver``, like the peers'.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg2

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.deliver import DeliveryPolicy
from airflow_opsflow.sync.destinations.http import HttpEndpointClient
from airflow_opsflow.sync.destinations.table import DatabaseTableClient
from airflow_opsflow.sync.destinations.transport import HttpTarget, HttpTransport
from airflow_opsflow.sync.engine import SyncRun
from airflow_opsflow.sync.plan import source_query
from airflow_opsflow.sync.ratelimit import RateLimiter
from airflow_opsflow.sync.spec import SyncSpec


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--uri", required=True)
    p.add_argument("--table", default="orders")
    p.add_argument("--key", default="o_orderkey")
    p.add_argument("--to", required=True)
    p.add_argument("--cursor")
    p.add_argument("--sync-id", default="bench")
    p.add_argument("--batch", type=int, default=100)
    args = p.parse_args()
    uri = args.uri
    limiter = RateLimiter()
    kind, _, target = args.to.partition(":")
    if kind == "sink":
        dest = HttpEndpointClient(HttpTransport(HttpTarget(target), 4, limiter), endpoint="/orders",
                               batch_size=args.batch)
        exclude = None
    else:
        dest = DatabaseTableClient(lambda: psycopg2.connect(uri), "postgres", target, [args.key])
        exclude = "updated_at"
    cols = _columns(uri, args.table, exclude)
    spec = SyncSpec.build(args.sync_id, args.key.split(","), mapping={c: c for c in cols}, max_failed=0,
                          cursor=args.cursor)
    started = time.perf_counter()
    report = SyncRun(spec, SqlSource(lambda: psycopg2.connect(uri), "postgres"),
                     source_query("postgres", None, args.table, "bench"),
                     lambda: StateStore(lambda: psycopg2.connect(uri), "postgres"), dest,
                     DeliveryPolicy(batch_size=args.batch, concurrency=4), pushdown_ok=True,
                     source_table=args.table, limiter=limiter).run()
    seconds = time.perf_counter() - started
    print(json.dumps({"sync_seconds": seconds, "counts": report.counts, "diff": report.diff, "full": report.full,
                      "requests": report.requests, "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      / 1024}))
    return 0


def _columns(uri: str, table: str, exclude: str | None) -> list[str]:
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        names = [d[0] for d in cur.description]
    conn.close()
    return [n for n in names if n != exclude]


if __name__ == "__main__":
    sys.exit(main())
