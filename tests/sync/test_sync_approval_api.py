"""Approval of risky syncs, answered for real: ``dag.test()`` runs the ``approved_sync`` group in this process
and keeps the run alive while its ``approve`` task awaits input; a real ``airflow api-server`` process on the
same metadata database takes the answer through Airflow's REST API (``PATCH .../hitlDetails``), as the
Required Actions page sends it, authenticated with a token from the simple auth manager."""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.dag_runner import DagRunResult, run_dag
from airflow_opsflow_testing.recording_http import RecordingHTTPServer

from tests.conftest import Database
from tests.helpers import DAGS, load_module

pytestmark = pytest.mark.usefixtures("airflow_db", "http_conn")
dag = load_module(DAGS / "approved_syncs.py").approved_dag
PATH = "/v1/accounts"
DAG_ID = "test_sync_approved"
USER, PASSWORD = "approver", "approve-it"
TASKS = ("accounts.plan", "accounts.needs_approval", "accounts.approve", "accounts.apply")


class ApiServer:
    """A running ``airflow api-server`` and a REST client logged in as ``approver``."""

    def __init__(self, base: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base, self.process, self.log = base, process, log
        self.token = ""

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def until(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"airflow api-server exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, KeyError):
                found = check()
                if found:
                    return found
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def api_server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("api-server")
    (tmp / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ,  # this session's AIRFLOW_HOME and metadata database (tests/conftest.py)
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp / "passwords.json"),
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    log = tmp / "api-server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port),
                                    "-w", "1", "--apps", "core"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = ApiServer(f"http://127.0.0.1:{port}", process, log)
    try:
        server.until("the api-server", lambda: server.call("GET", "/api/v2/monitor/health"), 120)
        server.token = server.call("POST", "/auth/token", {"username": USER, "password": PASSWORD})["access_token"]
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def run_answering(server: ApiServer, option: str, before: Callable[[], None] = lambda: None
                  ) -> tuple[DagRunResult, dict[str, Any]]:
    """Run the DAG; when its approval waits, ``before()``, then answer ``option`` through the REST API."""
    seen: dict[str, Any] = {}

    def respond() -> None:
        try:
            def waiting() -> dict[str, Any] | None:
                found = server.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails")["hitl_details"]
                return next((d for d in found if not d["response_received"]), None)

            detail = server.until("the approval to wait", waiting, 90)
            seen["detail"] = detail
            before()
            ti = detail["task_instance"]
            seen["answer"] = server.call(
                "PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
                f"{ti['map_index']}/hitlDetails", {"chosen_options": [option], "params_input": {}})
        except BaseException as e:  # dag.test() would wait for ever: stop it
            seen["error"] = e
            _thread.interrupt_main()

    thread = threading.Thread(target=respond, daemon=True)
    thread.start()
    run = run_dag(dag)
    thread.join(30)
    assert "error" not in seen, seen.get("error")
    return run, seen


def first_sync(api: RecordingHTTPServer) -> None:
    """The first run plans 71 new records: within the guards, so it applies without asking."""
    run = run_dag(dag)
    assert [run.task_states[t] for t in TASKS] == ["success", "success", "skipped", "success"], run.task_states
    assert run.xcom("accounts.apply")["counts"]["added"] == 71 and len(api.state(PATH)) == 71


def test_an_approved_plan_is_applied_exactly(api_server: ApiServer, api: RecordingHTTPServer,
                                             pg_source: Database) -> None:
    first_sync(api)
    pg_source.execute("UPDATE accounts SET total_spend = 0 WHERE account_id > 90")  # 30 of 71 leave: over 20%
    sent = len(api.requests)
    run, seen = run_answering(api_server, "Approve")
    assert [run.task_states[t] for t in TASKS] == ["success"] * 4, run.task_states
    plan, applied = run.xcom("accounts.plan", key="sync"), run.xcom("accounts.apply")
    assert plan["refused"].startswith("a real run would be refused: mirror would delete 30 of 71 synced records")
    detail = seen["detail"]  # what the approver was shown
    assert detail["subject"] == "Approve sync test_sync_approved.accounts: 0 added, 0 changed, 30 deleted"
    assert "**Deletes** (30): `100`, `101`" in detail["body"] and f"Plan `{plan['plan_hash']}`" in detail["body"]
    assert seen["answer"]["responded_by"]["name"] == USER and seen["answer"]["chosen_options"] == ["Approve"]
    assert applied["plan_hash"] == plan["plan_hash"] and applied["counts"]["deleted"] == 30
    deleted = sorted(r.path for r in api.requests[sent:] if r.method == "DELETE")
    assert deleted == sorted(f"{PATH}/{k}" for k in plan["delete_keys"]) and len(deleted) == 30
    assert len(api.requests) == sent + 30 and len(api.state(PATH)) == 41  # the deletes, and nothing else


def test_a_rejected_plan_sends_nothing(api_server: ApiServer, api: RecordingHTTPServer,
                                       pg_source: Database) -> None:
    first_sync(api)
    pg_source.execute("DELETE FROM accounts WHERE account_id > 90")
    sent = len(api.requests)
    run, seen = run_answering(api_server, "Reject")
    assert [run.task_states[t] for t in TASKS] == ["success", "success", "success", "skipped"], run.task_states
    assert seen["answer"]["chosen_options"] == ["Reject"]
    assert len(api.requests) == sent and len(api.state(PATH)) == 71


def test_a_plan_the_source_no_longer_yields_is_not_applied(api_server: ApiServer, api: RecordingHTTPServer,
                                                           pg_source: Database,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    first_sync(api)
    pg_source.execute("DELETE FROM accounts WHERE account_id > 90")
    sent = len(api.requests)
    # The approver approves 30 deletes; by then one more account has left the source.
    run, _ = run_answering(api_server, "Approve",
                           before=lambda: pg_source.execute("DELETE FROM accounts WHERE account_id = 90"))
    states = [run.task_states[t] for t in TASKS]
    assert states == ["success", "success", "success", "failed"], run.task_states
    assert run.tries["accounts.apply"] == 1  # not retried: it must be approved again
    plan, report = run.xcom("accounts.plan", key="sync"), run.xcom("accounts.apply", key="sync")
    assert report["refused"] == (f"the source no longer yields the approved plan (approved plan_hash "
                                 f"{plan['plan_hash']}, now {report['plan_hash']}: 0 added, 0 changed, 31 deleted); "
                                 "nothing was sent: plan and approve it again")
    assert len(api.requests) == sent and len(api.state(PATH)) == 71
    text = "".join(capfd.readouterr())
    assert "task 'accounts.apply': sync 'test_sync_approved.accounts': the source no longer yields" in text
    assert "clear the plan task of the approval group with its downstream tasks" in text
