"""The fakes' batched ticket reads, through the real client libraries, as TicketSensor's pokes send them:
HubSpot's ``tickets/batch/read`` (hubspot-api-client), Salesforce's SOQL ``Id IN (...)`` (simple-salesforce) and
Zendesk's ``tickets/show_many`` (zenpy): their limits, and how a missing, archived or deleted ticket comes back."""

from __future__ import annotations

import json

import pytest
from airflow_opsflow_testing.hubspot_server import FakeHubSpot
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from airflow_opsflow_testing.zendesk_server import FakeZendesk
from hubspot.crm.tickets import ApiException as TicketsApiException
from simple_salesforce.exceptions import SalesforceMalformedRequest
from zenpy.lib.exception import APIException


def test_hubspot_batch_read_reports_missing_and_archived_tickets_and_its_limits(fake_hubspot: FakeHubSpot) -> None:
    tickets = fake_hubspot.client().crm.tickets
    ids = [tickets.basic_api.create({"properties": {"subject": f"t{n}", "hs_pipeline": "0",
                                                    "hs_pipeline_stage": stage}}).id for n, stage in enumerate("141")]
    tickets.basic_api.archive(ids[2])
    body = {"inputs": [{"id": i} for i in [*ids, "999999"]], "properties": ["hs_pipeline_stage"]}
    read = tickets.batch_api.read(body, archived=False)
    assert {(r.id, r.properties["hs_pipeline_stage"]) for r in read.results} == {(ids[0], "1"), (ids[1], "4")}
    [missing] = read.errors
    assert missing.category == "OBJECT_NOT_FOUND" and sorted(missing.context["ids"]) == sorted([ids[2], "999999"])
    assert "Could not get some TICKET objects" in missing.message
    assert fake_hubspot.calls("batch/read", "tickets")[-1].status == 207  # some found, some not
    assert [r.id for r in tickets.batch_api.read(body, archived=True).results] == [ids[2]]

    with pytest.raises(TicketsApiException) as too_many:
        tickets.batch_api.read({"inputs": [{"id": str(i)} for i in range(101)], "properties": []})
    assert too_many.value.status == 400
    assert "maximum number of inputs supported in a batch request is 100" in json.loads(too_many.value.body)["message"]
    with pytest.raises(TicketsApiException) as twice:
        tickets.batch_api.read({"inputs": [{"id": ids[0]}, {"id": ids[0]}], "properties": []})
    assert twice.value.status == 400 and "Duplicate IDs found in batch input" in json.loads(twice.value.body)["message"]


def test_salesforce_cases_by_id_in_one_soql_query(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    ids = [str(sf.Case.create({"Subject": f"c{n}", "Status": status})["id"])
           for n, status in enumerate(["New", "Closed", "New"])]
    sf.Case.delete(ids[2])
    # a 15-character Id matches its Case (answered with the 18-character one); a deleted Case is left out
    listed = ", ".join(f"'{i}'" for i in [ids[0][:15], ids[1], ids[2]])
    found = sf.query_all(f"SELECT Id, CaseNumber, IsClosed FROM Case WHERE Id IN ({listed})")["records"]
    assert sorted((r["Id"], r["IsClosed"]) for r in found) == sorted([(ids[0], False), (ids[1], True)])
    assert fake_salesforce.calls("query")[-1].status == 200
    everything = sf.query_all(f"SELECT Id, IsDeleted FROM Case WHERE Id IN ({listed})", include_deleted=True)
    assert {r["Id"]: r["IsDeleted"] for r in everything["records"]}[ids[2]] is True  # queryAll sees it

    # anything that is not an Id (a bad 18-character checksum too) fails the whole query, as on Salesforce
    bad_checksum = ids[0][:15] + ("AAA" if ids[0][15:] != "AAA" else "BBB")
    for value in ("404404", bad_checksum):
        with pytest.raises(SalesforceMalformedRequest) as refused:
            sf.query_all(f"SELECT Id FROM Case WHERE Id IN ('{ids[0]}', '{value}')")
        [error] = refused.value.content
        assert error["errorCode"] == "INVALID_QUERY_FILTER_OPERATOR"
        assert f"invalid ID field: {value}" in error["message"]


def test_zendesk_show_many_leaves_unknown_tickets_out_and_takes_100_ids(fake_zendesk: FakeZendesk) -> None:
    zd = fake_zendesk.client(disable_cache=True, timeout=5)  # type: ignore[arg-type]
    solved = fake_zendesk.add_ticket(status="solved")
    open_ = fake_zendesk.add_ticket(status="open")
    shown = zd.tickets(ids=[open_.id, 999, solved.id])
    assert sorted((t.id, t.status) for t in shown) == [(solved.id, "solved"), (open_.id, "open")]
    [call] = fake_zendesk.calls("show_many_tickets")
    assert call.path == "/api/v2/tickets/show_many.json" and call.query["ids"] == [f"{open_.id},999,{solved.id}"]
    assert len(list(zd.tickets(ids=[open_.id, *range(1000, 1099)]))) == 1  # 100 ids: the most one request takes
    with pytest.raises(APIException) as too_many:
        list(zd.tickets(ids=list(range(1000, 1101))))
    assert "at most 100 values" in str(too_many.value)
    assert fake_zendesk.calls("show_many_tickets")[-1].status == 400
