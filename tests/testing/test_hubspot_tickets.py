"""FakeHubSpot tickets through ``hubspot-api-client``: pipelines and stages, custom properties, single-record calls."""

from __future__ import annotations

import json

import pytest
import urllib3
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from hubspot.crm.pipelines import ApiException as PipelinesApiException
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.tickets import ApiException as TicketsApiException

FINGERPRINT = {"name": "opsflow_fingerprint", "label": "Opsflow fingerprint", "type": "string", "fieldType": "text",
               "groupName": "ticketinformation", "hasUniqueValue": True}


def ticket(subject: str, stage: str = "1", **extra: str) -> dict:
    return {"properties": {"subject": subject, "hs_pipeline_stage": stage, **extra}}


def test_default_support_pipeline_and_ticket_lifecycle(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm
    pipelines = api.pipelines.pipelines_api.get_all("tickets").results
    assert [(p.id, p.label) for p in pipelines] == [("0", "Support Pipeline")]
    stages = api.pipelines.pipelines_api.get_by_id("tickets", "0").stages
    assert [(s.id, s.label, s.metadata["ticketState"]) for s in stages] == [
        ("1", "New", "OPEN"), ("2", "Waiting on contact", "OPEN"), ("3", "Waiting on us", "OPEN"),
        ("4", "Closed", "CLOSED")]
    created = api.tickets.basic_api.create(ticket("Disk full on db-1", content="92% used", hs_ticket_priority="HIGH"))
    assert created.properties["hs_pipeline"] == "0"  # the default pipeline when none is given
    read = api.tickets.basic_api.get_by_id(created.id)
    assert (read.properties["subject"], read.properties["hs_pipeline_stage"]) == ("Disk full on db-1", "1")
    assert read.properties["hs_ticket_priority"] == "HIGH" and "closed_date" not in read.properties
    closed = api.tickets.basic_api.update(created.id, {"properties": {"hs_pipeline_stage": "4"}})
    assert closed.properties["closed_date"]  # entering a CLOSED stage stamps the close date
    reopened = api.tickets.basic_api.update(created.id, {"properties": {"hs_pipeline_stage": "3"}})
    assert reopened.properties["closed_date"] is None
    assert "closed_date" not in fake_hubspot.objects("tickets")[0].properties
    api.tickets.basic_api.archive(created.id)
    with pytest.raises(TicketsApiException) as caught:
        api.tickets.basic_api.get_by_id(created.id)
    assert caught.value.status == 404


def test_bad_stage_fails_with_validation_error_shape(fake_hubspot: FakeHubSpot) -> None:
    escalations = fake_hubspot.define_pipeline("77", "Escalations",
                                               [("701", "Triage", "OPEN"), (None, "Done", "CLOSED")])
    api = fake_hubspot.client().crm.tickets.basic_api
    with pytest.raises(TicketsApiException) as caught:
        api.create(ticket("Wrong stage", "701"))  # a stage of another pipeline
    body = json.loads(caught.value.body)
    assert caught.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: [")
    detail = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert (detail[0]["name"], detail[0]["error"]) == ("hs_pipeline_stage", "INVALID_OPTION")
    assert "[1, 2, 3, 4]" in detail[0]["message"]
    assert body["errors"][0]["context"] == {"propertyName": ["hs_pipeline_stage"]}
    with pytest.raises(TicketsApiException) as caught:
        api.create(ticket("Unknown stage", "999"))
    assert json.loads(caught.value.body)["errors"][0]["code"] == "INVALID_OPTION"
    with pytest.raises(TicketsApiException) as caught:
        api.create({"properties": {"subject": "No stage"}})
    assert caught.value.status == 400 and "hs_pipeline_stage" in json.loads(caught.value.body)["message"]
    ok = api.create(ticket("Escalated", "701", hs_pipeline=escalations))
    with pytest.raises(TicketsApiException):
        api.update(ok.id, {"properties": {"hs_pipeline_stage": "4"}})  # still in pipeline 77
    assert [o.properties["subject"] for o in fake_hubspot.objects("tickets")] == ["Escalated"]
    pipelines = fake_hubspot.client().crm.pipelines.pipelines_api
    assert [p.label for p in pipelines.get_all("tickets").results] == ["Support Pipeline", "Escalations"]
    with pytest.raises(PipelinesApiException) as caught_pipeline:
        pipelines.get_by_id("tickets", "404")
    assert caught_pipeline.value.status == 404


def test_pipeline_created_through_the_api(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm
    created = api.pipelines.pipelines_api.create("tickets", {"label": "Ops alerts", "displayOrder": 3, "stages": [
        {"label": "Open", "displayOrder": 0, "metadata": {"ticketState": "OPEN"}},
        {"label": "Resolved", "displayOrder": 1, "metadata": {"ticketState": "CLOSED"}}]})
    open_stage, resolved = created.stages
    result = api.tickets.basic_api.create(ticket("Job failed", resolved.id, hs_pipeline=created.id))
    assert result.properties["closed_date"] and open_stage.metadata == {"ticketState": "OPEN"}
    options = api.properties.core_api.get_by_name("tickets", "hs_pipeline_stage").options
    assert {(o.value, o.label) for o in options} >= {(open_stage.id, "Open"), ("4", "Closed")}


def test_unique_custom_property_serves_as_id_property(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm
    made = api.properties.core_api.create("tickets", FINGERPRINT)
    assert made.has_unique_value and not made.hubspot_defined and made.name == "opsflow_fingerprint"
    assert api.properties.core_api.get_by_name("tickets", "opsflow_fingerprint").has_unique_value
    with pytest.raises(PropertiesApiException) as caught:
        api.properties.core_api.create("tickets", FINGERPRINT)
    assert caught.value.status == 409 and json.loads(caught.value.body)["category"] == "OBJECT_ALREADY_EXISTS"
    with pytest.raises(PropertiesApiException) as caught:
        api.properties.core_api.get_by_name("tickets", "nope")
    assert caught.value.status == 404
    first = api.tickets.basic_api.create(ticket("Row count dropped", opsflow_fingerprint="fp-1"))
    by_fp = api.tickets.basic_api.get_by_id("fp-1", id_property="opsflow_fingerprint",
                                            properties=["subject", "opsflow_fingerprint"])
    assert by_fp.id == first.id and by_fp.properties["subject"] == "Row count dropped"
    with pytest.raises(TicketsApiException) as caught_dup:
        api.tickets.basic_api.create(ticket("Again", opsflow_fingerprint="fp-1"))
    assert caught_dup.value.status == 409
    api.tickets.basic_api.update("fp-1", {"properties": {"hs_ticket_priority": "URGENT"}},
                                 id_property="opsflow_fingerprint")
    upserted = api.tickets.batch_api.upsert({"inputs": [
        {"idProperty": "opsflow_fingerprint", "id": "fp-1", "properties": {"content": "still low"}},
        {"idProperty": "opsflow_fingerprint", "id": "fp-2",
         "properties": {"subject": "Freshness", "hs_pipeline_stage": "1"}}]})
    assert sorted((r.id, r.new) for r in upserted.results)[0] == (first.id, False)
    assert [r.new for r in upserted.results if r.id != first.id] == [True]
    assert fake_hubspot.create_counts("tickets", "opsflow_fingerprint") == {"fp-1": 1, "fp-2": 1}
    stored = fake_hubspot.object_by("tickets", "opsflow_fingerprint", "fp-1")
    assert stored is not None and stored.properties["hs_ticket_priority"] == "URGENT"


def test_list_tickets_as_a_source_with_paging(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm.tickets
    api.batch_api.create({"inputs": [ticket(f"T{i}", "2" if i % 2 else "1") for i in range(5)]})
    seen, after = [], None
    while True:
        page = api.basic_api.get_page(limit=2, after=after, properties=["subject", "hs_pipeline_stage"])
        seen += [(r.properties["subject"], r.properties["hs_pipeline_stage"]) for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert seen == [("T0", "1"), ("T1", "2"), ("T2", "1"), ("T3", "2"), ("T4", "1")]
    assert len(fake_hubspot.calls("list", "tickets")) == 3


def test_faults_reach_the_new_endpoints(fake_hubspot: FakeHubSpot) -> None:
    api = fake_hubspot.client().crm
    fake_hubspot.fail_next(1, status=503, endpoint="pipelines/get")
    with pytest.raises(PipelinesApiException) as caught:
        api.pipelines.pipelines_api.get_by_id("tickets", "0")
    assert caught.value.status == 503
    fake_hubspot.drop_response_next(endpoint="create")
    with pytest.raises(urllib3.exceptions.HTTPError):
        api.tickets.basic_api.create(ticket("Lost answer"))
    assert [o.properties["subject"] for o in fake_hubspot.objects("tickets")] == ["Lost answer"]  # it landed
    fake_hubspot.fail_next(1, status=429, endpoint="properties/create")
    with pytest.raises(PropertiesApiException) as caught_props:
        api.properties.core_api.create("tickets", FINGERPRINT)
    assert caught_props.value.status == 429
    assert [r.status for r in fake_hubspot.calls("properties/create")] == [429]
