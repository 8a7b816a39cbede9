"""FakeSalesforce through simple-salesforce: logins, sessions, sObject CRUD, upsert by external id, describe, errors.

simple-salesforce 1.12 raises by status: 300 ``SalesforceMoreThanOneRecord``, 400 ``SalesforceMalformedRequest``,
401 ``SalesforceExpiredSession``, 403 ``SalesforceRefusedRequest``, 404 ``SalesforceResourceNotFound``, other
errors ``SalesforceGeneralError``; ``.content`` is Salesforce's JSON error list. A 401 ``INVALID_SESSION_ID`` makes
a client that logged in with a password log in again and retry; a client given a session id cannot.
"""

from __future__ import annotations

import pytest
from airflow_opsflow_testing.salesforce_server import FakeSalesforce, PicklistValue
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

FP = "Opsflow_Fingerprint__c"


def error(caught: pytest.ExceptionInfo[Exception]) -> dict:
    [first] = caught.value.content  # type: ignore[attr-defined]
    return dict(first)


@pytest.mark.parametrize("auth", ["password", "oauth_password", "client_credentials", "session"])
def test_every_login_flow_reaches_the_fake(fake_salesforce: FakeSalesforce, auth: str) -> None:
    sf = fake_salesforce.client(auth)
    assert sf.sf_instance == f"127.0.0.1:{fake_salesforce.port}"
    assert sf.Account.create({"Name": "Acme"})["success"] is True
    names = [r.name for r in fake_salesforce.requests]
    expected = {"password": "login", "oauth_password": "oauth_token", "client_credentials": "oauth_token"}
    assert names == ([expected[auth]] if auth in expected else []) + ["create"]
    # the login went to https://127.0.0.1:<port>/login.salesforce.com/services/... and its body is not logged
    if auth != "session":
        assert fake_salesforce.requests[0].path.startswith("/login.salesforce.com/services/")
        assert fake_salesforce.requests[0].body is None


def test_wrong_credentials_fail_as_on_salesforce(fake_salesforce: FakeSalesforce) -> None:
    c = fake_salesforce.credentials
    with pytest.raises(SalesforceAuthenticationFailed) as soap:
        Salesforce(username=c.username, password="wrong", security_token=c.security_token,
                   domain=fake_salesforce.domain, session=fake_salesforce.session())
    assert soap.value.code == "INVALID_LOGIN"
    assert soap.value.auth_message == "Invalid username, password, security token; or user locked out."
    with pytest.raises(SalesforceAuthenticationFailed) as oauth:
        Salesforce(username=c.username, password=c.password, consumer_key=c.consumer_key, consumer_secret="nope",
                   domain=fake_salesforce.domain, session=fake_salesforce.session())
    assert (oauth.value.code, oauth.value.auth_message) == ("invalid_client", "invalid client credentials")
    with pytest.raises(SalesforceAuthenticationFailed) as grant:
        Salesforce(username=c.username, password="wrong", consumer_key=c.consumer_key,
                   consumer_secret=c.consumer_secret, domain=fake_salesforce.domain, session=fake_salesforce.session())
    assert (grant.value.code, grant.value.auth_message) == ("invalid_grant", "authentication failure")


def test_expired_session_logs_in_again_or_raises(fake_salesforce: FakeSalesforce) -> None:
    by_password, by_session = fake_salesforce.client(), fake_salesforce.client("session")
    fake_salesforce.expire_sessions()
    since = fake_salesforce.mark()
    assert by_password.query("SELECT Id FROM Case")["totalSize"] == 0
    assert [(r.name, r.status) for r in fake_salesforce.calls(since=since)] == [
        ("query", 401), ("login", 200), ("query", 200)]
    with pytest.raises(SalesforceExpiredSession) as caught:
        by_session.query("SELECT Id FROM Case")
    assert error(caught) == {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}


def test_crud_and_case_status_drives_is_closed(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    account = sf.Account.create({"Name": "Acme", "NumberOfEmployees": "12"})["id"]
    case_id = sf.Case.create({"Subject": "payments: 3 checks failed", "AccountId": account})["id"]
    case = sf.Case.get(case_id)
    assert (case["Status"], case["Priority"], case["IsClosed"], case["ClosedDate"]) == ("New", "Medium", False, None)
    assert case["CaseNumber"] == "00001001" and case["attributes"]["type"] == "Case"
    assert len(case_id) == 18 and sf.Case.get(case_id[:15])["Id"] == case_id  # the 15-character form works too
    assert sf.Case.update(case_id, {"Status": "Closed", "Description": "fixed upstream"}) == 204
    closed = fake_salesforce.record(case_id)
    assert closed["IsClosed"] is True and closed["ClosedDate"] == closed["LastModifiedDate"]
    sf.Case.update(case_id, {"Status": "Working"})
    reopened = fake_salesforce.record(case_id)
    assert reopened["IsClosed"] is False and reopened["ClosedDate"] is None
    comment = sf.CaseComment.create({"ParentId": case_id, "CommentBody": "still failing"})["id"]
    assert fake_salesforce.record(comment)["IsPublished"] is False
    assert sf.Account.get(account)["NumberOfEmployees"] == 12
    assert sf.Case.delete(case_id) == 204
    assert fake_salesforce.records("Case") == [] and fake_salesforce.records("CaseComment") == []
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Case.get(case_id)
    assert error(gone) == {"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED"}
    assert [(w.op, w.object) for w in fake_salesforce.writes()] == [
        ("create", "Account"), ("create", "Case"), ("update", "Case"), ("update", "Case"), ("create", "CaseComment"),
        ("delete", "Case")]


def test_upsert_by_external_id(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    created = sf.Case.upsert(f"{FP}/fp-1", {"Subject": "orders: freshness"}, raw_response=True)
    assert created.status_code == 201 and created.json()["created"] is True
    updated = sf.Case.upsert(f"{FP}/FP-1", {"Priority": "High"}, raw_response=True)  # external ids ignore case
    assert updated.status_code == 200
    assert updated.json() == {"id": created.json()["id"], "success": True, "errors": [], "created": False}
    assert fake_salesforce.record_by("Case", FP, "fp-1")["Priority"] == "High"
    assert sf.Case.get_by_custom_id(FP, "fp-1")["Id"] == created.json()["id"]
    old = fake_salesforce.client(version="45.0")  # before API 46.0 an update answers 204 without a body
    assert old.Case.upsert(f"{FP}/fp-1", {"Priority": "Low"}) == 204
    assert "created" not in old.Case.upsert(f"{FP}/fp-0", {}, raw_response=True).json()
    with pytest.raises(SalesforceResourceNotFound) as not_external:
        sf.Case.upsert("Subject/whatever", {"Priority": "Low"})
    assert error(not_external) == {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    assert len(fake_salesforce.creates("Case")) == 2


def test_upsert_with_several_matches_answers_300(fake_salesforce: FakeSalesforce) -> None:
    fake_salesforce.define_field("Account", "Legacy_Key__c", external_id=True)  # external id, not unique
    a = fake_salesforce.add_record("Account", Name="A", Legacy_Key__c="K1")
    b = fake_salesforce.add_record("Account", Name="B", Legacy_Key__c="k1")
    sf = fake_salesforce.client()
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        sf.Account.upsert("Legacy_Key__c/K1", {"Name": "C"})
    assert caught.value.status == 300
    assert caught.value.content == [f"/services/data/v59.0/sobjects/Account/{r['Id']}" for r in (a, b)]
    assert [r["Name"] for r in fake_salesforce.records("Account")] == ["A", "B"]


def test_validation_errors(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    cases = [
        (sf.Contact, {"FirstName": "Ann"}, {"errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"],
                                             "message": "Required fields are missing: [LastName]"}),
        (sf.Case, {"Status": "Solved"}, {"errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "fields": ["Status"],
                                          "message": "Status: bad value for restricted picklist field: Solved"}),
        (sf.Case, {"Subjekt": "typo"}, {"errorCode": "INVALID_FIELD",
                                         "message": "No such column 'Subjekt' on sobject of type Case"}),
        (sf.Case, {"IsClosed": True}, {"errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE", "fields": ["IsClosed"],
                                        "message": "Unable to create/update fields: IsClosed. Please check the "
                                        "security settings of this field and verify that it is read/write for "
                                        "your profile or permission set."}),
        (sf.Contact, {"LastName": "Lee", "Email": "not-an-email"}, {
            "errorCode": "INVALID_EMAIL_ADDRESS", "fields": ["Email"],
            "message": "Email: invalid email address: not-an-email"}),
        (sf.CaseComment, {"ParentId": "001000000000000AAA"}, {
            "errorCode": "FIELD_INTEGRITY_EXCEPTION", "fields": ["ParentId"],
            "message": "Parent Case ID: id value of incorrect type: 001000000000000AAA"}),
    ]
    for sftype, values, expected in cases:
        with pytest.raises(SalesforceMalformedRequest) as caught:
            sftype.create(values)
        assert error(caught) == ({} if expected["errorCode"] == "INVALID_FIELD" else {"fields": []}) | expected
    sf.Case.create({FP: "fp-9"})
    with pytest.raises(SalesforceMalformedRequest) as duplicate:
        sf.Case.create({FP: "FP-9"})
    [existing] = fake_salesforce.records("Case")
    assert error(duplicate) == {"errorCode": "DUPLICATE_VALUE", "fields": [], "message": "duplicate value found: "
                                f"Opsflow_Fingerprint__c duplicates value on record with id: {existing['Id']}"}
    with pytest.raises(SalesforceResourceNotFound) as malformed:
        sf.Case.get("not-an-id")
    assert error(malformed)["message"] == "Provided external ID field does not exist or is not accessible: not-an-id"
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Case.get("500000000000000AAA")
    assert error(missing) == {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nope__c.describe()
    assert len(fake_salesforce.records("Case")) == 1 and fake_salesforce.creates("Contact") == []


def test_describe_custom_objects_and_fields(fake_salesforce: FakeSalesforce) -> None:
    fake_salesforce.define_object("Data_Incident__c", label="Data Incident")
    fake_salesforce.define_field("Data_Incident__c", "Fingerprint__c", external_id=True, unique=True)
    fake_salesforce.define_field("Data_Incident__c", "Severity__c", "picklist", picklist=["P1", "P2", "P3"],
                                 restricted=True, default="P3")
    fake_salesforce.define_field("Data_Incident__c", "Rows__c", "double")
    fake_salesforce.define_field("Case", "Status", "picklist", restricted=True, default="Open",
                                 picklist=["Open", PicklistValue("Resolved", closed=True)])
    sf = fake_salesforce.client()
    described = sf.Data_Incident__c.describe()
    assert described["custom"] is True and described["label"] == "Data Incident"
    fields = {f["name"]: f for f in described["fields"]}
    assert (fields["Fingerprint__c"]["externalId"], fields["Fingerprint__c"]["unique"]) == (True, True)
    assert fields["Severity__c"]["restrictedPicklist"] is True
    assert [(p["value"], p["defaultValue"]) for p in fields["Severity__c"]["picklistValues"]] == [
        ("P1", False), ("P2", False), ("P3", True)]
    status = {f["name"]: f for f in sf.Case.describe()["fields"]}["Status"]
    assert [p["value"] for p in status["picklistValues"]] == ["Open", "Resolved"]
    assert {"Account", "Case", "CaseComment", "Contact", "Data_Incident__c"} <= {
        o["name"] for o in sf.describe()["sobjects"]}
    new = sf.Data_Incident__c.upsert("Fingerprint__c/abc", {"Rows__c": 3}, raw_response=True).json()
    record = fake_salesforce.record(new["id"])
    assert (record["Name"], record["Severity__c"], record["Rows__c"]) == (new["id"], "P3", 3.0)
    case = sf.Case.create({"Status": "Resolved"})["id"]
    assert fake_salesforce.record(case)["IsClosed"] is True
    with pytest.raises(ValueError, match="ends with __c"):
        fake_salesforce.define_field("Case", "Team", "string")


def test_api_limit_and_usage_header(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    fake_salesforce.set_api_limit(100, used=98)
    sf.query("SELECT Id FROM Case")
    assert sf.api_usage["api-usage"].used == 99 and sf.api_usage["api-usage"].total == 100
    assert sf.limits()["DailyApiRequests"] == {"Max": 100, "Remaining": 0}
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Case")
    assert error(caught) == {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    assert fake_salesforce.client().session_id  # logins still work, as on Salesforce
    assert fake_salesforce.api_usage == (100, 100)
