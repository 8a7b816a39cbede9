"""Private virtualenvs for the peer tools, so their pins never touch the project's own environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


class VenvBuild:
    """Create ``path`` with ``requirements`` in a background thread, unless an identical one exists.

    A marker file records the requirements of a finished install, so an interrupted or outdated venv is
    rebuilt rather than half-used.
    """

    def __init__(self, path: Path, requirements: list[str], log: Path) -> None:
        self.path = path
        self.requirements = requirements
        self.log = log
        self.error: str | None = None
        self.seconds = 0.0
        self._marker = path / ".opsflow-bench-ready"
        self._thread: threading.Thread | None = None

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def ready(self) -> bool:
        return self._marker.exists() and self._marker.read_text() == "\n".join(self.requirements)

    def start(self) -> VenvBuild:
        if not self.ready():
            self._thread = threading.Thread(target=self._build, name=f"venv {self.path.name}", daemon=True)
            self._thread.start()
        return self

    def wait(self) -> Path:
        """Block until built; return its interpreter or raise RuntimeError with the log's tail."""
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise RuntimeError(self.error)
        return self.python

    def _build(self) -> None:
        started = time.monotonic()
        shutil.rmtree(self.path, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(self.path)],
            [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", *self.requirements],
        ]
        with self.log.open("w") as out:
            for step in steps:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
                if done.returncode != 0:
                    tail = self.log.read_text().strip().splitlines()[-15:]
                    self.error = f"`{' '.join(step)}` failed ({done.returncode}):\n" + "\n".join(tail)
                    return
        self._marker.write_text("\n".join(self.requirements))
        self.seconds = time.monotonic() - started
