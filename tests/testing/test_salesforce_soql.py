"""SOQL on FakeSalesforce through simple-salesforce: filters, ordering, paging with nextRecordsUrl, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest


@pytest.fixture
def sf(fake_salesforce: FakeSalesforce) -> Salesforce:
    acme = fake_salesforce.add_record("Account", Name="Acme", NumberOfEmployees=40, AnnualRevenue=1.5e6)["Id"]
    fake_salesforce.add_record("Account", Name="Globex", NumberOfEmployees=7)
    fake_salesforce.add_record("Account", Name="initech")
    fake_salesforce.add_record("Case", Subject="orders late", Priority="High", AccountId=acme)
    fake_salesforce.add_record("Case", Subject="Payments failing", Status="Closed", AccountId=acme)
    fake_salesforce.add_record("Case", Subject="refunds", Priority="Low", Opsflow_Fingerprint__c="fp-1")
    return fake_salesforce.client()


def names(result: dict) -> list[str]:
    return [r.get("Name") or r.get("Subject") for r in result["records"]]


def test_filters_and_ordering(sf: Salesforce) -> None:
    def q(soql: str) -> list[str]:
        return names(sf.query(soql))

    assert q("SELECT Name FROM Account ORDER BY Name") == ["Acme", "Globex", "initech"]  # text sorts ignoring case
    assert q("select name from account where name = 'ACME'") == ["Acme"]  # names and text compare ignoring case
    assert q("SELECT Name FROM Account WHERE NumberOfEmployees > 10 OR NumberOfEmployees = null") == [
        "Acme", "initech"]
    assert q("SELECT Name FROM Account WHERE Name != 'Acme' ORDER BY NumberOfEmployees DESC") == ["Globex", "initech"]
    assert q("SELECT Name FROM Account ORDER BY NumberOfEmployees ASC NULLS LAST LIMIT 2") == ["Globex", "Acme"]
    assert q("SELECT Name FROM Account ORDER BY Name LIMIT 1 OFFSET 1") == ["Globex"]
    assert q("SELECT Subject FROM Case WHERE IsClosed = false AND (Priority IN ('High', 'Low') OR Subject LIKE "
             "'pay%') ORDER BY Subject") == ["orders late", "refunds"]
    assert q("SELECT Subject FROM Case WHERE Subject LIKE '%ING' AND NOT Priority = 'Low'") == ["Payments failing"]
    assert q("SELECT Subject FROM Case WHERE Opsflow_Fingerprint__c NOT IN ('fp-1')") == [
        "orders late", "Payments failing"]  # NOT IN and != keep the rows where the field is null
    assert q("SELECT Subject FROM Case WHERE CreatedDate = TODAY AND CreatedDate > 2020-01-01T00:00:00Z") == [
        "orders late", "Payments failing", "refunds"]
    assert q("SELECT Subject FROM Case WHERE CreatedDate < LAST_N_DAYS:3") == []
    assert sf.query("SELECT COUNT() FROM Case WHERE IsClosed = true") == {"totalSize": 1, "done": True,
                                                                           "records": []}
    [row] = sf.query("SELECT Id, Name, AnnualRevenue, NumberOfEmployees FROM Account WHERE Name = 'Acme'")["records"]
    assert list(row) == ["attributes", "Id", "Name", "AnnualRevenue", "NumberOfEmployees"]
    assert (row["AnnualRevenue"], row["NumberOfEmployees"]) == (1.5e6, 40)
    assert row["attributes"] == {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/{row['Id']}"}


def test_paging_with_next_records_url(fake_salesforce: FakeSalesforce, sf: Salesforce) -> None:
    for i in range(5):
        fake_salesforce.add_record("Contact", LastName=f"L{i}")
    fake_salesforce.set_query_batch_size(2)
    since = fake_salesforce.mark()
    first = sf.query("SELECT LastName FROM Contact ORDER BY LastName DESC")
    assert (first["totalSize"], first["done"], names_of(first)) == (5, False, ["L4", "L3"])
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert names_of(second) == ["L2", "L1"] and not second["done"]
    everything = sf.query_all("SELECT LastName FROM Contact ORDER BY LastName")
    assert everything["totalSize"] == 5 and names_of(everything) == ["L0", "L1", "L2", "L3", "L4"]
    assert [r.name for r in fake_salesforce.calls(since=since)] == ["query", "query_more", "query", "query_more",
                                                                    "query_more"]
    fake_salesforce.set_query_batch_size(2000)
    page = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": "batchSize=200"})
    assert page["done"] is True  # batchSize is at least 200 on Salesforce


def names_of(result: dict) -> list[str]:
    return [r["LastName"] for r in result["records"]]


def test_query_all_sees_deleted_records(fake_salesforce: FakeSalesforce, sf: Salesforce) -> None:
    [case] = sf.query("SELECT Id FROM Case WHERE Subject = 'refunds'")["records"]
    sf.Case.delete(case["Id"])
    assert sf.query("SELECT COUNT() FROM Case")["totalSize"] == 2
    deleted = sf.query("SELECT Subject, IsDeleted FROM Case WHERE IsDeleted = true", include_deleted=True)
    assert [(r["Subject"], r["IsDeleted"]) for r in deleted["records"]] == [("refunds", True)]


@pytest.mark.parametrize("soql,code,message", [
    ("SELECT Id FROM Accountz", "INVALID_TYPE",
     "\nSELECT Id FROM Accountz\n               ^\nERROR at Row:1:Column:16\nsObject type 'Accountz' is not supported. "
     "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please "
     "reference your WSDL or the describe call for the appropriate names."),
    ("SELECT Id, Nmae FROM Account", "INVALID_FIELD",
     "\nSELECT Id, Nmae FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Nmae' on entity "
     "'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field "
     "name. Please reference your WSDL or the describe call for the appropriate names."),
    ("SELECT Id FRM Account", "MALFORMED_QUERY", "\nSELECT Id FRM Account\n          ^\nERROR at Row:1:Column:11\n"
     "unexpected token: 'FRM'"),
    ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "MALFORMED_QUERY", None),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", "INVALID_FIELD", "value of filter criterion for "
     "field 'NumberOfEmployees' must be of type integer and should not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", "value of filter criterion for field 'Name' must "
     "be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Case WHERE AccountId = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
    ("SELECT Id FROM Contact WHERE Account.Name = 'a'", "MALFORMED_QUERY",
     "(opsflow FakeSalesforce supports a SOQL subset)"),
    ("SELECT Id, Acount.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Acount' in field path. "
     "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship "
     "name. Please reference your WSDL or the describe call for the appropriate names."),
    ("SELECT Account.Nmae FROM Contact", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'. If you are "
     "attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference "
     "your WSDL or the describe call for the appropriate names."),
    ("SELECT Name FROM Account GROUP BY Name", "MALFORMED_QUERY", "(opsflow FakeSalesforce supports a SOQL subset)"),
])
def test_errors_as_salesforce_words_them(sf: Salesforce, soql: str, code: str, message: str | None) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    [error] = caught.value.content
    assert error["errorCode"] == code
    if message is not None and message.startswith("\n"):
        assert error["message"] == message
    elif message is not None:
        assert error["message"].endswith(message)


def test_datetime_comparisons(fake_salesforce: FakeSalesforce, sf: Salesforce) -> None:
    now = fake_salesforce.now()  # the org's clock, which stamped LastModifiedDate
    after = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    found = sf.query(f"SELECT Subject FROM Case WHERE LastModifiedDate > {after} AND LastModifiedDate < {before}")
    assert found["totalSize"] == 3
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Case WHERE CreatedDate > 2024-01-01")
    assert caught.value.content[0]["message"].endswith(
        "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in "
        "quotes")


def test_seeded_history_and_a_fixed_clock() -> None:
    """Without the fixture: ``client()`` trusts the fake by itself; ``clock`` fixes "now" for the org."""
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    with FakeSalesforce(clock=lambda: now) as org:
        org.add_record("Case", Subject="old", LastModifiedDate=now - timedelta(days=10))
        org.add_record("Case", Subject="recent", LastModifiedDate="2026-02-28T23:00:00Z")
        fresh = org.add_record("Case", Subject="today", Status="Closed")
        assert (fresh["CreatedDate"], fresh["ClosedDate"]) == ("2026-03-01T09:30:00.000+0000",) * 2
        sf = org.client()
        found = sf.query("SELECT Subject, LastModifiedDate FROM Case WHERE LastModifiedDate = LAST_N_DAYS:2 "
                         "ORDER BY LastModifiedDate")
        assert [(r["Subject"], r["LastModifiedDate"]) for r in found["records"]] == [
            ("recent", "2026-02-28T23:00:00.000+0000"), ("today", "2026-03-01T09:30:00.000+0000")]
        assert names(sf.query("SELECT Subject FROM Case WHERE LastModifiedDate < YESTERDAY")) == ["old"]
