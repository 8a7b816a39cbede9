"""Wrong credentials on each ticket system: the delivery fails with an error naming the system and the
connection, stays pending, and no ticket is created."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.zendesk_server import FakeZendesk

from airflow_opsflow.alerts.hubspot import HubSpotTicket
from airflow_opsflow.alerts.salesforce import SalesforceCase
from airflow_opsflow.alerts.zendesk import ZendeskTicket
from airflow_opsflow.flows.deliver_alerts import deliver_pending, routes_for
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.incidents.tickets import TicketRoute
from airflow_opsflow.state.store import StateStore


def _deliver(tmp_path: Path, route: TicketRoute) -> tuple[list[tuple[str, str]], IncidentRepo]:
    fp = fingerprint("d", "t", "c")
    subject = Subject(fp, "d", "t", "c")
    repo = IncidentRepo(StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite"))
    repo.record([(subject, Observation(True, "error", "run1", {"status": "fail"}))], Policy(), routes_for([route]))
    return deliver_pending(repo, [route], {fp: subject}, {}).failed, repo


def _break(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    conn = json.loads(os.environ[var])
    for name, value in fields.items():
        if name == "extra":
            extra = conn.get("extra") or {}
            conn["extra"] = {**(json.loads(extra) if isinstance(extra, str) else extra), **value}  # type: ignore[dict-item]
        else:
            conn[name] = value
    monkeypatch.setenv(var, json.dumps(conn))


def test_hubspot(tmp_path: Path, fake_hubspot: FakeHubSpot, hubspot_conn: str,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hubspot.define_property("tickets", "opsflow_fingerprint")
    _break(monkeypatch, hubspot_conn, password="pat-wrong")
    [(_, error)], repo = _deliver(tmp_path, HubSpotTicket())
    assert f"HubSpot ({hubspot_conn})" in error and "credentials were refused" in error and "pat-wrong" not in error
    assert fake_hubspot.objects("tickets") == [] and len(repo.pending([fingerprint("d", "t", "c")])) == 1


def test_salesforce(tmp_path: Path, fake_salesforce: FakeSalesforce, salesforce_conn: str,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    _break(monkeypatch, salesforce_conn, password="wrong")
    [(_, error)], repo = _deliver(tmp_path, SalesforceCase())
    assert f"Salesforce ({salesforce_conn})" in error and "Invalid username, password" in error
    assert fake_salesforce.records("Case") == [] and len(repo.pending([fingerprint("d", "t", "c")])) == 1


def test_zendesk(tmp_path: Path, fake_zendesk: FakeZendesk, zendesk_conn: str,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    _break(monkeypatch, zendesk_conn, password="wrong", extra={"token": "wrong"})
    [(_, error)], repo = _deliver(tmp_path, ZendeskTicket())
    assert f"Zendesk ({zendesk_conn}) failed listing tickets" in error and "authenticate" in error
    assert fake_zendesk.tickets == [] and len(repo.pending([fingerprint("d", "t", "c")])) == 1
