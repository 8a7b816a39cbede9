"""Test DAG: the example dbt project run by an astronomer-cosmos ``DbtTaskGroup`` (one task per model run and
per model's tests, ExecutionMode.LOCAL), then ``DbtResultsOperator`` over the target directories a cosmos
callback keeps.

Parsing runs ``dbt ls`` (LoadMode.DBT_LS), so this file needs dbt: ``OPSFLOW_DBT_BIN`` names it,
``OPSFLOW_DBT_ARTIFACTS`` is where each task's ``target`` is kept. The warehouse is the Airflow connection
``opsflow_pg``. Without ``OPSFLOW_DBT_BIN`` (the other tests' ``dag.test()`` parse this folder too) cosmos
finds no ``dbt`` on the PATH and the file does not import: only tests/dbt/test_cosmos.py runs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode

from airflow_opsflow.operators.dbt_results import DbtResultsOperator

PROJECT = Path(__file__).resolve().parents[2] / "dags_examples" / "dbt" / "opsflow_shop"
DBT = os.environ.get("OPSFLOW_DBT_BIN", "dbt")
ARTIFACTS = Path(os.environ.get("OPSFLOW_DBT_ARTIFACTS", "/tmp/opsflow-cosmos"))
_CONN = "conn.opsflow_pg"


def keep_target(project_dir: str, context: Any, **_: Any) -> None:
    """Cosmos callback: copy the task's ``target`` out of cosmos' temporary project before it is deleted, to
    ``ARTIFACTS/<dag_id>/<task_id>/target`` (replaced on every try: DbtResultsOperator skips earlier runs')."""
    dest = ARTIFACTS / context["dag"].dag_id / context["ti"].task_id / "target"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(Path(project_dir) / "target", dest)


with DAG("test_dbt_cosmos", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False) as dag:
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(PROJECT),
        profile_config=ProfileConfig(profile_name="opsflow_shop", target_name="dev",
                                     profiles_yml_filepath=PROJECT / "profiles.yml"),
        # SUBPROCESS: dbt lives in its own virtualenv, not importable here (RenderConfig defaults to dbt's
        # in-process runner and refuses dbt_executable_path with it)
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL, dbt_executable_path=DBT,
                                         invocation_mode=InvocationMode.SUBPROCESS),
        render_config=RenderConfig(load_method=LoadMode.DBT_LS, dbt_executable_path=DBT,
                                   invocation_mode=InvocationMode.SUBPROCESS),
        operator_args={
            "callback": keep_target,
            "env": {
                "OPSFLOW_DBT_HOST": f"{{{{ {_CONN}.host }}}}",
                "OPSFLOW_DBT_PORT": f"{{{{ {_CONN}.port or 5432 }}}}",
                "OPSFLOW_DBT_USER": f"{{{{ {_CONN}.login or '' }}}}",
                "OPSFLOW_DBT_PASSWORD": f"{{{{ {_CONN}.password or '' }}}}",
                "OPSFLOW_DBT_DBNAME": f"{{{{ {_CONN}.schema }}}}",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            },
            "append_env": True,
        },
    )
    dbt_tests = DbtResultsOperator(
        task_id="dbt_tests",
        target_path=f"{ARTIFACTS}/{{{{ dag.dag_id }}}}/*/target",
        conn_id="opsflow_pg",
        trigger_rule="all_done",  # report what the tests found even when a cosmos task failed
    )
    dbt >> dbt_tests
