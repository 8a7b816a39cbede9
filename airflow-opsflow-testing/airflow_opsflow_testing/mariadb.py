"""A throwaway MariaDB server for tests: a data directory in a temporary folder, 127.0.0.1, a free port.

Uses the Debian ``mariadb-server`` binaries (``mariadb-install-db``, ``mariadbd``). Grant tables are
skipped (any user, no password): it is a private, loopback-only test server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

ENV_URI = "OPSFLOW_TEST_MARIADB_URI"


def available() -> bool:
    return bool(shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()) and bool(
        shutil.which("mariadb-install-db"))


class ThrowawayMariaDB:
    """Start a private MariaDB; use as a context manager.

    :param database: the database created for the caller.
    """

    def __init__(self, database: str = "opsflow") -> None:
        self.database = database
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> ThrowawayMariaDB:
        self._dir = Path(tempfile.mkdtemp(prefix="opsflow-mariadb-"))
        data = self._dir / "data"
        shutil.chown(self._dir, "mysql")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self._proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self._dir / 'sock'}", f"--pid-file={self._dir / 'pid'}", "--user=mysql",
             "--skip-grant-tables", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"],
            stdout=subprocess.DEVNULL, stderr=open(self._dir / "log", "wb"),  # noqa: SIM115 - lives with the server
        )
        self._wait()
        return self

    def _wait(self) -> None:
        import pymysql

        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or (self._proc and self._proc.poll() is not None):
                    log = (self._dir / "log").read_text()[-2000:] if self._dir else ""
                    raise RuntimeError(f"MariaDB did not start: {log}") from None
                time.sleep(0.2)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        conn.close()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> ThrowawayMariaDB:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
