"""Airflow for real (``airflow standalone``: api-server, scheduler, dag-processor, triggerer) with the example
DAGs and the provider installed, driven through its REST API and its UI in headless Chromium (Debian's,
through Playwright): the dbt example DAG runs and succeeds, the dbt test report is in the task log, the
"Ticket(s)" extra link points at the tickets opsflow opened, and the connection form of the
``opsflow_jira`` type shows our fields. Screenshots go to ``build/ui-screenshots``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.jira_server import FakeJira
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.sample_data import seed
from airflow_opsflow_testing.slack_server import FakeSlack
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from tests.conftest import Database

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "ui-screenshots"
CHROMIUM = os.environ.get("OPSFLOW_CHROMIUM", "/usr/bin/chromium")
DAG = "ops_dbt_pipeline"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all bound at once, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


class Airflow:
    """A running ``airflow standalone`` and its REST API (the simple auth manager with everyone admin)."""

    def __init__(self, base: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.process, self.log = base, process, log

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(self.base + path, method=method, headers={"Content-Type": "application/json"},
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def wait(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"airflow standalone exited: see {self.log}")
            try:
                found = check()
                if found:
                    return found
            except Exception:  # not up yet, DAG not parsed yet...
                pass
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}; see {self.log}")


@pytest.fixture
def airflow(tmp_path: Path, pg_db: Database, pg_uri: str, fake_slack: FakeSlack, fake_jira: FakeJira,
            fake_hubspot: FakeHubSpot, fake_zendesk: FakeZendesk, fake_salesforce: FakeSalesforce) -> Iterator[Airflow]:
    from tests.dbt.test_dbt_pipeline import dbt_bin

    pg_db.execute("DROP SCHEMA IF EXISTS analytics CASCADE")
    seed(pg_db.conn, problems=True)
    for name, kind in (("opsflow_account_id", "string"), ("plan", "string"), ("total_spend", "number")):
        fake_hubspot.define_property("companies", name, kind, unique=name == "opsflow_account_id")
    fake_zendesk.define_field("organization", "tier", "dropdown", options=["critical", "high"])
    fake_zendesk.define_field("organization", "total_spend", "decimal")
    fake_salesforce.define_field("Account", "Warehouse_Id__c", external_id=True, unique=True)
    fake_salesforce.define_field("Account", "Tier__c", "picklist", picklist=["critical", "high"], restricted=True)
    fake_salesforce.define_field("Account", "Total_Spend__c", "currency")
    home = tmp_path / "airflow"
    home.mkdir()
    port, worker_logs, trigger_logs = _free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW__OPSFLOW__STATE_CONN_ID": "opsflow_state",
        "AIRFLOW_CONN_OPSFLOW_STATE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "state.db")}),
        "AIRFLOW_CONN_WAREHOUSE": pg_uri,
        "OPSFLOW_DBT_BIN": dbt_bin(), "OPSFLOW_DBT_TARGET": str(tmp_path / "dbt-target"),
        "PATH": f"{Path(os.sys.executable).parent}:{env.get('PATH', '')}",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    })
    env.update(fake_slack.slack_connection("slack_api_default"))
    env.update(fake_jira.jira_connection("opsflow_jira_default"))
    env.update(fake_hubspot.hubspot_connection("hubspot_default"))
    env.update(fake_zendesk.zendesk_connection("zendesk_default"))  # with ZENPY_FORCE_SCHEME=http
    env["REQUESTS_CA_BUNDLE"] = fake_salesforce.ca_bundle  # the fake serves TLS with its own CA
    env.update(fake_salesforce.salesforce_connection("salesforce_default"))
    log = home / "standalone.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(Path(os.sys.executable).parent / "airflow"), "standalone"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    running = Airflow(f"http://127.0.0.1:{port}", process, log)
    try:
        running.wait("the api-server and scheduler",
                     lambda: running.call("GET", "/api/v2/monitor/health")["scheduler"]["status"] == "healthy", 240)
        yield running
    finally:
        _stop(process)
        pg_db.execute("SET lock_timeout = '30s'", "DROP SCHEMA IF EXISTS analytics CASCADE")
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, SHOTS / "airflow-standalone.log")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop standalone and everything it started: task runners put themselves in process groups of their
    own, so the group signal alone would leave them (and their dbt) behind."""
    import psutil

    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(family, timeout=30)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def test_the_dbt_example_in_the_airflow_ui(airflow: Airflow, fake_jira: FakeJira) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    airflow.wait(f"the DAG {DAG} to be parsed", lambda: airflow.call("GET", f"/api/v2/dags/{DAG}"), 180)
    airflow.call("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})
    run_id = airflow.call("POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None})["dag_run_id"]
    run_path = f"/api/v2/dags/{DAG}/dagRuns/{urllib.parse.quote(run_id)}"
    state = airflow.wait("the run to finish", lambda: airflow.call("GET", run_path)["state"] in ("success", "failed")
                         and airflow.call("GET", run_path)["state"], 420)
    tickets = fake_jira.issues
    assert state == "success" and len(tickets) == 2  # two dbt tests warn: one ticket each

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{airflow.base}/dags/{DAG}/runs/{run_id}")
        page.get_by_text("dbt_tests").first.wait_for(timeout=60_000)
        page.screenshot(path=SHOTS / "1-dag-run.png", full_page=True)
        assert "Success" in page.inner_text("body") or "success" in page.inner_text("body")

        page.goto(f"{airflow.base}/dags/{DAG}/runs/{run_id}/tasks/dbt_tests")
        page.get_by_text("assert_payment_amounts_positive").first.wait_for(timeout=60_000)  # the report's row
        page.screenshot(path=SHOTS / "2-task-log-report.png", full_page=True)
        assert re.search(r"task 'dbt_tests': \d+ checks, \d+ pass, 2 warn", page.inner_text("body"))

        page.goto(f"{airflow.base}/dags/{DAG}/runs/{run_id}/tasks/dbt_tests/details")
        link = page.get_by_role("link", name="Ticket(s)")
        link.wait_for(timeout=60_000)
        page.screenshot(path=SHOTS / "3-extra-link.png", full_page=True)
        href = link.get_attribute("href") or ""
        keys = sorted(t.key for t in tickets)
        assert href.startswith(fake_jira.url) and all(k in urllib.parse.unquote(href) for k in keys)

        page.goto(f"{airflow.base}/connections")
        page.get_by_text("Add Connection").first.click()
        page.get_by_role("combobox").first.click()
        page.keyboard.type("opsflow_jira")
        page.keyboard.press("Enter")
        page.get_by_text("Jira URL").wait_for(timeout=30_000)
        page.screenshot(path=SHOTS / "4-jira-connection-form.png", full_page=True)
        standard = page.inner_text("body")
        page.get_by_text("Extra Fields", exact=True).click()  # the form's sections open one at a time
        page.get_by_text("Verify TLS").wait_for(timeout=30_000)
        page.screenshot(path=SHOTS / "5-jira-connection-extra-fields.png", full_page=True)
        extra = page.inner_text("body")
        for label, body in (("Jira URL", standard), ("Email (Jira Cloud; empty for Server/Data Center)", standard),
                            ("Deployment", extra), ("Verify TLS", extra), ("Timeout (seconds)", extra)):
            assert label in body, f"{label!r} not on the opsflow_jira connection form"
        assert "Schema" not in standard and "Port" not in standard  # hidden: Jira does not use them

        _the_ops_view(airflow, page, run_id, tickets)
        browser.close()


def _the_ops_view(airflow: Airflow, page: Any, run_id: str, tickets: list[Any]) -> None:
    """The Ops view in Airflow's UI: registered in its navigation, the run's two open incidents with their
    tickets, a check's history chart, and the link back to the task instance."""
    views = [v for p in airflow.call("GET", "/api/v2/plugins")["plugins"] for v in p.get("external_views", [])]
    assert {(v["name"], v["destination"]) for v in views} >= {("Ops", "nav"), ("Ops", "task_instance")}

    page.goto(f"{airflow.base}/plugin/opsflow")  # the navigation entry's page: the view in Airflow's frame
    frame = page.frame_locator("iframe").first
    frame.locator("main table, main .error, main .empty").first.wait_for(timeout=60_000)
    page.screenshot(path=SHOTS / "6-ops-incidents.png", full_page=True)
    assert frame.locator("main table").count(), frame.locator("main").inner_text()
    cards = frame.locator(".card").first.inner_text()
    assert cards.split()[0] == "2" and "open incidents" in cards  # the two warning dbt tests
    rows = frame.locator("table tbody tr")
    assert rows.count() == 2
    body = frame.locator("table").inner_text()
    assert all(t.key in body for t in tickets) and body.count(DAG) == 2

    frame.get_by_role("link", name="Check history").click()
    frame.locator("table tbody tr").first.wait_for(timeout=30_000)
    frame.locator("table tbody tr a").filter(has_text="assert_payment_amounts_positive").first.click()
    frame.locator("svg.chart").first.wait_for(timeout=30_000)
    page.screenshot(path=SHOTS / "7-ops-check-history.png", full_page=True)
    assert "Runs" in frame.locator("main").inner_text()

    frame.locator("main table tbody tr a").first.click()  # the run time links to the task instance
    # (Airflow's router goes there: a same-document move of the page around the view, no load event)
    page.wait_for_function(f"() => /\\/dags\\/{DAG}\\/runs\\/.+\\/tasks\\/dbt_tests/.test(location.pathname)",
                           timeout=30_000)
    page.get_by_text("No Task Instance found").wait_for(state="hidden", timeout=30_000)  # (while it loads)
    page.get_by_text("Rendered Templates").first.wait_for(timeout=30_000)
    page.screenshot(path=SHOTS / "8-ops-back-to-task.png", full_page=True)
    assert page.get_by_text("Ops", exact=True).count() >= 2  # in the navigation, and the task instance's tab
    assert urllib.parse.quote(run_id, safe="") in page.url or run_id in urllib.parse.unquote(page.url)
