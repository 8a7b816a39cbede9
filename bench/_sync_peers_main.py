"""Run the reverse-ETL peers alone: TPC-H SF1 ``orders`` in a throwaway PostgreSQL → local HTTP sink.

    python bench/_sync_peers_main.py [--quick] [--repeats 3] [--only drt|dlt] [--pg-uri URI]

Prints a Markdown table (and writes every row as JSON to .bench/logs/sync-peers.json). The full
benchmark, with opsflow's own sync engine, is bench/sync.py; this is its peer half, runnable alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import _sync_peers
import _tpch
from _quiet import OtherLoad, postmaster_of
from _sync_sink import Sink

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"
LOGS = BENCH_DIR / "logs"
# As bench/checks.py, less pg_stat_statements (nothing here counts statements).
PG_SETTINGS = {"shared_buffers": "2GB", "wal_level": "minimal", "max_wal_senders": "0"}
if importlib.util.find_spec("airflow_opsflow") is None:
    sys.path.insert(0, str(REPO))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per kind, median reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="one full sync per peer instead of --repeats")
    parser.add_argument("--only", choices=["drt", "dlt"], action="append", help="run only these peers")
    parser.add_argument("--pg-uri", help="use this PostgreSQL (its `orders` table is replaced)")
    parser.add_argument("--count", default="json", help="sink record counting: json, key:NAME or none")
    args = parser.parse_args(argv)
    began = time.monotonic()
    LOGS.mkdir(parents=True, exist_ok=True)

    builds = _sync_peers.start_builds(BENCH_DIR, LOGS)
    csv_path, generated = _tpch.generate_orders(BENCH_DIR, LOGS / "tpchgen.log")
    _say(f"orders CSV ready ({generated:.0f} s generating)")
    with ExitStack() as stack:
        if args.pg_uri:
            uri = args.pg_uri
        else:
            from airflow_opsflow_testing.postgres import ThrowawayPostgres

            uri = stack.enter_context(ThrowawayPostgres(database="bench", settings=PG_SETTINGS)).uri
        loaded = _tpch.load_orders(uri, csv_path)
        _tpch.add_updated_at(uri)
        _say(f"loaded orders into {uri} in {loaded:.1f} s; waiting for the peer venvs")
        sink = stack.enter_context(Sink(args.count))
        postmaster = postmaster_of(uri)
        others = OtherLoad([os.getpid(), *([postmaster] if postmaster else [])])
        started = time.monotonic()
        others.start()
        rows = _sync_peers.run_peers(
            uri,
            sink.url,
            BENCH_DIR,
            LOGS,
            repeats=args.repeats,
            quick=args.quick,
            builds=builds,
            only=set(args.only) if args.only else None,
            say=_say,
        )
        other_cpu = others.stop()
        window = time.monotonic() - started
        sink_stats = sink.stats()

    (LOGS / "sync-peers.json").write_text(json.dumps(rows, indent=1))
    share = other_cpu / (window * len(os.sched_getaffinity(0)))
    print(_sync_peers.markdown(rows))
    print(
        f"\npeer suite {window:.0f} s (venv builds included: "
        + ", ".join(f"{k} {b.seconds:.0f} s" for k, b in builds.items())
        + f"); other processes used {share:.0%} of the CPUs meanwhile; the sink used "
        f"{sink_stats.get('cpu_s', 0):.0f} CPU-s and peaked at {sink_stats.get('peak_rss_mb', 0):.0f} MB; "
        f"total {time.monotonic() - began:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
