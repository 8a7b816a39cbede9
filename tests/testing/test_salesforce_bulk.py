"""Bulk API 2.0 on FakeSalesforce through simple-salesforce's ``sf.bulk2``: ingest jobs, results CSVs, query jobs.

simple-salesforce 1.12 creates the job, PUTs the CSV, PATCHes ``UploadComplete``, then sleeps ``wait`` seconds
and polls the job until ``JobComplete`` (``Failed``/``Aborted`` raise ``SalesforceOperationError`` with the
job's ``errorMessage``). Tests pass ``wait=0``.
"""

from __future__ import annotations

import csv
import io
import time

import pytest
import requests
from airflow_opsflow_testing.salesforce_server import FakeSalesforce
from simple_salesforce.exceptions import SalesforceOperationError

FP = "Opsflow_Fingerprint__c"


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_insert_then_upsert_with_a_failed_row(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    [inserted] = sf.bulk2.Case.insert(records=[{FP: "fp-1", "Subject": "a"}, {FP: "fp-2", "Subject": "b"}], wait=0)
    assert (inserted["numberRecordsProcessed"], inserted["numberRecordsFailed"]) == (2, 0)
    assert [r.name for r in fake_salesforce.calls(path_prefix="/services/data/v59.0/jobs")] == [
        "ingest_create", "ingest_upload", "ingest_state", "ingest_job", "ingest_job", "ingest_job"]
    [upserted] = sf.bulk2.Case.upsert(records=[{FP: "FP-1", "Status": "Closed"}, {FP: "fp-3", "Status": "Done"},
                                               {FP: "fp-4", "Status": "New"}], external_id_field=FP, wait=0)
    assert (upserted["numberRecordsProcessed"], upserted["numberRecordsFailed"]) == (3, 1)
    job = upserted["job_id"]
    ok = rows(sf.bulk2.Case.get_successful_records(job))
    assert [(r[FP], r["sf__Created"]) for r in ok] == [("FP-1", "false"), ("fp-4", "true")]
    assert ok[0]["sf__Id"] == fake_salesforce.record_by("Case", FP, "fp-1")["Id"]
    [failed] = rows(sf.bulk2.Case.get_failed_records(job))
    assert failed["sf__Error"] == ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:Status: bad value for restricted "
                                   "picklist field: Done:Status --")
    assert (failed["sf__Id"], failed[FP]) == ("", "fp-3")
    assert sf.bulk2.Case.get_unprocessed_records(job).strip() in (f"{FP},Status", f"Status,{FP}")
    everything = sf.bulk2.Case.get_all_ingest_records(job)
    assert [len(everything[k]) for k in ("successfulRecords", "failedRecords", "unprocessedRecords")] == [2, 1, 0]
    assert fake_salesforce.record_by("Case", FP, "fp-1")["IsClosed"] is True
    assert {w.via for w in fake_salesforce.writes("Case")} == {"bulk"}


def test_update_and_delete_jobs(fake_salesforce: FakeSalesforce) -> None:
    ids = [fake_salesforce.add_record("Account", Name=f"A{i}")["Id"] for i in range(3)]
    sf = fake_salesforce.client()
    [updated] = sf.bulk2.Account.update(records=[{"Id": ids[0], "Name": "renamed"}, {"Id": ids[1], "Name": ""},
                                                 {"Id": "001000000000000AAA", "Name": "x"}], wait=0)
    assert updated["numberRecordsFailed"] == 1
    assert [r["Name"] for r in fake_salesforce.records("Account")] == ["renamed", "A1", "A2"]  # "" is ignored
    [failed] = rows(sf.bulk2.Account.get_failed_records(updated["job_id"]))
    assert failed["sf__Error"] == "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"
    [deleted] = sf.bulk2.Account.delete(records=[{"Id": ids[0]}, {"Id": ids[2]}], wait=0)
    assert deleted["numberRecordsProcessed"] == 2
    assert [r["Name"] for r in fake_salesforce.records("Account")] == ["A1"]


def test_unknown_column_fails_the_job_and_leaves_rows_unprocessed(fake_salesforce: FakeSalesforce) -> None:
    sf = fake_salesforce.client()
    with pytest.raises(SalesforceOperationError, match="InvalidBatch : Field name not found : Sujbect"):
        sf.bulk2.Case.insert(records=[{"Sujbect": "typo"}], wait=0)
    [job] = [j for j in fake_salesforce.bulk.jobs.values()]
    assert job.state == "Failed" and fake_salesforce.records("Case") == []
    assert rows(sf.bulk2.Case.get_unprocessed_records(job.id)) == [{"Sujbect": "typo"}]
    fake_salesforce.fail_next_bulk_job("InternalServerError : try again")
    with pytest.raises(SalesforceOperationError, match="try again"):
        sf.bulk2.Case.insert(records=[{"Subject": "fine"}], wait=0)
    assert fake_salesforce.records("Case") == []


def test_job_states_over_the_wire(fake_salesforce: FakeSalesforce) -> None:
    """The documented lifecycle, driven with the client's own session: Open → UploadComplete → InProgress → done."""
    sf = fake_salesforce.client()
    fake_salesforce.bulk_progress(polls=2, seconds=0.2)
    base = f"{sf.base_url}jobs/ingest"
    http: requests.Session = sf.session
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    job = http.post(base, json={"object": "Account", "operation": "insert", "lineEnding": "LF"}, headers=auth).json()
    assert (job["state"], job["contentUrl"]) == ("Open", f"services/data/v59.0/jobs/ingest/{job['id']}/batches")
    csv_headers = {**auth, "Content-Type": "text/csv"}
    put = http.put(f"{base}/{job['id']}/batches", data=b"Name\nOne\nTwo\n", headers=csv_headers)
    assert put.status_code == 201 and put.content == b""
    closed = http.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}, headers=auth).json()
    assert closed["state"] == "UploadComplete" and "contentUrl" not in closed
    again = http.put(f"{base}/{job['id']}/batches", data=b"Name\nThree\n", headers=csv_headers)
    assert again.status_code == 409
    states = [http.get(f"{base}/{job['id']}", headers=auth).json()["state"] for _ in range(3)]
    assert states == ["InProgress", "InProgress", "InProgress"]  # two polls, and 0.2 s not yet over
    time.sleep(0.25)
    info = http.get(f"{base}/{job['id']}", headers=auth).json()
    assert (info["state"], info["jobType"], info["numberRecordsProcessed"]) == ("JobComplete", "V2Ingest", 2)
    assert [r["Name"] for r in fake_salesforce.records("Account")] == ["One", "Two"]
    assert http.delete(f"{base}/{job['id']}", headers=auth).status_code == 204
    aborted = http.post(base, json={"object": "Account", "operation": "insert"}, headers=auth).json()
    http.put(f"{base}/{aborted['id']}/batches", data=b"Name\nLost\n", headers=csv_headers)
    assert http.patch(f"{base}/{aborted['id']}", json={"state": "Aborted"}, headers=auth).json()["state"] == "Aborted"
    assert rows(http.get(f"{base}/{aborted['id']}/unprocessedrecords", headers=auth).text) == [{"Name": "Lost"}]
    refused = http.post(base, json={"object": "Account", "operation": "upsert"}, headers=auth)
    assert refused.status_code == 400 and refused.json()[0]["message"].startswith("InvalidJob : External ID was blank")


def test_query_jobs_page_by_locator(fake_salesforce: FakeSalesforce) -> None:
    for i in range(5):
        fake_salesforce.add_record("Account", Name=f"A{i}", NumberOfEmployees=i)
    sf = fake_salesforce.client()
    pages = list(sf.bulk2.Account.query("SELECT Name, NumberOfEmployees FROM Account WHERE NumberOfEmployees > 0 "
                                        "ORDER BY Name", max_records=3, wait=0))
    assert [rows(p) for p in pages] == [
        [{"Name": "A1", "NumberOfEmployees": "1"}, {"Name": "A2", "NumberOfEmployees": "2"},
         {"Name": "A3", "NumberOfEmployees": "3"}], [{"Name": "A4", "NumberOfEmployees": "4"}]]
    assert pages[0].startswith('"Name","NumberOfEmployees"\n"A1","1"\n')
    results = fake_salesforce.calls("query_job_results")
    assert [r.query.get("locator") for r in results] == [None, ["Mw"]]  # base64 of the offset, opaque to clients
    job = fake_salesforce.calls("query_job_create")[0]
    assert job.body["operation"] == "query"
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    fake_salesforce.bulk_progress(polls=5)
    early = sf.session.post(f"{sf.base_url}jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"},
                            headers=auth).json()
    too_soon = sf.session.get(f"{sf.base_url}jobs/query/{early['id']}/results", headers=auth)
    assert too_soon.status_code == 412 and too_soon.json() == [{
        "message": "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. "
                   "Current status: UPLOAD_COMPLETE", "errorCode": "JOB_NOT_COMPLETE"}]
