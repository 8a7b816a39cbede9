"""TPC-H SF1 ``lineitem`` and ``orders``: generate once with tpchgen-cli (cached under .bench/), load into PostgreSQL.

``orders`` also serves the reverse-ETL benchmark, which adds an ``updated_at`` cursor column
(:func:`add_updated_at`) and changes a share of the rows between runs (:func:`change_share`).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

LINEITEM_ROWS = 6_001_215  # TPC-H SF1, fixed by the spec
ORDERS_ROWS = 1_500_000
TPCHGEN_REQUIREMENT = "tpchgen-cli==4.0.0"

# Standard TPC-H DDL (types as in the spec's reference schema).
LINEITEM_DDL = """
CREATE TABLE lineitem (
    l_orderkey      BIGINT         NOT NULL,
    l_partkey       BIGINT         NOT NULL,
    l_suppkey       BIGINT         NOT NULL,
    l_linenumber    INTEGER        NOT NULL,
    l_quantity      DECIMAL(15, 2) NOT NULL,
    l_extendedprice DECIMAL(15, 2) NOT NULL,
    l_discount      DECIMAL(15, 2) NOT NULL,
    l_tax           DECIMAL(15, 2) NOT NULL,
    l_returnflag    CHAR(1)        NOT NULL,
    l_linestatus    CHAR(1)        NOT NULL,
    l_shipdate      DATE           NOT NULL,
    l_commitdate    DATE           NOT NULL,
    l_receiptdate   DATE           NOT NULL,
    l_shipinstruct  CHAR(25)       NOT NULL,
    l_shipmode      CHAR(10)       NOT NULL,
    l_comment       VARCHAR(44)    NOT NULL
)
"""

# Columns first, key added after the COPY (building the index once is faster than maintaining it per row).
ORDERS_DDL = """
CREATE TABLE {table} (
    o_orderkey      BIGINT         NOT NULL,
    o_custkey       BIGINT         NOT NULL,
    o_orderstatus   CHAR(1)        NOT NULL,
    o_totalprice    DECIMAL(15, 2) NOT NULL,
    o_orderdate     DATE           NOT NULL,
    o_orderpriority CHAR(15)       NOT NULL,
    o_clerk         CHAR(15)       NOT NULL,
    o_shippriority  INTEGER        NOT NULL,
    o_comment       VARCHAR(79)    NOT NULL
)
"""


def find_or_install_tpchgen(bench_dir: Path, log: Path) -> Path:
    """Return a tpchgen-cli binary: next to this interpreter, on PATH, or pip-installed into a bench venv."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.exists():
        return beside
    on_path = shutil.which("tpchgen-cli")
    if on_path:
        return Path(on_path)
    venv = bench_dir / "venv-tpch"
    binary = venv / "bin" / "tpchgen-cli"
    if not binary.exists():
        with log.open("a") as out:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, stdout=out, stderr=out)
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    TPCHGEN_REQUIREMENT,
                ],
                check=True,
                stdout=out,
                stderr=out,
            )
    return binary


def generate_lineitem(bench_dir: Path, log: Path) -> tuple[Path, float]:
    """Return the cached lineitem CSV (with header) and the seconds spent generating it (0 if cached)."""
    return _generate(bench_dir, log, "lineitem", "tpch-sf1")


def _generate(bench_dir: Path, log: Path, table: str, folder: str) -> tuple[Path, float]:
    """Generate ``table`` at SF1 into ``bench_dir/folder`` once (a scratch directory renamed into place,
    so an interrupted run never leaves a partial cache); return the CSV and the seconds spent (0: cached)."""
    target = bench_dir / folder / f"{table}.csv"
    if target.exists():
        return target, 0.0
    binary = find_or_install_tpchgen(bench_dir, log)
    started = time.monotonic()
    scratch = bench_dir / f"{folder}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    with log.open("a") as out:
        subprocess.run(
            [str(binary), "csv", "--scale-factor", "1", "--tables", table, "--output-dir", str(scratch)],
            check=True,
            stdout=out,
            stderr=out,
        )
    shutil.rmtree(target.parent, ignore_errors=True)
    scratch.rename(target.parent)
    return target, time.monotonic() - started


def load_lineitem(uri: str, csv_path: Path) -> float:
    """Create and fill ``lineitem`` unless it already holds the SF1 rows; return seconds spent (0 if kept)."""
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('lineitem') IS NOT NULL")
            row = cur.fetchone()
            if row and row[0]:
                cur.execute("SELECT count(*) FROM lineitem")
                count = cur.fetchone()
                if count and count[0] == LINEITEM_ROWS:
                    return 0.0
            started = time.monotonic()
            cur.execute("DROP TABLE IF EXISTS lineitem")
            # Same transaction as CREATE: with wal_level=minimal the COPY then skips WAL entirely.
            cur.execute("BEGIN")
            cur.execute(LINEITEM_DDL)
            with csv_path.open() as data:
                cur.copy_expert("COPY lineitem FROM STDIN WITH (FORMAT csv, HEADER true)", data)
            cur.execute("COMMIT")
            # VACUUM sets hint bits and the visibility map, so no timed run pays for them.
            cur.execute("VACUUM ANALYZE lineitem")
            return time.monotonic() - started
    finally:
        conn.close()


def warm_cache(uri: str) -> int:
    """Flush the load's dirty pages, then read the table once (into the OS page cache); return its count.

    No pg_prewarm: seq scans of a table this size use a small ring buffer anyway, and measured here
    a prewarmed shared_buffers made the parallel aggregates ~5 % slower, not faster.
    """
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            # No checkpoint writing the load out during timed runs. Needs superuser (or pg_checkpoint)
            # on a user-supplied server; skipped there.
            with contextlib.suppress(psycopg2.Error):
                cur.execute("CHECKPOINT")
            cur.execute("SELECT count(*) FROM lineitem")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def generate_orders(bench_dir: Path, log: Path) -> tuple[Path, float]:
    """Return the cached orders CSV (with header) and the seconds spent generating it (0 if cached).

    Cached in its own directory: :func:`generate_lineitem` replaces ``tpch-sf1/`` wholesale.
    """
    return _generate(bench_dir, log, "orders", "tpch-sf1-orders")


def _check_identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain table name: {name!r}")
    return name


def load_orders(uri: str, csv_path: Path, table: str = "orders") -> float:
    """(Re)create ``table`` as standard TPC-H ``orders`` with PRIMARY KEY (o_orderkey); return seconds spent.

    Always reloaded, unlike lineitem: the sync benchmark alters the table (cursor column, changed rows),
    so a kept copy could not be trusted to be pristine, and 1.5M rows load in a few seconds.
    """
    table = _check_identifier(table)
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            started = time.monotonic()
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            # Same transaction as CREATE: with wal_level=minimal the COPY then skips WAL entirely.
            cur.execute("BEGIN")
            cur.execute(ORDERS_DDL.format(table=table))
            with csv_path.open() as data:
                cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", data)
            cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (o_orderkey)")
            cur.execute("COMMIT")
            cur.execute(f"VACUUM ANALYZE {table}")
            return time.monotonic() - started
    finally:
        conn.close()


def add_updated_at(uri: str, table: str = "orders") -> None:
    """Add the cursor column the cursor-based peers need: ``updated_at timestamptz NOT NULL DEFAULT now()``.

    ``now()`` is stable, so PostgreSQL stores the default once instead of rewriting the table: every
    existing row gets the same timestamp (that of this call). Indexed, as a real cursor column would be.
    Idempotent.
    """
    table = _check_identifier(table)
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now()")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {table}_updated_at_idx ON {table} (updated_at)")
            cur.execute(f"VACUUM ANALYZE {table}")
    finally:
        conn.close()


def change_share(uri: str, table: str = "orders", share: float = 0.01, seed: int = 0) -> int:
    """Modify ``share`` of the rows (``o_comment`` and, if present, ``updated_at = now()``); return how many.

    The rows are picked by a hash of (o_orderkey, seed), so a seed always picks the same keys, and
    different seeds pick (almost) disjoint sets. The comment gets a counter suffix, so even the same
    seed applied twice changes the row's content again. Vacuumed afterwards, so no timed run pays
    for the dead tuples' cleanup or hint bits.
    """
    table = _check_identifier(table)
    buckets = 1_000_000
    threshold = round(share * buckets)
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = %s AND column_name = 'updated_at'",
                (table,),
            )
            row = cur.fetchone()
            stamp = ", updated_at = now()" if row and row[0] else ""
            # o_comment is VARCHAR(79) and TPC-H comments hold no '#': keep the original text (at most
            # 70 characters) and bump a ' #N' marker. (abs after %, so the bigint minimum cannot overflow.)
            cur.execute(
                f"UPDATE {table} SET o_comment = left(split_part(o_comment, ' #', 1), 70) || ' #' || "
                f"(coalesce(nullif(split_part(o_comment, ' #', 2), ''), '0')::int + 1){stamp} "
                f"WHERE abs(hashtextextended(o_orderkey::text, %s) %% {buckets}) < %s",
                (seed, threshold),
            )
            changed = cur.rowcount
            cur.execute(f"VACUUM ANALYZE {table}")
            return changed
    finally:
        conn.close()
