"""Airflow's ``SalesforceHook`` (apache-airflow-providers-salesforce) against FakeSalesforce, wired by connection only.

The hook builds ``simple_salesforce.Salesforce`` from the connection: login, password and the extras
``security_token``/``domain`` (password login), ``consumer_key``/``consumer_secret``/``domain`` (client
credentials) or ``instance_url`` with the hook's ``session_id`` argument. Every URL it uses is ``https://``, so the
fake serves TLS and the fixtures point ``REQUESTS_CA_BUNDLE`` at a bundle that trusts it.
"""

from __future__ import annotations

import json
import os

import pytest
from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from airflow_opsflow_testing.salesforce_server import FakeSalesforce


def test_connection_from_the_fixture(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> None:
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{salesforce_conn.upper()}"])
    assert conn["conn_type"] == "salesforce" and conn["extra"]["domain"] == fake_salesforce.domain
    assert os.environ["REQUESTS_CA_BUNDLE"] == fake_salesforce.ca_bundle
    hook = SalesforceHook()  # salesforce_default
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert [r.name for r in fake_salesforce.requests] == ["login", "describe"]


def test_queries_and_describe(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> None:
    for i in range(3):
        fake_salesforce.add_record("Case", Subject=f"c{i}", Opsflow_Fingerprint__c=f"fp-{i}")
    fake_salesforce.set_query_batch_size(2)
    hook = SalesforceHook(salesforce_conn_id=salesforce_conn)
    result = hook.make_query("SELECT Subject, Opsflow_Fingerprint__c FROM Case ORDER BY Subject DESC")
    assert (result["totalSize"], result["done"]) == (3, True)  # query_all followed nextRecordsUrl
    assert [r["Subject"] for r in result["records"]] == ["c2", "c1", "c0"]
    assert [r.name for r in fake_salesforce.calls(path_prefix="/services/data")] == ["query", "query_more"]
    fields = hook.get_available_fields("Case")
    assert {"Id", "Subject", "Status", "IsClosed", "Opsflow_Fingerprint__c"} <= set(fields)
    status = next(f for f in hook.describe_object("Case")["fields"] if f["name"] == "Status")
    assert status["restrictedPicklist"] is True and "Closed" in [p["value"] for p in status["picklistValues"]]
    everything = hook.get_object_from_salesforce("Case", ["Id", "Status"])
    assert [r["Status"] for r in everything["records"]] == ["New", "New", "New"]


def test_writes_through_the_hooks_client(fake_salesforce: FakeSalesforce, salesforce_conn: str) -> None:
    sf = SalesforceHook(salesforce_conn).get_conn()
    assert sf.Case.upsert("Opsflow_Fingerprint__c/fp-9", {"Subject": "orders: stale"}) == 201
    fake_salesforce.expire_sessions()  # the hook's password login renews the session by itself
    assert sf.Case.upsert("Opsflow_Fingerprint__c/fp-9", {"Status": "Closed"}) == 200
    assert fake_salesforce.record_by("Case", "Opsflow_Fingerprint__c", "fp-9")["IsClosed"] is True
    assert [r.name for r in fake_salesforce.requests] == ["login", "upsert", "upsert", "login", "upsert"]


@pytest.mark.parametrize("auth", ["client_credentials", "session"])
def test_other_connection_kinds(fake_salesforce: FakeSalesforce, monkeypatch: pytest.MonkeyPatch, auth: str) -> None:
    for name, value in fake_salesforce.salesforce_connection("sf_other", auth=auth).items():
        monkeypatch.setenv(name, value)
    session_id = fake_salesforce.issue_session() if auth == "session" else None
    hook = SalesforceHook(salesforce_conn_id="sf_other", session_id=session_id)
    fake_salesforce.add_record("Account", Name="Acme")
    assert hook.make_query("SELECT Name FROM Account")["records"][0]["Name"] == "Acme"
    assert hook.get_conn().auth_type == ("client-credentials" if auth == "client_credentials" else "direct")
