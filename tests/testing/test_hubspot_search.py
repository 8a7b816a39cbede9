"""FakeHubSpot CRM search through ``hubspot-api-client``: filters, sorts, paging, index lag and its own rate limit."""

from __future__ import annotations

import json
import time

import pytest
import urllib3
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from hubspot.crm.tickets import ApiException as TicketsApiException

FP = {"name": "fp", "label": "Fingerprint", "type": "string", "fieldType": "text", "groupName": "ticketinformation",
      "hasUniqueValue": True}


def where(*filters: dict, **request: object) -> dict:
    return {"filterGroups": [{"filters": list(filters)}], **request}


def eq(name: str, value: str, op: str = "EQ") -> dict:
    return {"propertyName": name, "operator": op, "value": value}


@pytest.fixture
def tickets(fake_hubspot: FakeHubSpot) -> list[str]:
    """Six tickets: fp-0..fp-5, stage 4 (closed) for even ones, priority only on the first three."""
    fake_hubspot.set_search_rate_limit(100)  # these tests search more than five times a second
    api = fake_hubspot.client().crm
    api.properties.core_api.create("tickets", FP)
    made = api.tickets.batch_api.create({"inputs": [{"properties": {
        "subject": f"Check {i} failed on orders", "hs_pipeline_stage": "4" if i % 2 == 0 else "1", "fp": f"fp-{i}",
        **({"hs_ticket_priority": ("LOW", "HIGH", "URGENT")[i]} if i < 3 else {})}} for i in range(6)]})
    return sorted((r.id for r in made.results), key=int)


def subjects(result: object) -> list[str]:
    return [r.properties["subject"] for r in result.results]  # type: ignore[attr-defined]


def test_filters_sorts_and_properties(fake_hubspot: FakeHubSpot, tickets: list[str]) -> None:
    search = fake_hubspot.client().crm.tickets.search_api.do_search
    found = search(where(eq("fp", "fp-3"), properties=["subject", "fp"]))
    assert found.total == 1 and set(found.results[0].properties) == {
        "subject", "fp", "hs_object_id", "createdate", "hs_lastmodifieddate"}
    assert subjects(search(where(eq("hs_pipeline_stage", "4", "NEQ")))) == [
        "Check 1 failed on orders", "Check 3 failed on orders", "Check 5 failed on orders"]
    assert search(where({"propertyName": "fp", "operator": "IN", "values": ["fp-1", "FP-2", "nope"]})).total == 2
    assert search(where({"propertyName": "hs_ticket_priority", "operator": "HAS_PROPERTY"})).total == 3
    assert search(where({"propertyName": "hs_ticket_priority", "operator": "NOT_HAS_PROPERTY"})).total == 3
    assert search(where(eq("hs_ticket_priority", "LOW", "NEQ"))).total == 5  # absent values match NEQ too
    assert search(where(eq("hs_object_id", tickets[3], "GT"))).total == 2
    assert search(where(eq("hs_object_id", tickets[1], "LTE"))).total == 2
    between = {"propertyName": "hs_object_id", "operator": "BETWEEN", "value": tickets[1], "highValue": tickets[2]}
    assert search(where(between)).total == 2
    newest = max(t.created_at for t in fake_hubspot.objects("tickets"))  # the fake's own clock, not the wall's
    assert search(where(eq("createdate", str(int(newest.timestamp() * 1000) + 60_000), "LT"))).total == 6
    assert search(where(eq("subject", "order*", "CONTAINS_TOKEN"))).total == 6
    either = {"filterGroups": [{"filters": [eq("fp", "fp-0")]}, {"filters": [eq("fp", "fp-5")]}]}
    assert search(either).total == 2  # groups are OR-ed
    both = where(eq("hs_pipeline_stage", "4"), eq("hs_ticket_priority", "URGENT"))
    assert subjects(search(both)) == ["Check 2 failed on orders"]  # filters of a group are AND-ed
    ordered = search({"sorts": [{"propertyName": "hs_ticket_priority", "direction": "DESCENDING"}],
                      "properties": ["subject", "hs_ticket_priority"]})
    assert [r.properties["hs_ticket_priority"] for r in ordered.results] == ["URGENT", "LOW", "HIGH", None, None, None]
    assert search({"query": "check 4"}).total == 1


def test_paging_limit_and_refusals(fake_hubspot: FakeHubSpot, tickets: list[str]) -> None:
    search = fake_hubspot.client().crm.tickets.search_api.do_search
    seen, after = [], None
    while True:
        page = search({"limit": 4, "after": after, "properties": ["fp"],
                       "sorts": [{"propertyName": "fp", "direction": "ASCENDING"}]})
        assert page.total == 6
        seen += [r.properties["fp"] for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == [f"fp-{i}" for i in range(6)] and after == "4"
    for bad in ({"limit": 201}, {"limit": 100, "after": "9950"}, where({"propertyName": "nope", "operator": "EQ",
                                                                        "value": "x"}),
                {"filterGroups": [{"filters": [eq("fp", "x")]} for _ in range(6)]}):
        with pytest.raises(TicketsApiException) as caught:
            search(bad)
        assert caught.value.status == 400 and json.loads(caught.value.body)["category"] == "VALIDATION_ERROR"


def test_search_lags_behind_writes(fake_hubspot: FakeHubSpot) -> None:
    fake_hubspot.search_lag(0.6)
    fake_hubspot.set_search_rate_limit(100)
    api = fake_hubspot.client().crm.tickets
    made = api.basic_api.create({"properties": {"subject": "Fresh", "hs_pipeline_stage": "1"}})
    by_subject = where(eq("subject", "Fresh"), properties=["hs_pipeline_stage"])
    assert api.search_api.do_search(by_subject).total == 0  # not indexed yet...
    assert api.basic_api.get_by_id(made.id).properties["subject"] == "Fresh"  # ...though reads see it
    time.sleep(0.7)
    assert [r.properties["hs_pipeline_stage"] for r in api.search_api.do_search(by_subject).results] == ["1"]
    api.basic_api.update(made.id, {"properties": {"hs_pipeline_stage": "4"}})
    stale = api.search_api.do_search(by_subject)
    assert [r.properties["hs_pipeline_stage"] for r in stale.results] == ["1"]  # the old values, for now
    assert api.search_api.do_search(where(eq("hs_pipeline_stage", "4"))).total == 0
    fake_hubspot.flush_search_index()
    assert api.search_api.do_search(where(eq("hs_pipeline_stage", "4"))).total == 1
    api.basic_api.archive(made.id)
    assert api.search_api.do_search(by_subject).total == 1  # archived, still in the index
    fake_hubspot.flush_search_index()
    assert api.search_api.do_search(by_subject).total == 0


def test_notes_of_a_ticket_by_association_filter(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm
    ticket = api.tickets.basic_api.create({"properties": {"subject": "T", "hs_pipeline_stage": "1"}})
    for body in ("one", "two"):
        api.objects.notes.basic_api.create({
            "properties": {"hs_note_body": body, "hs_timestamp": "2024-05-01T09:00:00Z"},
            "associations": [{"to": {"id": ticket.id},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]}]})
    api.objects.notes.basic_api.create({"properties": {"hs_note_body": "elsewhere"}})
    found = api.objects.notes.search_api.do_search(where(eq("associations.ticket", ticket.id),
                                                         properties=["hs_note_body"]))
    assert [r.properties["hs_note_body"] for r in found.results] == ["one", "two"]


def test_search_rate_limit_is_its_own(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm.tickets
    for _ in range(5):
        api.search_api.do_search({})
    with pytest.raises(TicketsApiException) as caught:
        api.search_api.do_search({})
    body = json.loads(caught.value.body)
    assert caught.value.status == 429 and body["message"] == "You have reached your secondly limit."
    assert (body["policyName"], body["errorType"]) == ("SECONDLY", "RATE_LIMIT")
    assert api.basic_api.get_page().results == []  # other endpoints are not held back
    time.sleep(1.05)
    assert api.search_api.do_search({}).total == 0
    fake_hubspot.reset()
    fake_hubspot.retry_after = True
    retry = urllib3.Retry(total=3, status_forcelist=[429], allowed_methods=None)
    client = fake_hubspot.client(retry=retry).crm.tickets
    started = time.monotonic()
    for _ in range(7):
        client.search_api.do_search({})
    assert time.monotonic() - started >= 0.9  # the sixth search waited out Retry-After
    assert [r.status for r in fake_hubspot.calls("search")].count(429) >= 1
    time.sleep(1.05)
    fake_hubspot.fail_next(1, status=503, endpoint="search")
    with pytest.raises(TicketsApiException) as caught:
        client.search_api.do_search({})
    assert caught.value.status == 503


@pytest.mark.parametrize("fake_hubspot", [{"search_lag": 30.0, "search_rate_limit": 50}], indirect=True)
def test_fixture_takes_constructor_arguments(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm.tickets
    api.basic_api.create({"properties": {"subject": "Slow index", "hs_pipeline_stage": "1"}})
    assert api.search_api.do_search({}).total == 0
    fake_hubspot.flush_search_index()
    assert [r.properties["subject"] for r in api.search_api.do_search({}).results] == ["Slow index"]
