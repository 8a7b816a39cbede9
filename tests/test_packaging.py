"""The wheel and sdist build, install into a clean virtualenv with Airflow 3, and register the provider."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import airflow_opsflow

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHECK = """
import importlib, json
from importlib.metadata import version
from airflow.providers_manager import ProvidersManager
info = ProvidersManager().providers["airflow-opsflow"]
for m in ("operators.data_check", "operators.report", "operators.dbt_results", "operators.reverse_sync",
          "operators.ticket", "sensors.data_condition", "sensors.ticket", "notifications.slack", "hooks.jira"):
    importlib.import_module("airflow_opsflow." + m)
print(json.dumps({"version": info.version, "dist": version("airflow-opsflow"), "airflow": version("apache-airflow")}))
"""


def test_wheel_and_sdist_install_into_a_clean_airflow(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], check=True,
                   capture_output=True)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "airflow_opsflow/py.typed" in names and not any(n.startswith(("tests/", "bench/")) for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("CHANGELOG.md") for n in tar.getnames())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=900)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], check=True, capture_output=True, text=True)
    found = out.stdout.strip().splitlines()[-1]
    version = airflow_opsflow.__version__
    assert f'"version": "{version}"' in found and f'"dist": "{version}"' in found
    assert '"airflow": "3.' in found
