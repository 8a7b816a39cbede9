"""Bulk API 2.0 query jobs and relationship fields on FakeSalesforce, through simple-salesforce (``sf.query``,
``sf.bulk2``) and its session: job info, states over several polls, CSV results by locator, a failed job, a bad
SOQL refused when the job is created."""

from __future__ import annotations

import csv
import io

import pytest
import requests
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError

SOQL = "SELECT LastName, Account.Name, Account.NumberOfEmployees, CreatedDate FROM Contact ORDER BY LastName"


@pytest.fixture
def sf(fake_salesforce: FakeSalesforce) -> Salesforce:
    acme = fake_salesforce.add_record("Account", Name="Acme, Inc.", NumberOfEmployees=40)["Id"]
    fake_salesforce.add_record("Contact", LastName="Ames", AccountId=acme, CreatedDate="2024-05-01T12:00:00Z")
    fake_salesforce.add_record("Contact", LastName="Baker", CreatedDate="2024-05-02T08:30:00.250Z")
    fake_salesforce.add_record("Contact", LastName="Chu", AccountId=acme, CreatedDate="2024-05-03T00:00:00Z")
    return fake_salesforce.client()


def test_rest_nests_parent_fields_under_the_relationship(sf: Salesforce) -> None:
    records = sf.query(SOQL)["records"]
    account = records[0]["Account"]
    assert account["attributes"]["type"] == "Account" and account["attributes"]["url"].startswith(
        "/services/data/v59.0/sobjects/Account/001")
    assert (account["Name"], account["NumberOfEmployees"]) == ("Acme, Inc.", 40)
    assert list(records[0]) == ["attributes", "LastName", "Account", "CreatedDate"]
    assert records[1]["Account"] is None  # a null lookup, not an object of nulls
    assert records[1]["CreatedDate"] == "2024-05-02T08:30:00.250+0000"
    assert [r["LastName"] for r in sf.query("SELECT LastName FROM Contact WHERE AccountId = null")["records"]] == [
        "Baker"]


def test_query_job_results_are_csv_with_dotted_relationship_columns(fake_salesforce: FakeSalesforce,
                                                                    sf: Salesforce) -> None:
    pages = list(sf.bulk2.Contact.query(SOQL, max_records=2, wait=0))
    assert pages == [
        '"LastName","Account.Name","Account.NumberOfEmployees","CreatedDate"\n'
        '"Ames","Acme, Inc.","40","2024-05-01T12:00:00.000Z"\n"Baker","","","2024-05-02T08:30:00.250Z"\n',
        '"LastName","Account.Name","Account.NumberOfEmployees","CreatedDate"\n'
        '"Chu","Acme, Inc.","40","2024-05-03T00:00:00.000Z"\n']
    [create] = fake_salesforce.calls("query_job_create")
    assert create.body["operation"] == "query" and create.body["query"] == SOQL


def test_a_query_job_over_the_wire(fake_salesforce: FakeSalesforce, sf: Salesforce) -> None:
    """Created UploadComplete, InProgress for the polls it takes, then JobComplete and its results by locator."""
    fake_salesforce.bulk_progress(polls=3)
    http: requests.Session = sf.session
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    base = f"{sf.base_url}jobs/query"
    created = http.post(base, json={"operation": "query", "query": SOQL}, headers=auth)
    job = created.json()
    assert created.status_code == 200 and job["state"] == "UploadComplete" and job["id"].startswith("750")
    assert {k: job[k] for k in ("operation", "object", "concurrencyMode", "contentType", "lineEnding",
                                "columnDelimiter")} == {
        "operation": "query", "object": "Contact", "concurrencyMode": "Parallel", "contentType": "CSV",
        "lineEnding": "LF", "columnDelimiter": "COMMA"}
    infos = [http.get(f"{base}/{job['id']}", headers=auth).json() for _ in range(4)]
    assert [i["state"] for i in infos] == ["InProgress", "InProgress", "InProgress", "JobComplete"]
    done = infos[-1]
    assert (done["jobType"], done["numberRecordsProcessed"], done["retries"], done["isPkChunkingSupported"]) == (
        "V2Query", 3, 0, True)
    assert "errorMessage" not in done and isinstance(done["totalProcessingTime"], int)

    first = http.get(f"{base}/{job['id']}/results", params={"maxRecords": 2}, headers=auth)
    assert first.headers["Content-Type"].startswith("text/csv")
    assert (first.headers["Sforce-NumberOfRecords"], first.headers["Sforce-Locator"]) == ("2", "Mg")
    last = http.get(f"{base}/{job['id']}/results", params={"maxRecords": 2, "locator": "Mg"}, headers=auth)
    assert (last.headers["Sforce-NumberOfRecords"], last.headers["Sforce-Locator"]) == ("1", "null")
    assert [r["LastName"] for r in csv.DictReader(io.StringIO(first.text + last.text.split("\n", 1)[1]))] == [
        "Ames", "Baker", "Chu"]
    again = http.get(f"{base}/{job['id']}/results", params={"maxRecords": 2, "locator": "Mg"}, headers=auth)
    assert again.text == last.text  # a locator reads its set as often as asked, while the job exists

    aborted = http.post(base, json={"operation": "query", "query": SOQL}, headers=auth).json()
    state = http.patch(f"{base}/{aborted['id']}", json={"state": "Aborted"}, headers=auth).json()["state"]
    assert state == "Aborted" and http.get(f"{base}/{aborted['id']}", headers=auth).json()["state"] == "Aborted"


def test_a_failed_job_and_a_refused_query(fake_salesforce: FakeSalesforce, sf: Salesforce) -> None:
    fake_salesforce.fail_next_bulk_job("InvalidBatch : Failed to process query: UNKNOWN_EXCEPTION")
    with pytest.raises(SalesforceOperationError, match=r"Job failure\. Response content: InvalidBatch : Failed to "
                                                       r"process query: UNKNOWN_EXCEPTION"):
        list(sf.bulk2.Contact.query(SOQL, wait=0))
    # The SOQL is checked when the job is created: the REST query's error, and no job
    with pytest.raises(SalesforceMalformedRequest) as caught:
        list(sf.bulk2.Contact.query("SELECT LastName, Account.Nmae FROM Contact", wait=0))
    [error] = caught.value.content
    assert error["errorCode"] == "INVALID_FIELD" and "No such column 'Nmae' on entity 'Account'" in error["message"]
    assert [c.status for c in fake_salesforce.calls("query_job_create")] == [200, 400]
    assert len(fake_salesforce.bulk.jobs) == 1


def test_compound_fields_read_through_rest_and_refused_by_a_query_job(fake_salesforce: FakeSalesforce,
                                                                      sf: Salesforce) -> None:
    fake_salesforce.define_field("Account", "Site__c", "location")
    fake_salesforce.add_record("Account", Name="Gamma", BillingCity="Oslo", Site__Latitude__s=59.9,
                               Site__Longitude__s=10.75)
    types = {f["name"]: (f["type"], f["soapType"], f["createable"]) for f in sf.Account.describe()["fields"]}
    assert types["BillingAddress"] == ("address", "urn:address", False)
    assert types["Site__c"] == ("location", "urn:location", False)
    assert types["Site__Latitude__s"][0] == "double"
    records = sf.query("SELECT Name, BillingAddress, Site__c FROM Account ORDER BY Name")["records"]
    assert [(r["Name"], r["BillingAddress"], r["Site__c"]) for r in records] == [
        ("Acme, Inc.", None, None),  # no component set: null
        ("Gamma", {"city": "Oslo", "country": None, "geocodeAccuracy": None, "latitude": None, "longitude": None,
                   "postalCode": None, "state": None, "street": None}, {"latitude": 59.9, "longitude": 10.75})]
    # Bulk API 2.0 refuses to create a query job selecting compound data: 400, and no job
    for soql in ("SELECT Name, BillingAddress FROM Account", "SELECT Id, Site__c FROM Account"):
        with pytest.raises(SalesforceMalformedRequest) as caught:
            list(sf.bulk2.Account.query(soql, wait=0))
        assert caught.value.content == [{"message": "Selecting compound data not supported in Bulk Query",
                                         "errorCode": "API_ERROR"}]
    assert [c.status for c in fake_salesforce.calls("query_job_create")] == [400, 400]
    assert fake_salesforce.bulk.jobs == {}
    # their components are plain fields: a job selects those
    pages = list(sf.bulk2.Account.query("SELECT Name, BillingCity, Site__Latitude__s FROM Account ORDER BY Name",
                                        wait=0))
    assert pages == ['"Name","BillingCity","Site__Latitude__s"\n"Acme, Inc.","",""\n"Gamma","Oslo","59.9"\n']
