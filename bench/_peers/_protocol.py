"""Line protocol between the benchmark and a peer driver running in the peer's own virtualenv.

Kept to the standard library: it is imported by drivers running in venvs that have neither opsflow nor
Airflow. The benchmark sends ``run`` or ``quit`` lines; the driver answers one JSON line per request
on its *original* stdout. Everything else the peer library prints is sent to stderr, so chatty logging
cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

# One suite run: returns (seconds spent in the peer's own "run the checks" call, per-check outcomes).
# Each outcome is {"name": str, "passed": bool, "observed": str}.
RunOnce = Callable[[], tuple[float, list[dict[str, Any]]]]


def _take_stdout() -> TextIO:
    """Return a private handle on the real stdout and point fd 1 (and sys.stdout) at stderr."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _emit(channel: TextIO, payload: dict[str, Any]) -> None:
    channel.write(json.dumps(payload, default=str) + "\n")
    channel.flush()


def serve(setup: Callable[[str], RunOnce], versions: dict[str, str]) -> int:
    """Run ``setup(uri)`` once, then one suite run per ``run`` line until ``quit`` or EOF."""
    channel = _take_stdout()
    uri = sys.argv[1]
    started = time.perf_counter()
    try:
        run_once = setup(uri)
    except Exception:
        _emit(channel, {"event": "ready", "error": traceback.format_exc()})
        return 1
    _emit(channel, {"event": "ready", "setup_s": time.perf_counter() - started, "versions": versions})
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command != "run":
            _emit(channel, {"event": "error", "error": f"unknown command {command!r}"})
            continue
        try:
            seconds, checks = run_once()
        except Exception:
            _emit(channel, {"event": "run", "error": traceback.format_exc()})
            continue
        _emit(channel, {"event": "run", "seconds": seconds, "checks": checks})
    return 0
