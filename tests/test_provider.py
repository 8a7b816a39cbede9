"""The package is a registered Airflow provider and stays cheap to import in DAG files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from airflow_opsflow.get_provider_info import get_provider_info
from tests.conftest import AIRFLOW_ENV


def test_provider_info_is_plain_data() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-opsflow"
    json.dumps(info)
    for section in ("operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                __import__(module)


def test_airflow_lists_the_provider() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        env={**os.environ, **AIRFLOW_ENV}, capture_output=True, text=True, check=True,
    ).stdout
    providers = {p["package_name"]: p for p in json.loads(out[out.index("["):])}
    assert "airflow-opsflow" in providers
    assert providers["airflow-opsflow"]["version"] == "0.1.0"


def test_dag_files_pay_no_heavy_imports() -> None:
    code = ("import sys, airflow.sdk; before = set(sys.modules); "
            "import airflow_opsflow.operators.data_check, airflow_opsflow.sensors.data_condition; "
            "import airflow_opsflow.operators.reverse_sync, airflow_opsflow.destinations; "
            "new = set(sys.modules) - before; "
            "print(sorted(m for m in new if m.split('.')[0] in ('pandas', 'jira', 'slack_sdk', 'sqlglot', "
            "'numpy', 'psycopg2', 'urllib3', 'pycurl', 'hubspot')))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **AIRFLOW_ENV},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
