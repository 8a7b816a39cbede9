"""Faults on FakeSalesforce through simple-salesforce: injected errors, lost answers, and the request log.

simple-salesforce sends each call once (its requests session mounts no retrying adapter): an injected 5xx
raises ``SalesforceGeneralError`` and a dropped answer ``requests.ConnectionError``, after the write happened.
Replaying an upsert by external id is then harmless; replaying a plain create makes a duplicate.
"""

from __future__ import annotations

import pytest
import requests
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceRefusedRequest

FP = "Opsflow_Fingerprint__c"


def test_fail_next_answers_unprocessed(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    fake_salesforce.fail_next(503, target="upsert")
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.Case.upsert(f"{FP}/fp-1", {"Subject": "x"})
    assert caught.value.status == 503
    assert caught.value.content == [{"message": "Server is temporarily unavailable. Try again later.",
                                     "errorCode": "SERVER_UNAVAILABLE"}]
    assert fake_salesforce.records("Case") == []
    fake_salesforce.fail_next(403, target="/services/data/v59.0/query", times=2)
    for _ in range(2):
        with pytest.raises(SalesforceRefusedRequest):
            sf.query("SELECT Id FROM Case")
    assert sf.query("SELECT Id FROM Case")["totalSize"] == 0
    fake_salesforce.fail_next(500, {"custom": "body"}, headers={"Retry-After": "3"})  # the next request, any kind
    with pytest.raises(SalesforceGeneralError) as custom:
        sf.Case.create({"Subject": "y"})
    assert (custom.value.status, custom.value.content) == (500, {"custom": "body"})
    with pytest.raises(ValueError, match="unknown operation"):
        fake_salesforce.fail_next(503, target="upsrt")


def test_injected_401_makes_a_password_client_log_in_again(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    fake_salesforce.fail_next(401, target="create")
    since = fake_salesforce.mark()
    assert sf.Case.create({"Subject": "x"})["success"] is True
    assert [(r.name, r.status, r.error_code) for r in fake_salesforce.calls(since=since)] == [
        ("create", 401, "INVALID_SESSION_ID"), ("login", 200, None), ("create", 201, None)]


def test_lost_answers_upsert_replays_cleanly_create_duplicates(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    fake_salesforce.drop_response_next("upsert")
    with pytest.raises(requests.ConnectionError):
        sf.Case.upsert(f"{FP}/fp-1", {"Subject": "x"})
    assert sf.Case.upsert(f"{FP}/fp-1", {"Subject": "x"}) == 200  # the replay finds the record: an update
    assert len(fake_salesforce.creates("Case")) == 1
    fake_salesforce.drop_response_next("create")
    with pytest.raises(requests.ConnectionError):
        sf.Case.create({"Subject": "plain"})
    sf.Case.create({"Subject": "plain"})
    assert [c.values["Subject"] for c in fake_salesforce.creates("Case")] == ["x", "plain", "plain"]
    dropped = fake_salesforce.calls("create")[0]
    assert dropped.status is None and dropped.body == {"Subject": "plain"}


def test_dropped_collection_answer_and_the_request_log(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    fake_salesforce.drop_response_next("collection_upsert")
    body = {"allOrNone": True, "records": [{"attributes": {"type": "Case"}, FP: f"fp-{i}"} for i in range(3)]}
    since = fake_salesforce.mark()
    with pytest.raises(requests.ConnectionError):
        sf.restful(f"composite/sobjects/Case/{FP}", method="PATCH", json=body)
    replay = sf.restful(f"composite/sobjects/Case/{FP}", method="PATCH", json=body)
    assert [r["created"] for r in replay] == [False, False, False]
    calls = fake_salesforce.calls(since=since)
    assert [(c.name, c.method, c.status) for c in calls] == [("collection_upsert", "PATCH", None),
                                                             ("collection_upsert", "PATCH", 200)]
    assert all(c.is_write for c in calls) and "Authorization" not in calls[0].headers
    assert calls[1].headers["Content-Type"] == "application/json"
    fake_salesforce.reset()
    assert fake_salesforce.requests == [] and fake_salesforce.records("Case") == []
    assert fake_salesforce.api_usage == (0, 15_000)


def test_latency_and_plain_http_is_refused(fake_salesforce: FakeSalesforce) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{fake_salesforce.port}/services/data/v59.0/limits", timeout=5)
    sf = fake_salesforce.client()
    fake_salesforce.latency(0.3)
    with pytest.raises(requests.Timeout):
        sf.query("SELECT Id FROM Case", timeout=0.1)
