"""Test helpers: load a test DAG module by path, break the sample data in known ways."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Database

DAGS = Path(__file__).parent / "dags"
EXAMPLES = Path(__file__).parent.parent / "dags_examples"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"opsflow_test_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results_by_name(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in payload["results"]}


def state_on(db: Database, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Database:
    """The state store on ``db``; on PostgreSQL in tables of their own (``prefix``), dropped first, since that
    server is shared by the whole session."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.dialect == "postgres":
        monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", prefix)
        cur = db.conn.cursor()
        cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (prefix.replace("_", "\\_") + "%",))
        tables = [t for (t,) in cur.fetchall()]
        cur.close()
        if tables:
            db.execute(f"DROP TABLE {', '.join(tables)}")
    return db


SAFETY_S = 300.0  # only a hung run gets there: longer than any sensor timeout in the test DAGs


class ActAfter:
    """Run ``action`` in a background thread once ``count()`` (requests a fake answered, read from its log)
    reaches ``n``: e.g. close a ticket once a sensor saw it open twice, whatever dag.test() spends before its
    first poke. ``seen`` is the count when it acted; :meth:`join`, after the run, re-raises what went wrong
    in the thread, e.g. that the count never got there (``what`` names it). Event-driven: no timing can fail
    a test, only a hung run meets the safety deadline."""

    def __init__(self, count: Callable[[], int], n: int, action: Callable[[], object], what: str) -> None:
        self.seen = 0
        self._error: BaseException | None = None
        self._run_over = threading.Event()
        self._thread = threading.Thread(target=self._wait_then_act, args=(count, n, action, what), daemon=True)
        self._thread.start()

    def _wait_then_act(self, count: Callable[[], int], n: int, action: Callable[[], object], what: str) -> None:
        try:
            deadline = time.monotonic() + SAFETY_S
            while (seen := count()) < n:
                if self._run_over.is_set() or time.monotonic() > deadline:
                    raise AssertionError(f"the fake answered {seen} {what}, never the {n} to wait for")
                self._run_over.wait(0.02)  # paces the polling of the fake's log: cannot fail a test
            self.seen = seen
            action()
        except BaseException as e:  # re-raised by join(), in the test's thread
            self._error = e

    def join(self) -> None:
        self._run_over.set()
        self._thread.join(SAFETY_S)
        if self._thread.is_alive():
            raise AssertionError(f"the background action is still running after {SAFETY_S:g} s")
        if self._error is not None:
            raise self._error
