"""Run a command with the test databases up: ``python -m airflow_opsflow_testing.services -- pytest``.

Starts a throwaway PostgreSQL (always) and MariaDB (when its Debian binaries are installed), exports
``OPSFLOW_TEST_PG_URI`` / ``OPSFLOW_TEST_MARIADB_URI`` for the command, runs it, and removes the servers,
also when the run is cancelled (SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack

from airflow_opsflow_testing import mariadb, postgres


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m airflow_opsflow_testing.services -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    # Turn SIGTERM (CI cancelling, a killed make) into SystemExit so the servers are still removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = dict(os.environ)
    with ExitStack() as stack:
        started = time.monotonic()
        pg = stack.enter_context(postgres.ThrowawayPostgres())
        env[postgres.ENV_URI] = pg.uri
        print(f"throwaway PostgreSQL on 127.0.0.1:{pg.port} ({time.monotonic() - started:.1f} s)", flush=True)
        if mariadb.available():
            started = time.monotonic()
            maria = stack.enter_context(mariadb.ThrowawayMariaDB())
            env[mariadb.ENV_URI] = maria.uri
            print(f"throwaway MariaDB on 127.0.0.1:{maria.port} ({time.monotonic() - started:.1f} s)", flush=True)
        else:
            print("MariaDB binaries not installed: MariaDB tests will start their own or fail", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
