"""dlt driver: one ``pipeline.run()`` of ``sql_table(orders)`` → a ``@dlt.destination`` that POSTs to the sink.

Usage (by the benchmark)::

    venv-dlt/bin/python dlt_driver.py --uri URI --sink URL --pipelines-dir DIR --batch-size N [--fresh]

``sql_table`` (dlt's built-in ``dlt.sources.sql_database``, SQLAlchemy backend, defaults otherwise) reads
``orders`` with ``dlt.sources.incremental("updated_at")`` (default closed start range: rows with
``updated_at >= last value`` are read, those already seen at exactly the last value are dropped by
dlt's de-duplication). The destination function receives ``batch_size`` rows per call and POSTs them
as one JSON array on a keep-alive ``requests.Session`` (one per load thread: dlt loads jobs on a thread
pool). The pipeline's state lives in DIR (``--fresh`` deletes it, so the run is a full sync); dlt's
global data dir is pointed there too, so nothing lands in ~/.dlt. Telemetry is off.

Prints one JSON line on the real stdout: ``{"sync_s", "steps", "records_synced", "versions"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _protocol import _emit, _take_stdout

PIPELINE = "orders_to_http"


def main() -> int:
    channel = _take_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--pipelines-dir", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="drop the pipeline's state first (full sync)")
    args = parser.parse_args()

    pipelines_dir = args.pipelines_dir.resolve()
    if args.fresh:
        shutil.rmtree(pipelines_dir, ignore_errors=True)
    pipelines_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DLT_DATA_DIR"] = str(pipelines_dir / "data")
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, which dlt[postgres] does not install.
    uri = args.uri.replace("postgresql://", "postgresql+psycopg2://", 1)
    url = args.sink.rstrip("/") + "/dlt"

    import dlt
    import requests
    from dlt.sources.sql_database import sql_table

    sessions = threading.local()

    @dlt.destination(batch_size=args.batch_size, name="http_sink")
    def http_sink(items: Any, table: Any) -> None:
        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = requests.Session()
        response = session.post(
            url, data=json.dumps(items, default=str), headers={"Content-Type": "application/json"}, timeout=60
        )
        response.raise_for_status()

    source = sql_table(credentials=uri, table="orders", incremental=dlt.sources.incremental("updated_at"))
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE, pipelines_dir=str(pipelines_dir), destination=http_sink, dataset_name=PIPELINE
    )
    started = time.perf_counter()
    pipeline.run(source)
    sync_s = time.perf_counter() - started

    trace = pipeline.last_trace
    steps = {
        step.step: (step.finished_at - step.started_at).total_seconds()
        for step in (trace.steps if trace else [])
        if step.finished_at and step.started_at
    }
    normalized = trace.last_normalize_info if trace else None
    rows = normalized.row_counts.get("orders", 0) if normalized else 0
    _emit(
        channel,
        {
            "sync_s": sync_s,
            "steps": steps,
            "records_synced": rows,
            "versions": {"dlt": version("dlt"), "sqlalchemy": version("sqlalchemy")},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
