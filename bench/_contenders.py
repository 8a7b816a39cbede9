"""The contenders. Each runs the whole suite once per ``run_once()`` and reports per-check outcomes.

In-process contenders are timed around the call (connection set-up included: a task run connects
too). Peer tools run in their own venvs behind ``_peers/_protocol.py`` and time themselves, so
neither interpreter start-up nor the pipe is counted.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import IO, Any

import psycopg2
import psycopg2.extras
from _suite import (
    COMMON_SQL_COLUMN_MAPPING,
    COMMON_SQL_TABLE_CHECKS,
    OPSFLOW_SUITE,
    SINGLE_QUERY,
    TUNED_AGGREGATES,
    TUNED_DISTINCT,
    Check,
    evaluate,
)
from _venvs import VenvBuild

CONN_ID = "bench_pg"
CONN_ENV = "AIRFLOW_CONN_BENCH_PG"
PEER_TIMEOUT_S = 900.0


class NotAvailable(Exception):
    """The contender cannot run yet (e.g. the opsflow operator is still being written)."""


@dataclasses.dataclass
class RunResult:
    seconds: float
    checks: list[Check]


class Contender:
    """Base class: ``start()`` once, ``run_once()`` per round, ``close()`` at the end."""

    key = ""
    label = ""
    expected_checks = 13
    known_statements: int | None = None  # fallback when pg_stat_statements is unavailable

    def start(self) -> None:
        return None

    def run_once(self) -> RunResult:
        raise NotImplementedError

    def close(self) -> None:
        return None


class InProcess(Contender):
    def __init__(
        self,
        key: str,
        label: str,
        fn: Callable[[str], list[Check]],
        uri: str,
        expected_checks: int = 13,
        known_statements: int | None = None,
    ) -> None:
        self.key, self.label, self._fn, self._uri = key, label, fn, uri
        self.expected_checks, self.known_statements = expected_checks, known_statements

    def run_once(self) -> RunResult:
        started = time.perf_counter()
        checks = self._fn(self._uri)
        return RunResult(time.perf_counter() - started, checks)


# --- a. opsflow ---------------------------------------------------------------------------------------


def _normalise(result: Any) -> Check:
    """Accept a dict (or dataclass / pydantic model) result and read name, pass/fail, observed value."""
    if hasattr(result, "model_dump"):
        result = result.model_dump()
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    if not isinstance(result, dict):
        return {"name": repr(result), "passed": False, "observed": "unreadable result"}
    passed: Any = None
    for key in ("passed", "success", "ok"):
        if isinstance(result.get(key), bool):
            passed = result[key]
            break
    else:
        status = str(result.get("status", result.get("outcome", ""))).lower()
        passed = status in {"pass", "passed", "ok", "success", "succeeded"}
    observed = next((result[k] for k in ("observed", "value", "actual", "result") if k in result), "")
    return {"name": str(result.get("name", "?")), "passed": bool(passed), "observed": str(observed)}


def run_opsflow(uri: str) -> list[Check]:
    """Run the suite once through opsflow's DataCheckOperator."""
    os.environ[CONN_ENV] = uri  # Airflow resolves ``bench_pg`` from this variable
    try:
        from airflow_opsflow.operators.data_check import DataCheckOperator
    except ImportError as exc:
        raise NotAvailable(str(exc)) from exc
    op = DataCheckOperator(task_id="bench", conn_id=CONN_ID, checks=OPSFLOW_SUITE)
    results = op.run_checks()
    return [_normalise(result) for result in results]


STATE_CONN_ID = "bench_state"
STATE_ENV = "AIRFLOW_CONN_BENCH_STATE"
HISTORY_WRITES: list[float] = []  # seconds of each result-history write (the operator's _record)


def run_opsflow_history(uri: str) -> list[Check]:
    """The same suite, then the result-history write every task run makes (13 rows into a SQLite state
    database, opsflow's embedded default; a separate file so pg_stat_statements counts lineitem's queries)."""
    import json
    import types
    from datetime import UTC, datetime
    from pathlib import Path

    os.environ[CONN_ENV] = uri
    state = Path(__file__).resolve().parents[1] / ".bench" / "state.db"
    os.environ[STATE_ENV] = json.dumps({"conn_type": "sqlite", "host": str(state)})
    from airflow_opsflow.operators.data_check import DataCheckOperator

    op = DataCheckOperator(task_id="bench_history", conn_id=CONN_ID, checks=OPSFLOW_SUITE,
                           state_conn_id=STATE_CONN_ID)
    results = op._run()
    n = len(HISTORY_WRITES)
    ti = types.SimpleNamespace(dag_id="bench", task_id="bench_history", run_id=f"bench__{os.getpid()}_{n}",
                               try_number=1, map_index=-1)
    started = time.perf_counter()
    op._record(results, {"ti": ti, "data_interval_end": datetime.now(UTC)})  # type: ignore[arg-type]
    HISTORY_WRITES.append(time.perf_counter() - started)
    return [_normalise(r.to_dict()) for r in results]


# --- b. apache-airflow-providers-common-sql -----------------------------------------------------------


def run_common_sql_columns(uri: str) -> list[Check]:
    """SQLColumnCheckOperator: one statement, a UNION ALL of one full-table subquery per check."""
    from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator

    bench_columns = SQLColumnCheckOperator(
        task_id="bench_columns",
        conn_id=CONN_ID,
        table="lineitem",
        column_mapping=copy.deepcopy(COMMON_SQL_COLUMN_MAPPING),  # execute() writes results into it
    )
    bench_columns.execute(context={})  # raises on any failed check
    return [
        {"name": f"{column}.{check}", "passed": bool(spec["success"]), "observed": str(spec["result"])}
        for column, checks in bench_columns.column_mapping.items()
        for check, spec in checks.items()
    ]


def run_common_sql_table(uri: str) -> list[Check]:
    """SQLTableCheckOperator: row count and the row-level shipdate <= receiptdate condition."""
    from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator

    bench_table = SQLTableCheckOperator(
        task_id="bench_table",
        conn_id=CONN_ID,
        table="lineitem",
        checks=copy.deepcopy(COMMON_SQL_TABLE_CHECKS),
    )
    bench_table.execute(context={})
    return [
        {"name": name, "passed": bool(spec["success"]), "observed": str(spec["result"])}
        for name, spec in bench_table.checks.items()
    ]


# --- c. / d. hand-written SQL via psycopg2 ------------------------------------------------------------


def _fetch(uri: str, statements: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    with (
        closing(psycopg2.connect(uri)) as conn,
        conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
    ):
        for statement in statements:  # sequentially, on one connection
            cur.execute(statement)
            values.update(cur.fetchone() or {})
    return values


def run_single_query(uri: str) -> list[Check]:
    return evaluate(_fetch(uri, [SINGLE_QUERY]))


def run_hand_tuned(uri: str) -> list[Check]:
    return evaluate(_fetch(uri, [TUNED_AGGREGATES, TUNED_DISTINCT]))


# --- e. / f. peer tools in their own venvs ------------------------------------------------------------


class Peer(Contender):
    """A driver process in the peer's venv, speaking the line protocol of ``_peers/_protocol.py``."""

    def __init__(self, key: str, label: str, build: VenvBuild, driver: Path, uri: str, log: Path) -> None:
        self.key, self.label = key, label
        self._build, self._driver, self._uri, self._log = build, driver, uri, log
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.versions: dict[str, str] = {}
        self.setup_s = 0.0

    def start(self) -> None:
        python = self._build.wait()
        with self._log.open("w") as log:  # the child keeps its own handle on the log
            self._proc = subprocess.Popen(
                [str(python), str(self._driver), self._uri],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=self._driver.parent,
            )
        stdout = self._proc.stdout
        assert stdout is not None
        threading.Thread(target=self._pump, args=(stdout,), daemon=True).start()
        ready = self._receive()
        if "error" in ready:
            raise RuntimeError(f"driver set-up failed:\n{ready['error']}")
        self.versions = ready.get("versions", {})
        self.setup_s = float(ready.get("setup_s", 0.0))

    def run_once(self) -> RunResult:
        self._send("run")
        reply = self._receive()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return RunResult(float(reply["seconds"]), list(reply["checks"]))

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._send("quit")
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _send(self, command: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()

    def _receive(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=PEER_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(f"no answer from {self._driver.name} within {PEER_TIMEOUT_S:.0f} s") from None
        if line is None:
            tail = "\n".join(self._log.read_text(errors="replace").strip().splitlines()[-15:])
            raise RuntimeError(f"{self._driver.name} exited; log tail ({self._log}):\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        return reply
