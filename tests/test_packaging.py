"""The wheel and sdist build, install into a clean virtualenv with Airflow 3, and register the provider; the
runtime wheel carries no testing code and no pytest plugin, which the testing kit's own wheel brings."""

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
          "operators.ticket", "sensors.data_condition", "sensors.ticket", "notifications.slack", "alerts.slack",
          "hooks.jira"):
    importlib.import_module("airflow_opsflow." + m)
print(json.dumps({"version": info.version, "dist": version("airflow-opsflow"), "airflow": version("apache-airflow")}))
"""

# A DAG author's test in a clean environment: the kit's fixture serves, the real client reaches it.
KIT_TEST = """
import json, urllib.request

def test_recording_http_fixture(recording_http):
    body = json.dumps({"id": 1}).encode()
    request = urllib.request.Request(recording_http.url + "/things", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status < 300
    [seen] = recording_http.requests_to("/things", "POST")
    assert seen.body == {"id": 1}
"""


def test_wheel_and_sdist_install_into_a_clean_airflow(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], check=True,
                   capture_output=True)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "airflow_opsflow/py.typed" in names and not any(n.startswith(("tests/", "bench/")) for n in names)
    assert not [n for n in names if "testing" in n.split("/")[0] or n.startswith("airflow_opsflow/testing")]
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    declared = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in declared and "pytest11" not in declared
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
    # The runtime alone registers no pytest plugin; the kit's wheel does, and its fixtures work.
    plugins = ("from importlib.metadata import entry_points; "
               "print(sorted(e.name for e in entry_points(group='pytest11')))")
    python = str(venv / "bin" / "python")
    out = subprocess.run([python, "-c", plugins], check=True, capture_output=True, text=True)
    assert "opsflow" not in out.stdout
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "kit"),
                    str(REPO / "airflow-opsflow-testing")], check=True, capture_output=True)
    [kit] = (tmp_path / "kit").glob("*.whl")
    kit_names = zipfile.ZipFile(kit).namelist()
    assert "airflow_opsflow_testing/py.typed" in kit_names
    assert not any(n.startswith("airflow_opsflow/") for n in kit_names)
    subprocess.run([*pip, str(kit)], check=True, capture_output=True, timeout=900)
    out = subprocess.run([python, "-c", plugins], check=True, capture_output=True, text=True)
    assert "opsflow" in out.stdout
    test = tmp_path / "test_kit.py"
    test.write_text(KIT_TEST)
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
