"""JiraTicketHook against the fake Jira in both deployments, and the errors users see."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow_opsflow_testing.jira_server import FakeJira

from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.flows.deliver_alerts import deliver_pending
from airflow_opsflow.hooks.jira import JiraTicketHook
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.triggers.ticket import TicketStatusTrigger

BOTH = pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
FP = fingerprint("d", "t", "c")
SUBJECT = Subject(FP, "d", "t", "c")
RESULT = {"name": "c", "table": "payments", "status": "fail", "violating_count": 3, "expected": "no NULL values"}


@BOTH
def test_connection_and_deployment(fake_jira: FakeJira, jira_conn: str) -> None:
    hook = JiraTicketHook(jira_conn)
    ok, message = hook.test_connection()
    assert ok and message.startswith(f"Connected to Jira {'Cloud' if fake_jira.cloud else 'Server'}")
    assert hook.is_cloud is fake_jira.cloud


def test_expired_token_is_a_clear_failure(fake_jira: FakeJira, jira_conn: str) -> None:
    fake_jira.expire_token()
    ok, message = JiraTicketHook(jira_conn).test_connection()
    assert not ok and "401" in message


def _deliver(tmp_path: Path, route: JiraTicket) -> list[tuple[str, str]]:
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
    repo.record([(SUBJECT, Observation(True, "error", "run1", RESULT))], Policy(), [route.name])
    return deliver_pending(repo, [route], {FP: SUBJECT}, {}).failed


@pytest.mark.parametrize("route,problem", [
    (JiraTicket(project="NOPE", conn_id="opsflow_jira_default"), "project"),
    (JiraTicket(project="OPS", issue_type="Epic Saga", conn_id="opsflow_jira_default"), "issue type"),
])
def test_bad_project_or_issue_type_fail_the_delivery_clearly(tmp_path: Path, fake_jira: FakeJira, jira_conn: str,
                                                            route: JiraTicket, problem: str) -> None:
    [(_, error)] = _deliver(tmp_path, route)
    assert "JIRAError" in error and "400" in error and problem in error.lower()
    assert fake_jira.issues == []


def test_labels_not_on_the_create_screen(tmp_path: Path, fake_jira: FakeJira, jira_conn: str) -> None:
    fake_jira.set_labels_on_create_screen("OPS", False)
    [(_, error)] = _deliver(tmp_path, JiraTicket(project="OPS"))
    assert "labels" in error and "not on the appropriate screen" in error


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("verify,trusted", [
    ("false", True), ("False", True), (False, True), ("CA bundle", True),
    (True, False), ("true", False), (None, False),
])
def test_sync_and_async_clients_read_verify_alike(fake_jira: FakeJira, certificate: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch, verify: Any,
                                                  trusted: bool) -> None:
    """The connection form saves a boolean, hand-written connections a string ("false") or a CA bundle path:
    the hook's ``jira`` client and the trigger's ``httpx`` client reach a self-signed Jira, or refuse it, alike."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = fake_jira._server
    assert server is not None
    server.socket = context.wrap_socket(server.socket, server_side=True)  # before any request: same listening fd
    [(name, value)] = fake_jira.jira_connection("jira_tls").items()
    conn = json.loads(value)
    extra = {**conn["extra"], **({} if verify is None else {"verify": str(cert) if verify == "CA bundle" else verify})}
    monkeypatch.setenv(name, json.dumps({**conn, "host": f"https://127.0.0.1:{fake_jira.port}", "extra": extra}))
    key_ = fake_jira.add_issue(status="Done").key

    ok, message = JiraTicketHook("jira_tls", max_retries=0).test_connection()

    async def events() -> list[dict[str, Any]]:
        return [e.payload async for e in TicketStatusTrigger("jira_tls", [key_], poll_interval=0.1).run()]
    [event] = asyncio.run(events())
    if trusted:
        assert ok, message
        assert event == {"status": "success", "tickets": {key_: "Done"}, "polls": 1}
    else:
        assert not ok and "CERTIFICATE_VERIFY_FAILED" in message
        assert event["status"] == "error" and "CERTIFICATE_VERIFY_FAILED" in event["message"]
