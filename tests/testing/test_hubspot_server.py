"""FakeHubSpot through the official ``hubspot-api-client``: upserts, partial failures, reads, limits and faults.

The client (12.x) sends plain urllib3 requests with urllib3's default ``Retry(3)``: GETs answered 413/429/503
*with* ``Retry-After`` are re-sent after that wait, POSTs never, unless the client gets ``retry=urllib3.Retry(...)``
with ``allowed_methods=None``. It deserialises a 207 into the ``...WithErrors`` model. Without ``Retry-After``
(HubSpot's burst 429s carry none) urllib3 backs off by ``backoff_factor``.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
import urllib3
from airflow_opsflow_testing.hubspot_server import DEFAULT_TOKEN, FakeHubSpot
from hubspot.crm.objects import ApiException


def upsert(fake: FakeHubSpot, object_type: str, inputs: list[dict], **kwargs: object) -> object:
    return fake.client(**kwargs).crm.objects.batch_api.upsert(object_type, {"inputs": inputs})


def error_body(caught: pytest.ExceptionInfo[ApiException]) -> dict:
    return json.loads(caught.value.body)


def test_upsert_by_email_creates_then_updates(fake_hubspot: FakeHubSpot) -> None:
    first = fake_hubspot.client().crm.objects.batch_api.upsert("contacts", {"inputs": [
        {"idProperty": "email", "id": "Ann@Example.com", "properties": {"firstname": "Ann"}},
        {"idProperty": "email", "id": "bob@example.com", "properties": {"firstname": "Bob"}}]})
    assert first.status == "COMPLETE" and [r.new for r in first.results] == [True, True]
    again = upsert(fake_hubspot, "contacts", [
        {"idProperty": "email", "id": "ann@EXAMPLE.com", "properties": {"lastname": "Lee"}}])
    assert [(r.id, r.new) for r in again.results] == [(first.results[0].id, False)]
    ann = fake_hubspot.object_by("contacts", "email", "ANN@example.com")
    assert ann is not None and ann.properties == {"email": "ann@example.com", "firstname": "Ann", "lastname": "Lee"}
    assert fake_hubspot.create_counts("contacts", "email") == {"ann@example.com": 1, "bob@example.com": 1}
    assert [w.op for w in fake_hubspot.writes("contacts")] == ["create", "create", "update"]


def test_partial_upsert_answers_207_with_per_input_errors(fake_hubspot: FakeHubSpot) -> None:
    fake_hubspot.define_property("contacts", "external_id", "string", unique=True)
    fake_hubspot.define_property("contacts", "score", "number")
    result = upsert(fake_hubspot, "contacts", [
        {"idProperty": "external_id", "id": "C-1", "properties": {"email": "a@example.com", "score": "7"}},
        {"idProperty": "external_id", "id": "C-2", "properties": {"favourite_food": "pizza"}},
        {"idProperty": "external_id", "id": "C-3", "properties": {"score": "lots"}, "objectWriteTraceId": "t3"}])
    assert type(result).__name__ == "BatchResponseSimplePublicUpsertObjectWithErrors"
    assert fake_hubspot.calls("batch/upsert")[-1].status == 207
    assert [r.properties["external_id"] for r in result.results] == ["C-1"] and result.num_errors == 2
    missing, not_number = result.errors
    assert (missing.status, missing.category, missing.context) == ("error", "VALIDATION_ERROR", {"ids": ["C-2"]})
    assert missing.message.startswith("Property values were not valid: [")
    detail = json.loads(missing.message.removeprefix("Property values were not valid: "))
    assert detail[0]["error"] == "PROPERTY_DOESNT_EXIST" and detail[0]["name"] == "favourite_food"
    assert not_number.context == {"ids": ["C-3"], "objectWriteTraceId": ["t3"]}
    assert "INVALID_FLOAT" in not_number.message
    assert [o.properties["external_id"] for o in fake_hubspot.objects("contacts")] == ["C-1"]


def test_upsert_by_email_fails_whole_batch_on_one_bad_input(fake_hubspot: FakeHubSpot) -> None:
    with pytest.raises(ApiException) as caught:
        upsert(fake_hubspot, "contacts", [
            {"idProperty": "email", "id": "ok@example.com", "properties": {}},
            {"idProperty": "email", "id": "not-an-email", "properties": {}}])
    body = error_body(caught)
    assert caught.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["errors"][0]["code"] == "INVALID_EMAIL" and body["context"] == {"ids": ["not-an-email"]}
    assert fake_hubspot.objects("contacts") == []


def test_batch_create_is_atomic_unless_every_input_is_traced(fake_hubspot: FakeHubSpot) -> None:
    batch = fake_hubspot.client().crm.objects.batch_api
    good = {"properties": {"dealname": "Renewal", "dealstage": "closedwon", "amount": 1200}}
    bad = {"properties": {"dealname": "Typo", "dealstage": "won"}}
    with pytest.raises(ApiException) as caught:
        batch.create("deals", {"inputs": [good, bad]})
    assert caught.value.status == 400 and "was not one of the allowed options" in error_body(caught)["message"]
    assert fake_hubspot.objects("deals") == []
    traced = [{**good, "objectWriteTraceId": "a"}, {**bad, "objectWriteTraceId": "b"}]
    result = batch.create("deals", {"inputs": traced})
    assert [r.properties["amount"] for r in result.results] == ["1200"]
    assert [(e.category, e.context) for e in result.errors] == [("VALIDATION_ERROR", {"objectWriteTraceId": ["b"]})]


def test_existing_contact_email_conflicts_on_create(fake_hubspot: FakeHubSpot) -> None:
    contact = fake_hubspot.client().crm.objects.basic_api.create("contacts", {"properties": {"email": "x@example.com"}})
    with pytest.raises(ApiException) as caught:
        fake_hubspot.client().crm.objects.batch_api.create("contacts", {"inputs": [
            {"properties": {"email": "new@example.com"}}, {"properties": {"email": "X@example.com"}}]})
    assert caught.value.status == 409
    assert error_body(caught)["message"] == f"Contact already exists. Existing ID: {contact.id}"
    assert len(fake_hubspot.objects("contacts")) == 1


def test_duplicate_ids_and_oversized_batches_are_refused(fake_hubspot: FakeHubSpot) -> None:
    with pytest.raises(ApiException) as caught:
        upsert(fake_hubspot, "contacts", [{"idProperty": "email", "id": "a@example.com", "properties": {}},
                                          {"idProperty": "email", "id": "A@example.com", "properties": {}}])
    assert error_body(caught)["message"] == "Duplicate IDs found in batch input: [a@example.com]. IDs must be unique"
    with pytest.raises(ApiException) as caught:
        upsert(fake_hubspot, "contacts", [{"idProperty": "email", "id": f"c{i}@example.com", "properties": {}}
                                          for i in range(101)])
    assert caught.value.status == 400 and "maximum number of inputs" in error_body(caught)["message"]
    with pytest.raises(ApiException) as caught:  # a company domain is not a unique property on HubSpot either
        upsert(fake_hubspot, "companies", [{"idProperty": "domain", "id": "example.com", "properties": {}}])
    assert caught.value.status == 400 and not fake_hubspot.writes()


def test_read_by_id_property_archive_and_list_paging(fake_hubspot: FakeHubSpot) -> None:
    fake_hubspot.define_object_type("tickets_ext")
    fake_hubspot.define_property("tickets_ext", "ref", "string", unique=True)
    upsert(fake_hubspot, "tickets_ext", [{"idProperty": "ref", "id": f"R{i}", "properties": {}} for i in range(5)])
    api = fake_hubspot.client().crm.objects
    one = api.basic_api.get_by_id("tickets_ext", "R3", id_property="ref", properties=["ref"])
    assert one.properties["ref"] == "R3"
    read = api.batch_api.read("tickets_ext", {"idProperty": "ref", "properties": ["ref"],
                                              "inputs": [{"id": "R1"}, {"id": "R9"}]})
    assert [r.properties["ref"] for r in read.results] == ["R1"]
    assert read.errors[0].category == "OBJECT_NOT_FOUND" and read.errors[0].context == {"ids": ["R9"]}
    assert "Could not get some TICKETS_EXT objects" in read.errors[0].message
    api.batch_api.archive("tickets_ext", {"inputs": [{"id": one.id}]})
    assert fake_hubspot.calls("batch/archive")[-1].status == 204
    assert [o.id for o in fake_hubspot.objects("tickets_ext", archived=True)] == [one.id]
    seen, after = [], None
    while True:
        page = api.basic_api.get_page("tickets_ext", limit=2, after=after, properties=["ref"])
        seen += [r.properties["ref"] for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == ["R0", "R1", "R2", "R4"]
    assert [r.query.get("after") for r in fake_hubspot.calls("list")] == [None, ["103"]]  # 104 (R3) archived


def test_patch_and_delete_single_records(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm.objects.basic_api
    deal = api.create("deals", {"properties": {"dealname": "Q3", "closedate": "2024-09-30T00:00:00Z"}})
    updated = api.update("deals", deal.id, {"properties": {"amount": "99.5", "dealname": ""}})
    assert updated.properties["amount"] == "99.5"
    stored = fake_hubspot.objects("deals")[0].properties
    assert stored == {"closedate": "2024-09-30T00:00:00.000Z", "amount": "99.5"}  # "" cleared the name
    with pytest.raises(ApiException) as caught:
        api.update("deals", deal.id, {"properties": {"hs_object_id": "1"}})
    assert error_body(caught)["errors"][0]["code"] == "READ_ONLY_VALUE"
    api.archive("deals", deal.id)
    with pytest.raises(ApiException) as caught:
        api.get_by_id("deals", deal.id)
    assert caught.value.status == 404 and error_body(caught)["category"] == "OBJECT_NOT_FOUND"


def test_wrong_token_and_malformed_json(fake_hubspot: FakeHubSpot) -> None:
    url = f"{fake_hubspot.url}/crm/v3/objects/contacts/batch/upsert"
    refused = requests.post(url, json={"inputs": []}, headers={"Authorization": "Bearer pat-na1-wrong"}, timeout=5)
    body = refused.json()
    assert refused.status_code == 401 and body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.") and body["correlationId"]
    malformed = requests.post(url, data=b'{"inputs": [', timeout=5,
                              headers={"Authorization": f"Bearer {DEFAULT_TOKEN}", "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["message"].startswith("Invalid input JSON on line 1")


def test_rate_limit_429_surfaces_then_clears(fake_hubspot: FakeHubSpot) -> None:
    fake_hubspot.set_rate_limit(10, 1.0)
    api = fake_hubspot.client().crm.objects.basic_api
    for _ in range(10):
        api.get_page("contacts")
    with pytest.raises(ApiException) as caught:
        api.get_page("contacts")
    assert caught.value.status == 429 and "Retry-After" not in caught.value.headers
    assert error_body(caught)["message"] == "You have reached your ten_secondly_rolling limit."
    assert (error_body(caught)["policyName"], error_body(caught)["errorType"]) == ("TEN_SECONDLY_ROLLING", "RATE_LIMIT")
    assert caught.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert caught.value.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
    time.sleep(1.05)
    _, status, headers = api.get_page_with_http_info("contacts")
    assert status == 200 and headers["X-HubSpot-RateLimit-Max"] == "10"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "9"


def test_client_retry_rides_out_a_429_storm(fake_hubspot: FakeHubSpot) -> None:
    fake_hubspot.set_rate_limit(5, 1.0)
    fake_hubspot.retry_after = True
    retry = urllib3.Retry(total=6, status_forcelist=[429], allowed_methods=None, backoff_factor=0.1)
    started = time.monotonic()
    for i in range(8):
        upsert(fake_hubspot, "contacts", [{"idProperty": "email", "id": f"u{i}@example.com", "properties": {}}],
               retry=retry)
    assert time.monotonic() - started >= 0.9  # the 6th request had to wait out the window
    statuses = [r.status for r in fake_hubspot.calls("batch/upsert")]
    assert statuses.count(200) == 8 and 429 in statuses
    assert len(fake_hubspot.creates("contacts")) == 8


def test_lost_answer_makes_create_duplicate_but_upsert_idempotent(fake_hubspot: FakeHubSpot) -> None:
    batch = fake_hubspot.client().crm.objects.batch_api
    deal = {"inputs": [{"properties": {"dealname": "Expansion"}}]}
    fake_hubspot.drop_response_next(endpoint="batch/create")
    with pytest.raises(urllib3.exceptions.HTTPError):
        batch.create("deals", deal)
    batch.create("deals", deal)  # the caller cannot know the first one landed
    assert fake_hubspot.create_counts("deals", "dealname") == {"Expansion": 2}
    fake_hubspot.drop_response_next(endpoint="batch/upsert")
    contact = [{"idProperty": "email", "id": "once@example.com", "properties": {"firstname": "O"}}]
    with pytest.raises(urllib3.exceptions.HTTPError):
        upsert(fake_hubspot, "contacts", contact)
    assert upsert(fake_hubspot, "contacts", contact).results[0].new is False
    assert [r.status for r in fake_hubspot.calls("batch/upsert")] == [None, 200]
    assert fake_hubspot.create_counts("contacts", "email") == {"once@example.com": 1}


def test_injected_failures_and_latency(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm.objects.basic_api
    fake_hubspot.fail_next(1, status=503)
    with pytest.raises(ApiException) as caught:
        api.get_page("contacts")
    assert caught.value.status == 503 and "Retry-After" not in caught.value.headers
    fake_hubspot.fail_next(2, status=503, retry_after=1)  # urllib3's default Retry honours it on a GET
    started = time.monotonic()
    assert api.get_page("contacts").results == []
    assert time.monotonic() - started >= 2 and [r.status for r in fake_hubspot.calls("list")] == [503, 503, 503, 200]
    fake_hubspot.fail_next(1, status=429, retry_after=1, endpoint="batch/upsert")  # but never re-sends a POST
    with pytest.raises(ApiException) as caught:
        upsert(fake_hubspot, "contacts", [{"idProperty": "email", "id": "r@example.com", "properties": {}}])
    assert caught.value.status == 429 and error_body(caught)["policyName"] == "TEN_SECONDLY_ROLLING"
    fake_hubspot.latency(0.5)
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.get_page("contacts", _request_timeout=0.1)
    fake_hubspot.latency(0)
    fake_hubspot.reset()
    assert fake_hubspot.requests == [] and fake_hubspot.writes() == []


def test_hubspot_conn_describes_the_fake(fake_hubspot: FakeHubSpot, hubspot_conn: str) -> None:
    import os

    conn = json.loads(os.environ[f"AIRFLOW_CONN_{hubspot_conn.upper()}"])
    assert hubspot_conn == "hubspot_default"
    assert conn == {"conn_type": "opsflow_hubspot", "host": fake_hubspot.url, "password": DEFAULT_TOKEN}
    assert all(not r.headers.get("Authorization") for r in fake_hubspot.requests)
