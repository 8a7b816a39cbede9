"""Run the clock-sensitive tests (marker ``clock``) once per hard instant; ``make test`` calls this after the
main run, next to the same throwaway databases.

Each run pins the ``clock`` fixture with ``OPSFLOW_TEST_NOW`` (tests seed their data and date their DAG runs
from it) and, when Debian's ``faketime`` is installed, the wall clock of the pytest process too, so code
that still reads the wall clock sees the same day. ``OPSFLOW_FAKETIME=0`` pins through the fixture only.

    python tests/clock_instants.py                       # every instant, tests/ -m clock
    python tests/clock_instants.py -x tests/reports      # pytest arguments instead of `tests`
    OPSFLOW_CLOCK_INSTANTS=2026-12-06T23:45:00Z python tests/clock_instants.py
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")
# Where UTC and Europe/Berlin (the examples' business time zone) disagree on the day, or a day is not 24 h.
INSTANTS = [
    ("2026-12-06T23:45:00Z", "00:45 on Monday in Berlin, still Sunday in UTC"),
    ("2026-03-29T01:30:00Z", "just after spring forward (01:00 UTC): a 23-hour Berlin day"),
    ("2026-03-29T22:30:00Z", "00:30 in Berlin the night after spring forward: yesterday had 23 hours"),
    ("2026-10-25T00:30:00Z", "just before fall back (01:00 UTC): 02:30 CEST, an hour that comes twice"),
    ("2026-10-25T23:30:00Z", "00:30 in Berlin the night after fall back: yesterday had 25 hours"),
    ("2028-02-29T23:30:00Z", "00:30 on 1 March in Berlin: yesterday was Feb 29"),
    ("2026-12-31T23:30:00Z", "New Year's Eve in UTC, 00:30 on 1 January in Berlin"),
]


def instants() -> list[tuple[str, str]]:
    chosen = os.environ.get("OPSFLOW_CLOCK_INSTANTS", "").split(",")
    return [(at.strip(), "chosen") for at in chosen if at.strip()] or INSTANTS


RUN_TIMEOUT_S = 10 * 60  # one instant's run takes ~3 min on 2 cores


def _run(cmd: list[str], env: dict[str, str]) -> int | None:
    """The run's exit code (negative: killed by that signal), or None when it outlived RUN_TIMEOUT_S (then
    its whole process group is killed)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        return proc.wait(RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def main(argv: list[str]) -> int:
    faketime = shutil.which("faketime") if os.environ.get("OPSFLOW_FAKETIME", "1") != "0" else None
    pinned_by = "OPSFLOW_TEST_NOW and faketime" if faketime else "OPSFLOW_TEST_NOW (no faketime: fixture only)"
    args = argv or ["tests"]
    failed: list[str] = []
    started = time.monotonic()
    for at, why in instants():
        utc = datetime.fromisoformat(at).astimezone(UTC)
        print(f"\n== clock instant {utc:%Y-%m-%d %H:%M:%S} UTC = {utc.astimezone(BERLIN):%a %Y-%m-%d %H:%M %Z} "
              f"in Berlin: {why} (pinned by {pinned_by})", flush=True)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "clock", *args]
        if faketime:
            # libfaketime starts the process's clock at that instant and lets it run on from there.
            cmd = [faketime, f"{utc:%Y-%m-%d %H:%M:%S} UTC", *cmd]
        env = {**os.environ, "OPSFLOW_TEST_NOW": utc.isoformat()}
        code = _run(cmd, env)
        # Hung or killed by a signal: libfaketime, not a test verdict. Its clock hooks call getenv() in every
        # thread, racing with the tests' setenv() (seen once: a SIGSEGV in a fake server's thread, turned into
        # a spin by the interpreter's handler). Such a run is made once more; a failing test is not.
        if code is None or code < 0:
            print(f"== the run at {at} {'hung' if code is None else f'died of signal {-code}'}; once more",
                  flush=True)
            code = _run(cmd, env)
        if code != 0:
            failed.append(at)
    print(f"\n== clock instants: {len(instants()) - len(failed)} of {len(instants())} passed in "
          f"{time.monotonic() - started:.0f} s" + (f"; failed at {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
