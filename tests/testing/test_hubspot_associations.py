"""FakeHubSpot associations through ``hubspot-api-client``: notes created on tickets, v4 default/labeled/batch."""

from __future__ import annotations

import json

import pytest
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from hubspot.crm.associations.v4 import ApiException as AssociationsApiException
from hubspot.crm.objects.notes import ApiException as NotesApiException


def note_on(ticket_id: str, body: str) -> dict:
    return {"properties": {"hs_note_body": body, "hs_timestamp": "2024-05-01T12:00:00Z"},
            "associations": [{"to": {"id": ticket_id},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]}]}


@pytest.fixture
def ticket_id(fake_hubspot: FakeHubSpot) -> str:
    return fake_hubspot.client().crm.tickets.basic_api.create(
        {"properties": {"subject": "Orders stale", "hs_pipeline_stage": "1"}}).id


def test_notes_created_with_associations_are_listed_per_ticket(fake_hubspot: FakeHubSpot, ticket_id: str) -> None:
    api = fake_hubspot.client().crm
    first = api.objects.notes.basic_api.create(note_on(ticket_id, "first seen"))
    second = api.objects.notes.basic_api.create(note_on(ticket_id, "still failing"))
    page = api.associations.v4.basic_api.get_page("tickets", ticket_id, "notes")
    assert [(r.to_object_id, [(t.type_id, t.label) for t in r.association_types]) for r in page.results] == [
        (first.id, [(227, None)]), (second.id, [(227, None)])]
    read = api.tickets.basic_api.get_by_id(ticket_id, associations=["notes"])
    assert [(a.id, a.type) for a in read.associations["notes"].results] == [
        (first.id, "ticket_to_note"), (second.id, "ticket_to_note")]
    note = api.objects.notes.basic_api.get_by_id(first.id, properties=["hs_note_body"], associations=["tickets"])
    assert note.properties["hs_note_body"] == "first seen"
    assert [(a.id, a.type) for a in note.associations["tickets"].results] == [(ticket_id, "note_to_ticket")]
    assert [n.properties["hs_note_body"] for n in fake_hubspot.associated("tickets", ticket_id, "notes")] == [
        "first seen", "still failing"]
    with pytest.raises(NotesApiException) as caught:
        api.objects.notes.basic_api.create(note_on("999999", "orphan"))
    assert caught.value.status == 400 and json.loads(caught.value.body)["category"] == "VALIDATION_ERROR"
    wrong_type = note_on(ticket_id, "x")
    wrong_type["associations"][0]["types"][0]["associationTypeId"] = 16  # ticket→contact, not a note type
    with pytest.raises(NotesApiException):
        api.objects.notes.basic_api.create(wrong_type)
    assert len(fake_hubspot.objects("notes")) == 2  # refused creates wrote nothing


def test_default_and_labeled_associations_between_ticket_and_company(fake_hubspot: FakeHubSpot,
                                                                     ticket_id: str) -> None:
    api = fake_hubspot.client().crm
    company = api.companies.basic_api.create({"properties": {"name": "Acme", "domain": "acme.test"}})
    other = api.companies.basic_api.create({"properties": {"name": "Globex"}})
    made = api.associations.v4.basic_api.create_default("tickets", ticket_id, "companies", company.id)
    assert [(r._from.id, r.to.id, r.association_spec.association_type_id) for r in made.results] == [
        (ticket_id, company.id, 339), (company.id, ticket_id, 340)]
    labeled = api.associations.v4.basic_api.create("tickets", ticket_id, "companies", other.id, [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 26}])
    assert (labeled.from_object_type_id, labeled.to_object_type_id, labeled.labels) == ("0-5", "0-2", ["Primary"])
    assert fake_hubspot.associations("tickets", ticket_id, "companies") == {company.id: {339}, other.id: {26, 339}}
    assert fake_hubspot.associations("companies", other.id, "tickets") == {ticket_id: {25, 340}}
    labels = api.associations.v4.schema.definitions_api.get_all("tickets", "companies").results
    assert {(d.type_id, d.label) for d in labels} == {(339, None), (26, "Primary")}
    api.associations.v4.basic_api.archive("tickets", ticket_id, "companies", company.id)
    assert list(fake_hubspot.associations("tickets", ticket_id, "companies")) == [other.id]
    with pytest.raises(AssociationsApiException) as caught:
        api.associations.v4.basic_api.create_default("tickets", ticket_id, "companies", "424242")
    assert caught.value.status == 404


def test_batch_create_and_read_ticket_contacts(fake_hubspot: FakeHubSpot, ticket_id: str) -> None:
    api = fake_hubspot.client().crm
    contacts = api.contacts.batch_api.create({"inputs": [
        {"properties": {"email": f"oncall{i}@example.com"}} for i in range(2)]}).results
    made = api.associations.v4.batch_api.create("tickets", "contacts", {"inputs": [
        {"from": {"id": ticket_id}, "to": {"id": c.id},
         "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}]} for c in contacts]})
    assert fake_hubspot.calls("associations/batch/create")[-1].status == 201
    assert sorted(str(r.to_object_id) for r in made.results) == sorted(c.id for c in contacts)
    lonely = api.tickets.basic_api.create({"properties": {"subject": "No one", "hs_pipeline_stage": "1"}})
    read = api.associations.v4.batch_api.get_page("tickets", "contacts", {"inputs": [
        {"id": ticket_id}, {"id": lonely.id}]})
    assert [(r._from.id, sorted(str(t.to_object_id) for t in r.to)) for r in read.results] == [
        (ticket_id, sorted(c.id for c in contacts))]
    assert read.num_errors == 1 and read.errors[0].context == {"fromObjectId": [lonely.id]}
    back = api.associations.v4.basic_api.get_page("contacts", contacts[0].id, "tickets")
    assert [(r.to_object_id, r.association_types[0].type_id) for r in back.results] == [(ticket_id, 15)]
    with pytest.raises(AssociationsApiException) as caught:
        api.associations.v4.batch_api.create("tickets", "contacts", {"inputs": [
            {"from": {"id": ticket_id}, "to": {"id": contacts[0].id},
             "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]}]})
    assert caught.value.status == 400
    fake_hubspot.fail_next(1, status=502, endpoint="associations/batch/read")
    with pytest.raises(AssociationsApiException) as caught:
        api.associations.v4.batch_api.get_page("tickets", "contacts", {"inputs": [{"id": ticket_id}]})
    assert caught.value.status == 502


def test_archived_records_drop_out_of_association_reads(fake_hubspot: FakeHubSpot, ticket_id: str) -> None:
    api = fake_hubspot.client().crm
    note = api.objects.notes.basic_api.create(note_on(ticket_id, "gone soon"))
    api.objects.notes.basic_api.archive(note.id)
    assert api.associations.v4.basic_api.get_page("tickets", ticket_id, "notes").results == []
    assert api.tickets.basic_api.get_by_id(ticket_id, associations=["notes"]).associations is None
