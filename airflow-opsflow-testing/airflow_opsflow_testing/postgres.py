"""A throwaway PostgreSQL cluster for tests, demos and benchmarks.

The cluster lives in a temporary directory, listens on 127.0.0.1 on a free port, and is removed on
exit. It uses the Debian ``postgresql`` server binaries (``initdb``, ``pg_ctl``). PostgreSQL refuses to
run as root, so when we are root the server runs as the ``postgres`` system user.

``python -m airflow_opsflow_testing.services -- COMMAND`` (used by ``make test``) runs a command with
one up and ``OPSFLOW_TEST_PG_URI`` exported.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

ENV_URI = "OPSFLOW_TEST_PG_URI"


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl`` (newest Debian version first)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for found in candidates:
        if (Path(found) / "initdb").exists():
            return Path(found)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: install the Debian 'postgresql' package "
        "(`make test` does this for you)."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """Start a private PostgreSQL cluster; use as a context manager.

    :param database: name of the database created for the caller.
    :param settings: extra ``postgresql.conf`` settings (e.g. ``{"shared_buffers": "1GB"}``).
    :param user: role created as superuser for the caller (password auth is not used: trust on loopback).
    """

    def __init__(
        self,
        database: str = "opsflow",
        settings: dict[str, str] | None = None,
        user: str = "opsflow",
    ) -> None:
        self.database = database
        self.user = user
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        self.settings.update(settings or {})
        self.port = 0
        self._dir: Path | None = None
        self._run_as: list[str] = []

    @property
    def uri(self) -> str:
        """A ``postgresql://`` URI usable as an Airflow connection (``AIRFLOW_CONN_...``)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _cmd(self, *args: str) -> list[str]:
        return [*self._run_as, *args]

    def start(self) -> ThrowawayPostgres:
        bindir = find_pg_bindir()
        self._dir = Path(tempfile.mkdtemp(prefix="opsflow-pg-"))
        data, sock = self._dir / "data", self._dir / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            # initdb refuses root; hand the directory to the postgres system user.
            shutil.chown(self._dir, "postgres")
            shutil.chown(sock, "postgres")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            self._cmd(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"),
            check=True,
            capture_output=True,
        )
        self.port = _free_port()
        opts = " ".join(
            [f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={sock}"]
            + [f"-c {k}={v}" for k, v in self.settings.items()]
        )
        subprocess.run(
            self._cmd(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self._dir / "log"),
                      "-w", "-t", "60", "start"),
            check=True,
            capture_output=True,
        )
        self._psql_admin(f"CREATE ROLE {self.user} SUPERUSER LOGIN")
        self._psql_admin(f"CREATE DATABASE {self.database} OWNER {self.user}")
        return self

    def _psql_admin(self, sql: str) -> None:
        import psycopg2  # only the test kit needs a driver at hand

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def stop(self) -> None:
        if self._dir is None:
            return
        bindir = find_pg_bindir()
        subprocess.run(
            self._cmd(str(bindir / "pg_ctl"), "-D", str(self._dir / "data"), "-m", "immediate", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

