"""sObject Collections on FakeSalesforce through simple-salesforce's ``restful()``: per-record results, allOrNone.

simple-salesforce has no Collections helper; callers use ``sf.restful("composite/sobjects", method=..., json=...)``,
which returns the decoded 200 answer (one result per record) and raises only on request-level errors (400).
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

FP = "Opsflow_Fingerprint__c"
ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "fields": [],
               "message": "Record rolled back because not all records were valid and the request was using "
                          "AllOrNone header"}


def case(**values: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Case"}, **values}


def test_create_with_and_without_all_or_none(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    body = {"records": [case(Subject="ok"), case(Status="Solved"), {"attributes": {"type": "Account"}, "Name": "A"}]}
    partial = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, **body})
    assert [r["success"] for r in partial] == [True, False, True]
    assert partial[1] == {"success": False, "errors": [{
        "statusCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["Status"],
        "message": "Status: bad value for restricted picklist field: Solved"}]}
    assert partial[0]["id"].startswith("500") and partial[2]["id"].startswith("001")
    atomic = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, **body})
    assert atomic == [{"success": False, "errors": [ROLLED_BACK]}, partial[1],
                      {"success": False, "errors": [ROLLED_BACK]}]
    assert len(fake_salesforce.records("Case")) == 1 and len(fake_salesforce.records("Account")) == 1
    assert len(fake_salesforce.creates("Case")) == 1  # the rolled-back create left no write behind
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.restful("composite/sobjects", method="POST", json={"records": [case(Subject=str(i)) for i in range(201)]})
    assert too_many.value.content == [{"message": "record limit reached. cannot submit more than 200 records into "
                                                  "this call", "errorCode": "EXCEEDED_ID_LIMIT"}]
    with_id = sf.restful("composite/sobjects", method="POST", json={"records": [case(Id=partial[0]["id"])]})
    assert with_id[0]["errors"][0]["message"] == "cannot specify Id in an insert call"


def test_update_and_delete(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    ids = [fake_salesforce.add_record("Case", Subject=f"c{i}")["Id"] for i in range(3)]
    results = sf.restful("composite/sobjects", method="PATCH", json={"allOrNone": False, "records": [
        case(id=ids[0], Status="Closed"), case(id=ids[1], Priority="Urgent"), case(Subject="no id")]})
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1]["id"] == ids[1] and results[1]["errors"][0]["statusCode"] == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    assert results[2]["errors"][0] == {"statusCode": "MISSING_ARGUMENT", "fields": [],
                                       "message": "Id not specified in an update call"}
    assert fake_salesforce.record(ids[0])["IsClosed"] is True
    deleted = sf.restful("composite/sobjects", method="DELETE",
                         params={"ids": f"{ids[0]},{ids[0]},bogus", "allOrNone": "false"})
    assert deleted[0] == {"id": ids[0], "success": True, "errors": []}
    assert deleted[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert deleted[2]["errors"][0] == {"statusCode": "MALFORMED_ID", "message": "malformed id bogus", "fields": []}
    atomic = sf.restful("composite/sobjects", method="DELETE",
                        params={"ids": f"{ids[1]},{ids[0]}", "allOrNone": "true"})
    assert atomic[0] == {"id": ids[1], "success": False, "errors": [ROLLED_BACK]}
    assert [r["Id"] for r in fake_salesforce.records("Case")] == ids[1:]
    fetched = sf.restful("composite/sobjects/Case", params={"ids": f"{ids[1]},{ids[0]}", "fields": "Subject"})
    assert fetched[0]["Subject"] == "c1" and fetched[1] is None


def test_upsert_by_external_id(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    first = sf.restful(f"composite/sobjects/Case/{FP}", method="PATCH", json={"allOrNone": False, "records": [
        case(**{FP: "fp-1"}, Subject="one"), case(**{FP: "fp-2"}, Subject="two")]})
    assert [(r["success"], r["created"]) for r in first] == [(True, True), (True, True)]
    again = sf.restful(f"composite/sobjects/Case/{FP}", method="PATCH", json={"allOrNone": False, "records": [
        case(**{FP: "FP-1"}, Status="Closed"), case(Subject="no key"), case(**{FP: "fp-3"}, Priority="P0")]})
    assert again[0] == {"id": first[0]["id"], "success": True, "errors": [], "created": False}
    assert again[1] == {"success": False, "created": False, "errors": [
        {"statusCode": "MISSING_ARGUMENT", "message": "Opsflow_Fingerprint__c not specified", "fields": []}]}
    assert again[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert fake_salesforce.record(first[0]["id"])["IsClosed"] is True
    atomic = sf.restful(f"composite/sobjects/Case/{FP}", method="PATCH", json={"allOrNone": True, "records": [
        case(**{FP: "fp-2"}, Subject="changed"), case(**{FP: "fp-4"}, Status="Nope")]})
    assert atomic[0] == {"success": False, "created": False, "errors": [ROLLED_BACK]}
    assert fake_salesforce.record(first[1]["id"])["Subject"] == "two"  # the update was rolled back
    with pytest.raises(SalesforceMalformedRequest) as not_external:
        sf.restful("composite/sobjects/Case/Subject", method="PATCH", json={"records": [case(Subject="x")]})
    assert not_external.value.content[0]["message"] == (
        "Field name provided, Subject is not an External ID or indexed field for Case")
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful(f"composite/sobjects/Nope__c/{FP}", method="PATCH", json={"records": []})


def test_several_matches_are_a_per_record_error(fake_salesforce: FakeSalesforce) -> None:
    fake_salesforce.define_field("Case", FP, external_id=True, unique=False)  # external id without uniqueness
    a = fake_salesforce.add_record("Case", **{FP: "dup"})["Id"]
    b = fake_salesforce.add_record("Case", **{FP: "DUP"})["Id"]
    [result] = fake_salesforce.client().restful(f"composite/sobjects/Case/{FP}", method="PATCH",
                                                json={"records": [case(**{FP: "dup"}, Subject="x")]})
    assert result["errors"] == [{"statusCode": "DUPLICATE_EXTERNAL_ID", "fields": [FP], "message":
                                 f"{FP}: more than one record found for external id field: [{a}, {b}]"}]
