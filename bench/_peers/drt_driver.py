"""drt-core driver: one ``drt run`` of a PostgreSQL ``orders`` → REST sync, in this process (own venv).

Usage (by the benchmark)::

    venv-drt/bin/python drt_driver.py --uri URI --sink URL --project DIR --batch-size N [--fresh]

Writes a drt project into DIR (``drt_project.yml``, ``syncs/orders.yml``) and a ``profiles.yml`` under
DIR/home/.drt (drt reads profiles from ``~/.drt``, so HOME points there), then runs the CLI's ``run``
command in-process, as ``drt run`` would. ``--fresh`` deletes drt's state (DIR/.drt) first, so the
incremental sync has no cursor and sends every row. Prints one JSON line on the real stdout:
``{"sync_s", "records_synced", "status", "cursor", "versions"}``; the tool's own output goes to stderr.

Configuration, as in the reference set-up: ``rest_api`` destination, ``body_mode: batch`` (one POST of a
JSON array per engine batch of ``sync.batch_size`` rows), ``mode: incremental`` with
``cursor_field: updated_at`` (drt's default strategy, ``cursor``), ``on_error: fail``. drt paces requests
at 10/s by default (``RateLimitConfig.requests_per_second = 10``); ``requests_per_second: 0`` switches
the limiter off (``RateLimiter.acquire`` returns at once for <= 0), as the reference's 44 requests/s
at batch 100 implies it did.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlsplit

from _protocol import _emit, _take_stdout

SYNC = "orders_to_http"


def _write_project(project: Path, uri: str, sink: str, batch_size: int) -> None:
    parts = urlsplit(uri)
    profiles = project / "home" / ".drt"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "profiles.yml").write_text(
        "bench:\n"
        "  type: postgres\n"
        f"  host: {parts.hostname or '127.0.0.1'}\n"
        f"  port: {parts.port or 5432}\n"
        f"  dbname: {parts.path.lstrip('/')}\n"
        f"  user: {unquote(parts.username or 'postgres')}\n"
        f"  password: {json.dumps(unquote(parts.password or ''))}\n"
    )
    (project / "syncs").mkdir(parents=True, exist_ok=True)
    (project / "drt_project.yml").write_text('name: bench\nversion: "0.1"\nprofile: bench\n')
    (project / "syncs" / "orders.yml").write_text(
        f"name: {SYNC}\n"
        "model: ref('orders')\n"
        "destination:\n"
        "  type: rest_api\n"
        f"  url: {json.dumps(sink.rstrip('/') + '/drt')}\n"
        "  method: POST\n"
        "  headers:\n"
        "    Content-Type: application/json\n"
        "  body_mode: batch\n"
        '  batch_template: "{{ rows | tojson_safe }}"\n'
        "sync:\n"
        "  mode: incremental\n"
        "  cursor_field: updated_at\n"
        f"  batch_size: {batch_size}\n"
        "  rate_limit:\n"
        "    requests_per_second: 0\n"
        "  on_error: fail\n"
    )


def main() -> int:
    channel = _take_stdout()
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="drop drt's state first (full sync)")
    args = parser.parse_args()

    project = args.project.resolve()
    if args.fresh:
        shutil.rmtree(project / ".drt", ignore_errors=True)
    _write_project(project, args.uri, args.sink, args.batch_size)
    os.environ["HOME"] = str(project / "home")
    os.environ["DO_NOT_TRACK"] = "1"
    os.chdir(project)

    from drt.cli.main import app

    started = time.perf_counter()
    try:
        app(["run", "--select", SYNC], prog_name="drt")
        code = 0
    except SystemExit as exc:  # typer exits through sys.exit even on success
        code = int(exc.code or 0)
    sync_s = time.perf_counter() - started

    state_file = project / ".drt" / "state.json"
    state = json.loads(state_file.read_text()).get(SYNC, {}) if state_file.exists() else {}
    _emit(
        channel,
        {
            "sync_s": sync_s,
            "exit_code": code,
            "records_synced": state.get("records_synced"),
            "status": state.get("status"),
            "error": state.get("error") if code == 0 else f"drt run exited {code}: {state.get('error')}",
            "cursor": state.get("last_cursor_value"),
            "versions": {"drt-core": version("drt-core")},
        },
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
