"""The Ops view's page in Airflow's own API server app: served under /opsflow/ui/ with its script, style and
icon from the wheel, nothing fetched from elsewhere, and registered in Airflow's navigation and on task
instances (the browser test, tests/ui, drives it for real)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from airflow_opsflow.plugins.plugin import EXTERNAL_VIEWS, OpsflowPlugin
from airflow_opsflow.plugins.ui_routes import UI_DIR

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture(scope="module")
def api(airflow_db: Path) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app("core")) as client:
        yield client


def test_the_page_and_its_files_are_served(api: TestClient) -> None:
    moved = api.get("/opsflow/ui", follow_redirects=False)
    assert moved.status_code in (302, 307) and moved.headers["location"] == "/opsflow/ui/"
    page = api.get("/opsflow/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"?]+)"', page.text)  # (the tabs link ?page=...)
    assert sorted(assets) == ["static/ops.css", "static/ops.js", "static/ops.svg"]
    for asset, kind in (("ops.js", "javascript"), ("ops.css", "text/css"), ("ops.svg", "image/svg+xml")):
        answer = api.get(f"/opsflow/ui/static/{asset}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"], asset
    assert api.get("/opsflow/ui/static/../api.py").status_code == 404  # only the page's own files


def test_nothing_is_fetched_from_the_internet() -> None:
    """Every URL in the page's files is relative or an XML namespace: no CDN, no font service."""
    for path in UI_DIR.iterdir():
        for url in re.findall(r"https?://[^\s\"'`)]+", path.read_text()):
            assert url == "http://www.w3.org/2000/svg", f"{path.name} refers to {url}"


def test_the_view_is_in_the_navigation_and_on_task_instances() -> None:
    assert OpsflowPlugin.external_views == EXTERNAL_VIEWS
    by_place = {v["destination"]: v for v in EXTERNAL_VIEWS}
    assert by_place["nav"]["href"] == "/opsflow/ui/" and by_place["nav"]["name"] == "Ops"
    # Airflow fills the placeholders of a task instance's tab: the view opens on that task's incidents.
    assert "{DAG_ID}" in by_place["task_instance"]["href"] and "{TASK_ID}" in by_place["task_instance"]["href"]


def test_alerts_and_tasks_link_to_the_view() -> None:
    from airflow_opsflow.flows.track_incidents import TaskRun
    from airflow_opsflow.links import ops_view_url

    run = TaskRun("payments", "check orders", "scheduled__2026-06-15", "https://airflow.example.com/dags/payments/"
                  "runs/scheduled__2026-06-15/tasks/check%20orders?try_number=1")
    assert run.ops_url == ("https://airflow.example.com/opsflow/ui/?page=incidents&status=all&dag_id=payments"
                           "&task_id=check+orders")
    assert TaskRun("d", "t", "r", "/dags/d/runs/r/tasks/t").ops_url is None  # no host: no link in a message
    assert TaskRun("d", "t", "r").ops_url is None
    assert ops_view_url("syncs", dag_id="crm", task_id="push") == "/opsflow/ui/?page=syncs&dag_id=crm&task_id=push"
