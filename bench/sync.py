"""Reverse-ETL benchmark: TPC-H SF1 ``orders`` (1.5M rows) in PostgreSQL -> a local HTTP sink and -> a table.

    python bench/sync.py [--repeats 3] [--no-peers] [--no-lineitem]      (make bench runs it)

opsflow runs as a fresh process per run (``_sync_opsflow.py``), with its state in the source database,
exactly as the peers do (``_sync_peers.py``: drt-core and dlt in their own venvs): wall time from spawn
to exit and the peak RSS of the process tree are measured from outside. Runs:

* full: fresh state, every row sent (batches of 100 to the sink);
* 1 % changed: ~15k rows modified (untimed), then a run; no change: a run right after;
* the same two with a cursor column (``updated_at``) narrowing the read;
* a full sync into a PostgreSQL table; and the full sync of ``lineitem`` (6M rows) for peak RSS.

The state tables are vacuumed (untimed) after the resets and full syncs, as the source table is after
its changes: the benchmark's churn (1.5M keys deleted and inserted per repeat) is not a real sync's.

Figures go to docs/benchmarks.md between the ``bench:sync`` markers; ratios matter, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _doc
import _sync_peers
import _tpch
import psycopg2
from _quiet import OtherLoad, postmaster_of
from _sync_sink import Sink

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"
LOGS = BENCH_DIR / "logs"
DRIVER = Path(__file__).resolve().parent / "_sync_opsflow.py"
PG_SETTINGS = {"shared_buffers": "2GB", "wal_level": "minimal", "max_wal_senders": "0"}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def forget(uri: str, sync_id: str) -> None:
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('opsflow_sync_keys') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("DELETE FROM opsflow_sync_keys WHERE sync_id = %s", (sync_id,))
            cur.execute("DELETE FROM opsflow_sync_meta WHERE sync_id = %s", (sync_id,))
    conn.close()
    settle_state(uri)


def settle_state(uri: str) -> None:
    """VACUUM ANALYZE the state tables: the benchmark's resets delete 1.5M keys at a time and its full
    syncs insert as many, a churn autovacuum absorbs between a real sync's runs; no timed run should pay
    for another's dead rows (as _tpch.change_share does for the source table)."""
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('opsflow_sync_keys') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("VACUUM ANALYZE opsflow_sync_keys")
            cur.execute("VACUUM ANALYZE opsflow_sync_marks")
    conn.close()


def run_opsflow(uri: str, args: list[str], label: str) -> dict[str, Any]:
    m = _sync_peers.run_driver(Path(sys.executable), DRIVER, ["--uri", uri, *args], LOGS / "opsflow-driver.log")
    if m.error:
        raise RuntimeError(f"{label}: {m.error}")
    c = m.report["counts"]
    sent = c["added"] + c["changed"] + c["deleted"]
    say(f"  {label}: {m.seconds:.2f} s wall ({m.report['sync_seconds']:.2f} s in the sync), {sent:,} sent, "
        f"{m.peak_rss_mb:.0f} MB")
    return {"seconds": m.seconds, "sync_seconds": m.report["sync_seconds"], "sent": sent, "rss": m.peak_rss_mb,
            "diff": m.report["diff"]}


def median_row(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"label": label, "seconds": statistics.median(r["seconds"] for r in runs),
            "sync_seconds": statistics.median(r["sync_seconds"] for r in runs),
            "sent": runs[0]["sent"], "rss": max(r["rss"] for r in runs), "n": len(runs)}


def opsflow_suite(uri: str, sink: Sink, repeats: int, lineitem: bool) -> list[dict[str, Any]]:
    to_sink = ["--to", f"sink:{sink.url}"]
    rows: list[dict[str, Any]] = []
    full = []
    for _ in range(repeats):
        forget(uri, "bench")
        full.append(run_opsflow(uri, to_sink, "full"))
    rows.append(median_row("full (no cursor)", full))
    settle_state(uri)
    changed, quiet = [], []
    for seed in range(1, repeats + 1):
        _tpch.change_share(uri, "orders", 0.01, seed)
        changed.append(run_opsflow(uri, to_sink, "1 % changed"))
        quiet.append(run_opsflow(uri, to_sink, "no change"))
    rows += [median_row("1 % changed (no cursor)", changed), median_row("no change (no cursor)", quiet)]
    cursor = [*to_sink, "--cursor", "updated_at", "--sync-id", "bench-cursor"]
    forget(uri, "bench-cursor")
    run_opsflow(uri, cursor, "full (cursor, warm-up)")
    settle_state(uri)
    changed, quiet = [], []
    for seed in range(101, 101 + repeats):
        _tpch.change_share(uri, "orders", 0.01, seed)
        changed.append(run_opsflow(uri, cursor, "1 % changed (cursor)"))
        quiet.append(run_opsflow(uri, cursor, "no change (cursor)"))
    rows += [median_row("1 % changed (cursor)", changed), median_row("no change (cursor)", quiet)]
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS orders_copy")
        cur.execute("CREATE TABLE orders_copy (LIKE orders INCLUDING ALL)")
        cur.execute("ALTER TABLE orders_copy DROP COLUMN IF EXISTS updated_at")
    conn.close()
    forget(uri, "bench-table")
    rows.append(median_row("full -> PostgreSQL table", [run_opsflow(
        uri, ["--to", "table:orders_copy", "--sync-id", "bench-table", "--batch", "1000"], "full -> table")]))
    if lineitem:
        csv_path, _ = _tpch.generate_lineitem(BENCH_DIR, LOGS / "tpchgen.log")
        _tpch.load_lineitem(uri, csv_path)
        forget(uri, "bench-lineitem")
        rows.append(median_row("full, lineitem 6M rows", [run_opsflow(
            uri, ["--to", f"sink:{sink.url}", "--table", "lineitem", "--key", "l_orderkey,l_linenumber",
                  "--sync-id", "bench-lineitem"], "full lineitem")]))
    return rows


def report(ours: list[dict[str, Any]], peers: list[dict[str, Any]], facts: list[str]) -> str:
    lines = ["## Reverse sync (`make bench` -> bench/sync.py)", "", *facts, "",
             "| opsflow run | wall (fresh process) | in the sync | records sent | rows/s | peak RSS |",
             "|---|---|---|---|---|---|"]
    for r in ours:
        rate = f"{r['sent'] / r['seconds']:,.0f}" if r["sent"] > 100_000 else ""
        lines.append(f"| {r['label']} | {r['seconds']:.2f} s | {r['sync_seconds']:.2f} s | {r['sent']:,} | {rate} | "
                     f"{r['rss']:.0f} MB |")
    if peers:
        lines += ["", "Peers on the same data in the same run (`orders`, batches of 100 unless said; cursor-based):",
                  "",
                  _sync_peers.markdown(peers)]
        full = next(r for r in ours if r["label"].startswith("full (no"))
        for p in peers:
            if p.get("run") == "full" and p.get("seconds"):
                ratio = p["seconds"] / full["seconds"]
                lines.append(f"- full sync, {p['contender']}: {p['seconds']:.0f} s = {ratio:.2f}x opsflow's time "
                             f"({'opsflow faster' if ratio > 1 else 'opsflow slower'})")
    lines += ["", targets(ours, peers)]
    return "\n".join(lines)


def targets(ours: list[dict[str, Any]], peers: list[dict[str, Any]]) -> str:
    """Issue 5's targets against this run's figures (wall times from a fresh process)."""
    by = {r["label"]: r for r in ours}

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    out = []
    full = by.get("full (no cursor)")
    if full:
        rate = full["sent"] / full["seconds"]
        out.append(f"full sync >= 100k rows/s: {met(rate >= 100_000)} ({rate / 1000:.0f}k rows/s)")
        fulls = [p for p in peers if p.get("run") == "full" and p.get("seconds")]
        drt = [p["seconds"] for p in fulls if "drt" in p["contender"]]
        dlt = [p["seconds"] for p in fulls if "dlt" in p["contender"]]
        if drt:
            ratio = min(drt) / full["seconds"]
            out.append(f">= 2x drt-core at its best batch size: {met(ratio >= 2)} ({ratio:.2f}x)")
        if dlt:
            ratio = min(dlt) / full["seconds"]
            out.append(f">= 8x dlt: {met(ratio >= 8)} ({ratio:.1f}x)")
    for label, limit in (("1 % changed (no cursor)", 3.0), ("no change (no cursor)", 2.5),
                         ("1 % changed (cursor)", 1.0), ("no change (cursor)", 1.0)):
        r = by.get(label)
        if r:
            out.append(f"{label} <= {limit:g} s: {met(r['seconds'] <= limit)} ({r['seconds']:.2f} s wall, "
                       f"{r['sync_seconds']:.2f} s in the sync)")
    big = by.get("full, lineitem 6M rows")
    if big:
        out.append(f"peak RSS <= 300 MB at 6M rows: {met(big['rss'] <= 300)} ({big['rss']:.0f} MB)")
    return "Targets (issue 5), this run: " + "; ".join(out) + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-lineitem", action="store_true")
    args = parser.parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    builds = None if args.no_peers else _sync_peers.start_builds(BENCH_DIR, LOGS)
    csv_path, _ = _tpch.generate_orders(BENCH_DIR, LOGS / "tpchgen.log")
    with ExitStack() as stack:
        from airflow_opsflow_testing.postgres import ThrowawayPostgres

        uri = stack.enter_context(ThrowawayPostgres(database="bench", settings=PG_SETTINGS)).uri
        _tpch.load_orders(uri, csv_path)
        _tpch.add_updated_at(uri)
        _tpch.change_share(uri, "orders", 0.01, 0)  # as the peers' suite does: a realistic cursor spread
        sink = stack.enter_context(Sink("key:o_orderkey"))
        postmaster = postmaster_of(uri)
        others = OtherLoad([os.getpid(), *([postmaster] if postmaster else [])])
        others.start()
        say("opsflow:")
        ours = opsflow_suite(uri, sink, args.repeats, not args.no_lineitem)
        peers: list[dict[str, Any]] = []
        if builds is not None:
            _tpch.load_orders(uri, csv_path)
            _tpch.add_updated_at(uri)
            say("peers:")
            peers = _sync_peers.run_peers(uri, sink.url, BENCH_DIR, LOGS, repeats=args.repeats, quick=True,
                                          builds=builds, say=say)
        other_cpu = others.stop()
    facts = [f"Machine: {os.cpu_count()} cores; PostgreSQL from the Debian packages (throwaway cluster); "
             f"sink: bench/_sync_sink.py in its own process. State store = the source database (diff pushed "
             f"down). Medians of {args.repeats} (a peer's full sync once when it takes over a minute). Other "
             f"processes used {other_cpu:.0f} CPU-seconds during the run; whole benchmark "
             f"{time.monotonic() - began:.0f} s."]
    body = report(ours, peers, facts)
    _doc.write_section("sync", body, "Reverse sync")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
