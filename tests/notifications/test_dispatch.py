"""The outbox under concurrency: two senders of the same pending alert post it once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from airflow_opsflow_testing.slack_server import FakeSlack

from airflow_opsflow.alerts.slack import SlackAlert
from airflow_opsflow.flows.deliver_alerts import DeliveryReport, deliver_pending
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.state.store import StateStore

pytestmark = pytest.mark.usefixtures("slack_conn")
FP = fingerprint("d", "t", "c")
SUBJECT = Subject(FP, "d", "t", "c")
RESULT = {"name": "c", "table": "payments", "status": "fail", "violating_count": 3, "expected": "no NULL values"}


def test_two_concurrent_senders_post_once(tmp_path: Path, fake_slack: FakeSlack) -> None:
    path = tmp_path / "state.db"
    route = SlackAlert(conn_id="slack_api_default", channel="#alerts")
    IncidentRepo(StateStore(lambda: sqlite3.connect(path, timeout=30), "sqlite")).record(
        [(SUBJECT, Observation(True, "error", "run1", RESULT))], Policy(), [route.name])
    reports: list[DeliveryReport] = []
    start = threading.Barrier(2)

    def sender() -> None:
        repo = IncidentRepo(StateStore(lambda: sqlite3.connect(path, timeout=30), "sqlite"))
        start.wait()
        reports.append(deliver_pending(repo, [route], {FP: SUBJECT}, {}))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_slack.messages("#alerts")) == 1
    assert sorted(len(r.sent) for r in reports) == [0, 1] and all(not r.failed for r in reports)
