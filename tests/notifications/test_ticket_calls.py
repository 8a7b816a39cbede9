"""Jira requests per run: one batched search for all new incidents, nothing when nothing changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from airflow_opsflow_testing.jira_server import FakeJira

from airflow_opsflow.alerts.jira import JiraTicket
from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore

pytestmark = pytest.mark.usefixtures("jira_conn")
RESULT = {"table": "payments", "status": "fail", "violating_count": 3, "expected": "no NULL values"}


@pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
def test_k_new_incidents_cost_one_search(tmp_path: Path, fake_jira: FakeJira) -> None:
    route = JiraTicket(project="OPS")
    subjects = {fingerprint("d", "t", f"c{i}"): Subject(fingerprint("d", "t", f"c{i}"), "d", "t", f"c{i}")
                for i in range(10)}

    def run(key: str, failing: bool) -> list[str]:
        repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
        mark = fake_jira.mark()
        repo.record([(s, Observation(failing, "error", key, RESULT)) for s in subjects.values()], Policy(),
                    routes_for([route]))
        assert deliver_pending(repo, [route], subjects, {}).failed == []
        return [r.name for r in fake_jira.calls(since=mark)]

    first = run("run1", True)
    assert first.count("search") == 1 and first.count("create") == 10 and first.count("serverInfo") == 1
    assert run("run2", True) == []  # nothing changed: no request at all
    assert run("run3", False).count("transition") == 10
    assert len(fake_jira.issues) == 10 and all(i.status_category == "done" for i in fake_jira.issues)


@pytest.mark.parametrize("fake_jira", ["cloud", "server"], indirect=True)
def test_a_returning_incident_reads_its_ticket_by_key_and_reopens_it(tmp_path: Path, fake_jira: FakeJira) -> None:
    fake_jira.search_delay(600)  # nothing opsflow writes becomes searchable during this test
    route = JiraTicket(project="OPS", unconfirmed_create_wait=0)
    fp = fingerprint("d", "t", "c")
    subjects = {fp: Subject(fp, "d", "t", "c")}

    def run(key: str, failing: bool) -> list[str]:
        repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
        mark = fake_jira.mark()
        repo.record([(subjects[fp], Observation(failing, "error", key, RESULT))], Policy(), routes_for([route]))
        assert deliver_pending(repo, [route], subjects, {}).failed == []
        return [r.name for r in fake_jira.calls(since=mark) if r.name not in ("serverInfo", "field")]

    assert run("run1", True) == ["search", "create"]
    assert run("run2", False) == ["issue", "transitions", "transition"]
    # Back: its ticket read by key (consistent), a search for another open one, then reopened and commented.
    assert run("run3", True) == ["search", "issue", "search", "transitions", "transition", "comment"]
    [ticket] = fake_jira.issues
    assert ticket.status == "To Do" and [t.name for t in ticket.transitions] == ["Done", "Reopen"]
    assert run("run4", False) == ["issue", "transitions", "transition"]  # the same ticket resolves again
    assert len(fake_jira.issues) == 1 and fake_jira.issues[0].status_category == "done"
