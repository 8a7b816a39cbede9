"""The reverse-ETL peers: drt-core and dlt syncing PostgreSQL ``orders`` to the local HTTP sink.

Each peer runs in a private venv (``.bench/venv-drt``, ``.bench/venv-dlt``) through a driver in
``_peers/`` started as a fresh process per run, so a run's wall time includes interpreter start-up and
imports, as a scheduled job's would. Per peer, three run kinds:

- ``full``: the peer's state deleted first, so its cursor-based incremental sync sends all 1.5M rows;
- ``1% changed``: :func:`_tpch.change_share` (untimed) stamps ~1 % of the rows, then an incremental run;
- ``no change``: an incremental run right after the previous one.

Figures are medians over the repeats; ``quick`` runs the slow full syncs once. Peak RSS is the largest
sum of RSS over the driver's process tree (polled every 50 ms), or the kernel's ru_maxrss of the driver
if that is larger (a peak shorter than the poll interval). Needs the table to have the ``updated_at``
column of :func:`_tpch.add_updated_at`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import _sync_sink
import _tpch
import psycopg2
from _venvs import VenvBuild

PEERS = Path(__file__).resolve().parent / "_peers"
DRT_REQUIREMENTS = ["drt-core[postgres]==1.2.1"]
# The extra is spelled sql-database: pip does not normalise "sql_database" and would silently skip it.
DLT_REQUIREMENTS = ["dlt[postgres,sql-database]==1.31.0"]
DRIVER_TIMEOUT_S = 1800.0
CHANGE_SHARE = 0.01
RUN_KINDS = ("full", "1% changed", "no change")
QUICK_FULL_S = 60.0  # in quick mode, full syncs shorter than this are repeated too


def start_builds(bench_dir: Path, log_dir: Path) -> dict[str, VenvBuild]:
    """Start building the peer venvs in background threads (call early, to overlap with data loading)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return {
        "drt": VenvBuild(bench_dir / "venv-drt", DRT_REQUIREMENTS, log_dir / "venv-drt.log").start(),
        "dlt": VenvBuild(bench_dir / "venv-dlt", DLT_REQUIREMENTS, log_dir / "venv-dlt.log").start(),
    }


@dataclasses.dataclass
class Peer:
    key: str  # the venv in ``builds``
    label: str  # completed with the version the driver reports
    driver: str
    args: list[str]  # driver arguments; ``--fresh`` is added for full runs
    note: str


def _peers(uri: str, sink_url: str, bench_dir: Path) -> list[Peer]:
    common = ["--uri", uri, "--sink", sink_url]
    drt_note = "HTTP rest_api destination, body_mode batch, cursor on updated_at, rate limit lifted (0 = off)"
    return [
        Peer(
            "drt",
            "drt-core {drt-core} (batch 100)",
            "drt_driver.py",
            [*common, "--project", str(bench_dir / "drt-b100"), "--batch-size", "100"],
            drt_note,
        ),
        Peer(
            "drt",
            "drt-core {drt-core} (batch 10,000)",
            "drt_driver.py",
            [*common, "--project", str(bench_dir / "drt-b10000"), "--batch-size", "10000"],
            drt_note,
        ),
        Peer(
            "dlt",
            "dlt {dlt} sql_database → @dlt.destination (batch 100)",
            "dlt_driver.py",
            [*common, "--pipelines-dir", str(bench_dir / "dlt-pipelines"), "--batch-size", "100"],
            "sql_table + incremental(updated_at), requests.Session per load thread, state in a local folder",
        ),
    ]


# --- one driver run, measured from outside -----------------------------------------------------------


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants (/proc; processes may vanish meanwhile)."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


@dataclasses.dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    report: dict[str, Any]
    error: str | None = None


def run_driver(python: Path, driver: Path, args: list[str], log: Path, timeout: float = DRIVER_TIMEOUT_S) -> Measured:
    """Run one driver process; wall time from spawn to exit, peak RSS of its tree, its JSON report."""
    with log.open("a") as err:
        err.write(f"\n--- {time.strftime('%H:%M:%S')} {driver.name} {' '.join(args)}\n")
        err.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(python), str(driver), *args], stdout=subprocess.PIPE, stderr=err, cwd=driver.parent, text=True
        )
        peak_kb = 0
        finished = threading.Event()

        def poll() -> None:
            nonlocal peak_kb
            while not finished.wait(0.05):
                peak_kb = max(peak_kb, _tree_rss_kb(proc.pid))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        # wait4 rather than wait: it also returns the driver's ru_maxrss (its own, or a reaped child's).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        killer.cancel()
        finished.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stdout is not None
    lines = proc.stdout.read().strip().splitlines()
    proc.stdout.close()
    try:
        report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {"error": f"unreadable driver report: {lines[-1][:200]}"}
    error = report.get("error")
    if proc.returncode != 0 and not error:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        error = f"driver exited {proc.returncode}: {tail[0][:300]}"
    return Measured(seconds, max(peak_kb, usage.ru_maxrss) / 1024, report, error)


# --- the suite ---------------------------------------------------------------------------------------


def _row(peer: Peer, label: str, run: str, samples: list[dict[str, Any]], expected: list[int]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [s[key] for s in samples if s.get(key) is not None]
        return statistics.median(values) if values else None

    seconds, records = median("seconds"), median("records")
    note = peer.note
    if records is not None and expected and any(s["records"] != e for s, e in zip(samples, expected, strict=True)):
        # Cursor-based peers should send exactly the changed rows (all rows when fresh); say so when not.
        note += f"; records sent {[s['records'] for s in samples]} vs rows expected {expected}"
    return {
        "contender": label,
        "run": run,
        "seconds": seconds,
        "sync_s": median("sync_s"),
        "records": records,
        "requests": median("requests"),
        "rows_per_s": records / seconds if records and seconds else None,
        "peak_rss_mb": median("peak_rss_mb"),
        "repeats": len(samples),
        "note": note,
    }


def _label(peer: Peer, versions: dict[str, str] | None) -> str:
    """The peer's label with the version its driver reported, or without a version before that."""
    if versions:
        return peer.label.format(**versions)
    return peer.label.replace(" {drt-core}", "").replace(" {dlt}", "")


def _error_rows(label: str, runs: tuple[str, ...] | list[str], reason: str) -> list[dict[str, Any]]:
    line = (reason.strip().splitlines() or ["?"])[-1][:300]
    return [{"contender": label, "run": run, "error": line} for run in runs]


def _run_peer(
    peer: Peer,
    python: Path,
    uri: str,
    sink_url: str,
    log: Path,
    counts: dict[str, int],
    seed: list[int],
    say: Any,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    label = _label(peer, None)
    for run in RUN_KINDS:
        samples: list[dict[str, Any]] = []
        expected: list[int] = []
        times = counts[run]
        while len(samples) < times:
            if run == "full":
                expected.append(counts["rows"])
            elif run == "1% changed":
                seed[0] += 1
                expected.append(_tpch.change_share(uri, "orders", CHANGE_SHARE, seed[0]))
            elif run == "no change":
                expected.append(0)
            _sync_sink.reset(sink_url)
            args = [*peer.args, "--fresh"] if run == "full" else peer.args
            measured = run_driver(python, PEERS / peer.driver, args, log)
            stats = _sync_sink.stats(sink_url)
            label = _label(peer, measured.report.get("versions")) if "versions" in measured.report else label
            if measured.error:
                say(f"  {label} / {run}: failed: {measured.error.strip().splitlines()[-1][:200]}")
                return [*rows, *_error_rows(label, RUN_KINDS[RUN_KINDS.index(run) :], measured.error)]
            sample = {
                "seconds": measured.seconds,
                "sync_s": measured.report.get("sync_s"),
                "records": stats["records"],
                "requests": stats["requests"],
                "peak_rss_mb": measured.peak_rss_mb,
            }
            samples.append(sample)
            if run == "full" and len(samples) == 1 and measured.seconds < QUICK_FULL_S:
                times = counts["1% changed"]  # a short full sync: as many as the other runs (a median)
            say(
                f"  {label} / {run}: {measured.seconds:.2f} s wall, {sample['sync_s'] or 0:.2f} s in sync, "
                f"{stats['records']:,} records in {stats['requests']:,} requests, {measured.peak_rss_mb:.0f} MB"
            )
        rows.append(_row(peer, label, run, samples, expected))
    return rows


def _count(uri: str) -> int:
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        row = cur.fetchone()
    conn.close()
    return int(row[0]) if row else 0


def run_peers(
    uri: str,
    sink_url: str,
    bench_dir: Path,
    log_dir: Path,
    repeats: int = 3,
    quick: bool = False,
    builds: dict[str, VenvBuild] | None = None,
    only: set[str] | None = None,
    say: Any = print,
) -> list[dict[str, Any]]:
    """Run every peer's full / 1 % changed / no-change sequence against ``orders`` in ``uri``.

    ``sink_url`` is the base URL of a running ``_sync_sink`` (its counters are reset before each run).
    ``quick`` runs a full sync once when it took over a minute (drt at batch 100 takes ~5.5 min per full
    run), else ``repeats`` times like the other runs (the median is reported); ``only`` picks
    peers by venv key (``{"drt"}``, ``{"dlt"}``). Returns one row per peer and run kind; a peer that
    cannot install or run gets rows with an ``error`` instead of raising.
    """
    builds = builds if builds is not None else start_builds(bench_dir, log_dir)
    counts = {"full": 1 if quick else repeats, "1% changed": repeats, "no change": repeats, "rows": _count(uri)}
    # With every row stamped by one ALTER TABLE, the cursor's last value would be shared by all 1.5M rows,
    # and dlt (closed start range) would re-read and de-duplicate all of them on every later run. Real
    # cursor columns are not like that: one prior change makes the newest value belong to ~1 % of rows.
    seed = [0]
    _tpch.change_share(uri, "orders", CHANGE_SHARE, seed[0])
    rows: list[dict[str, Any]] = []
    for peer in _peers(uri, sink_url, bench_dir):
        if only and peer.key not in only:
            continue
        try:
            python = builds[peer.key].wait()
        except RuntimeError as exc:
            rows += _error_rows(_label(peer, None), RUN_KINDS, f"install failed: {exc}")
            continue
        log = log_dir / f"{peer.key}-driver.log"
        rows += _run_peer(peer, python, uri, sink_url, log, counts, seed, say)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per peer: wall seconds per run kind (rows/s for full), peak RSS over its runs."""
    by_peer: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_peer.setdefault(row["contender"], {})[row["run"]] = row
    lines = ["| peer | full | 1 % changed | no change | peak RSS |", "|---|---|---|---|---|"]
    for name, runs in by_peer.items():
        cells = []
        for run in RUN_KINDS:
            row = runs.get(run, {})
            if row.get("error"):
                cells.append(f"error: {row['error'][:80]}")
            elif row.get("seconds") is None:
                cells.append("")
            elif run == "full" and row.get("rows_per_s"):
                cells.append(f"{row['seconds']:.1f} s ({row['rows_per_s'] / 1000:.1f}k rows/s)")
            else:
                cells.append(f"{row['seconds']:.2f} s ({row.get('records') or 0:,.0f} rows)")
        peaks = [r["peak_rss_mb"] for r in runs.values() if r.get("peak_rss_mb")]
        cells.append(f"{max(peaks):.0f} MB" if peaks else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
