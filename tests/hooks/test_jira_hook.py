"""JiraTicketHook against the fake Jira in both deployments, and the errors users see."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from airflow_opsflow.hooks.jira import JiraTicketHook
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.notifications.dispatch import deliver_pending
from airflow_opsflow.notifications.jira import JiraTicket
from airflow_opsflow.state.incidents import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.testing.jira_server import FakeJira

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
