"""Reconciliation at scale: 1M keys per side on PostgreSQL, 0.1 % of them different.

    python bench/reconcile.py [--keys 1000000] [--runs 3] [--pg-uri URI] [--no-doc]

A ledger (``payments`` in database ``ledger``) and a processor's settlements (``settlements`` in database
``processor``, a second connection) hold the same payments but for 0.1 % of the keys: a third missing from
the settlements, a third only in the settlements, a third with an amount off by 0.05 (beyond the 0.01
tolerance). Every contender runs in a fresh process, timed from the outside, its peak RSS read from the
kernel (``wait4``), and must report exactly the planted differences:

* **opsflow**: ``ReconcileCheck`` through ``run_reconcile`` (both sides streamed in key order with
  server-side cursors and merged; counts and sums per currency reconciled too);
* **pandas merge**: what a DAG author writes by hand in a PythonOperator: ``read_sql`` of both sides and an
  outer ``merge`` on the key (no per-group totals).

Figures go to stdout and to the ``bench:reconcile`` section of docs/benchmarks.md. Nothing here is a
timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _doc import write_section  # noqa: E402

SPEC = {
    "kind": "reconcile", "name": "ledger_vs_settlements",
    "left": {"conn_id": "ledger", "table": "payments", "label": "ledger"},
    "right": {"conn_id": "processor", "table": "settlements", "label": "processor"},
    "key": "payment_id", "compare": [{"column": "amount", "tolerance": 0.01}], "group_by": "currency",
    "sample_limit": 10,
}


def _say(text: str) -> None:
    print(f"[reconcile] {text}", file=sys.stderr, flush=True)


def load(admin_uri: str, keys: int) -> dict[str, str]:
    """Create both databases and tables; return the URI of each and the planted counts."""
    import psycopg2

    base = admin_uri.rsplit("/", 1)[0]
    conn = psycopg2.connect(admin_uri)
    conn.autocommit = True
    with conn.cursor() as cur:
        for db in ("ledger", "processor"):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"CREATE DATABASE {db}")
    conn.close()
    rows = (f"SELECT g AS payment_id, round(((g::bigint * 7919) % 100000)::numeric / 100 + 1, 2) AS amount, "
            f"(ARRAY['EUR', 'USD', 'GBP'])[1 + g % 3] AS currency, 'settled'::text AS status "
            f"FROM generate_series(1, {keys}) g")
    step = 3000  # one planted difference of each kind per 3,000 keys: 0.1 % in all
    for db, table, extra in (
        ("ledger", "payments", []),
        ("processor", "settlements", [
            f"DELETE FROM settlements WHERE payment_id % {step} = 0",
            f"UPDATE settlements SET amount = amount + 0.05 WHERE payment_id % {step} = 1000",
            f"INSERT INTO settlements SELECT {keys} + g, 10.00, 'EUR', 'settled' "
            f"FROM generate_series(1, {keys // step + 1}) g",
        ]),
    ):
        with psycopg2.connect(f"{base}/{db}") as c, c.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} AS {rows}")
            for statement in extra:
                cur.execute(statement)
            cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (payment_id)")
        c = psycopg2.connect(f"{base}/{db}")
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute(f"VACUUM ANALYZE {table}")
            cur.execute(f"SELECT count(*) FROM {table}")  # warm the cache
        c.close()
    planted = {"only_left": keys // step, "mismatched": len(range(1000, keys + 1, step)),
               "only_right": keys // step + 1}
    return {"ledger": f"{base}/ledger", "processor": f"{base}/processor", "planted": json.dumps(planted)}


def worker_opsflow(uris: dict[str, str]) -> dict[str, Any]:
    import psycopg2

    from airflow_opsflow.checks.loader import load_suite
    from airflow_opsflow.monitors.reconcile import run_reconcile

    check = load_suite([SPEC]).tables[0].checks[0]
    result = run_reconcile(check, lambda conn_id: (lambda: psycopg2.connect(uris[str(conn_id)]), "postgres"))
    o = result.observed
    return {"only_left": o["only on ledger"], "only_right": o["only on processor"], "mismatched": o["mismatched"],
            "keys": result.rows_checked, "status": result.status}


def worker_pandas(uris: dict[str, str]) -> dict[str, Any]:
    import pandas as pd
    import sqlalchemy

    frames = []
    for db, table in (("ledger", "payments"), ("processor", "settlements")):
        engine = sqlalchemy.create_engine(uris[db].replace("postgresql://", "postgresql+psycopg2://"))
        frames.append(pd.read_sql(f"SELECT payment_id, amount, currency FROM {table}", engine))
        engine.dispose()
    merged = frames[0].merge(frames[1], on="payment_id", how="outer", indicator=True, suffixes=("_l", "_r"))
    both = merged[merged["_merge"] == "both"]
    mismatched = int(((both["amount_l"].astype(float) - both["amount_r"].astype(float)).abs() > 0.01 + 1e-9).sum())
    return {"only_left": int((merged["_merge"] == "left_only").sum()),
            "only_right": int((merged["_merge"] == "right_only").sum()), "mismatched": mismatched,
            "keys": len(merged)}


WORKERS = {"opsflow": worker_opsflow, "pandas": worker_pandas}
LABELS = {"opsflow": "opsflow `reconcile` (streamed sort-merge, + per-currency totals)",
          "pandas": "pandas `read_sql` + outer `merge`"}


def measure(name: str, uris: dict[str, str]) -> dict[str, Any]:
    """Run one contender in a fresh process: wall time, peak RSS (kernel's), its answer."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--worker", name, "--uris", json.dumps(uris)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    answer = json.loads(out.strip().splitlines()[-1])
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, **answer}


def report(runs: dict[str, list[dict[str, Any]]], keys: int, planted: dict[str, int], pg: str) -> str:
    lines = [
        f"Reconciliation of {keys:,} keys per side on PostgreSQL {pg}, two databases (two connections), "
        f"{sum(planted.values()):,} planted differences ({planted['only_left']} missing on the processor side, "
        f"{planted['only_right']} only there, {planted['mismatched']} amounts off by 0.05). "
        f"Each contender in a fresh process; median of {len(next(iter(runs.values())))} runs; peak RSS from "
        "the kernel (`wait4`). Both must find exactly the planted differences.",
        "",
        "| contender | wall (median) | keys/s | peak RSS | found (only left / only right / mismatched) |",
        "|---|---|---|---|---|",
    ]
    medians = {}
    for name, rs in runs.items():
        wall = statistics.median(r["seconds"] for r in rs)
        rss = max(r["rss_mb"] for r in rs)
        medians[name] = (wall, rss)
        r = rs[0]
        ok = all((x["only_left"], x["only_right"], x["mismatched"]) ==
                 (planted["only_left"], planted["only_right"], planted["mismatched"]) for x in rs)
        lines.append(f"| {LABELS[name]} | {wall:.1f} s | {2 * keys / wall:,.0f} | {rss:.0f} MB | "
                     f"{r['only_left']} / {r['only_right']} / {r['mismatched']} {'(exact)' if ok else '(WRONG)'} |")
    if "pandas" in medians:
        (ow, orss), (pw, prss) = medians["opsflow"], medians["pandas"]
        lines += ["", f"opsflow / pandas: wall {ow / pw:.2f}x, peak RSS {orss / prss:.2f}x "
                      f"({prss - orss:,.0f} MB less). opsflow's memory does not grow with the tables (it holds a "
                      "fetch batch per side and the per-group totals); pandas holds both tables and their merge."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg-uri", help="use this PostgreSQL (databases ledger and processor are replaced)")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--uris", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.uris))))
        return
    with ExitStack() as stack:
        uri = args.pg_uri
        if uri is None:
            from airflow_opsflow_testing.postgres import ThrowawayPostgres

            uri = stack.enter_context(ThrowawayPostgres(database="bench", settings={"shared_buffers": "512MB"})).uri
        _say(f"loading {args.keys:,} keys per side")
        uris = load(uri, args.keys)
        planted = json.loads(uris.pop("planted"))
        import psycopg2

        with psycopg2.connect(uris["ledger"]) as c, c.cursor() as cur:
            cur.execute("SHOW server_version")
            pg = str((cur.fetchone() or ["?"])[0]).split()[0]
        names = ["opsflow"] + ([] if args.skip_pandas else ["pandas"])
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for i in range(args.runs):
            for n in names:  # interleaved: a noisy moment hits both
                runs[n].append(measure(n, uris))
                _say(f"run {i + 1} {n}: {runs[n][-1]['seconds']:.1f} s, {runs[n][-1]['rss_mb']:.0f} MB")
    text = report(runs, args.keys, planted, pg)
    print(text)
    if not args.no_doc:
        write_section("reconcile", text, "Reconciliation")


if __name__ == "__main__":
    main()
