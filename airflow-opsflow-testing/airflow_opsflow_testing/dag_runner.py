"""Run a DAG for real with ``dag.test()`` and return what happened: task states and XComs.

Test tooling, not provider runtime code: it runs in the test process, which owns the (temporary)
metadata database that ``dag.test()`` itself writes to, so reading the run back from it is legitimate
here and nowhere else in opsflow.

    from airflow_opsflow_testing import airflow_home, run_dag

    with airflow_home(dags_folder="dags/"):     # temp AIRFLOW_HOME + migrated metadata DB
        result = run_dag(dag, conf={"day": "2024-01-01"})
        assert result.task_states["check_payments"] == "failed"
        result.xcom("check_payments", key="results")
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class DagRunResult:
    """The outcome of one run: ``state`` of the run; ``task_states``, ``tries`` and ``xcoms`` by task id."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str] = field(default_factory=dict)
    tries: dict[str, int] = field(default_factory=dict)
    xcoms: dict[str, dict[str, Any]] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        try:
            return self.xcoms[task_id][key]
        except KeyError:
            raise KeyError(f"no XCom {key!r} from task {task_id!r}; have {self.xcoms}") from None


def airflow_env(home: Path, dags_folder: Path | None = None) -> dict[str, str]:
    """Environment variables for an isolated Airflow: set them before ``airflow`` is imported."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or home / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
    }


def migrate(env: dict[str, str]) -> None:
    """``airflow db migrate`` in a subprocess, so this process's Airflow settings stay untouched."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )


@contextmanager
def airflow_home(dags_folder: str | Path | None = None) -> Iterator[Path]:
    """A temporary AIRFLOW_HOME with a migrated metadata DB, for the duration of the block.

    Must be entered before ``airflow`` is first imported in the process (Airflow reads its settings
    once, at import).
    """
    if "airflow" in sys.modules:
        raise RuntimeError("airflow_home() must be entered before airflow is imported")
    with tempfile.TemporaryDirectory(prefix="opsflow-airflow-") as tmp:
        home = Path(tmp)
        env = airflow_env(home, Path(dags_folder) if dags_folder else None)
        (home / "dags").mkdir()
        migrate(env)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield home
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_dag(
    dag: Any,
    *,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    conn_file_path: str | None = None,
    run_after: datetime | None = None,
) -> DagRunResult:
    """``dag.test()`` and read the run back: its state, every task's state and every XCom.

    ``run_after`` (``dag_run.run_after``, when the run is due) defaults to ``logical_date`` when that is
    given, else to now: a run pinned to an instant has it as logical date, data interval end and run_after
    (its run id comes from run_after: give a later one for a second run at the same logical date).

    The DAG is copied first: ``dag.test()`` renders templates onto the task objects it runs, and a
    second run of the same object would otherwise see the first run's rendered values (a worker parses
    the DAG file afresh for every try, so production never does).
    """
    import copy

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    kwargs: dict[str, Any] = {"run_conf": conf, "conn_file_path": conn_file_path}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    if run_after is not None or logical_date is not None:
        kwargs["run_after"] = run_after or logical_date
    dr = copy.deepcopy(dag).test(**kwargs)
    result = DagRunResult(dag_id=dag.dag_id, run_id=dr.run_id, state=str(dr.state))
    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=dr.run_id):
            result.task_states[ti.task_id] = str(ti.state)
            result.tries[ti.task_id] = ti.try_number
        for x in session.query(XComModel).filter_by(dag_id=dag.dag_id, run_id=dr.run_id):
            result.xcoms.setdefault(x.task_id, {})[x.key] = XComModel.deserialize_value(x)
    return result
