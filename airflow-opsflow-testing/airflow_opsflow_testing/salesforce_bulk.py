"""Bulk API 2.0 for FakeSalesforce: ingest jobs (insert/update/upsert/delete from CSV) and query jobs.

An ingest job goes ``Open`` (upload CSV with ``PUT .../batches``) → ``UploadComplete`` (``PATCH {"state":
"UploadComplete"}``) → ``InProgress`` → ``JobComplete`` or ``Failed``; ``Aborted`` on request. How long
``InProgress`` lasts is :class:`BulkProgress`: a number of status reads and/or seconds. Records are written
when the job completes, each row on its own (a bad row fails alone, in ``failedResults`` with ``sf__Error`` as
``CODE:message:fields --``); an unknown column fails the whole job ("InvalidBatch : Field name not found : X")
and leaves every row in ``unprocessedrecords``. Empty CSV values are ignored and ``#N/A`` sets null, as
documented. Result CSVs quote every value after the ``"sf__Id","sf__Created"``/``"sf__Id","sf__Error"`` columns,
like Salesforce's examples.

A query job (``POST jobs/query`` ``{"operation": "query"|"queryAll", "query": soql}``: a bad SOQL is refused there,
400 with the REST query's error; selecting a compound address or geolocation field is refused there too, 400
``API_ERROR`` "Selecting compound data not supported in Bulk Query") is created ``UploadComplete``, reads
``InProgress`` while it runs and runs its SOQL (:mod:`~airflow_opsflow_testing.salesforce_soql`) when it completes
(``JobComplete``, or ``Failed`` with an ``errorMessage``: ``FakeSalesforce.fail_next_bulk_job``); its job info adds
``jobType`` ``V2Query``, ``numberRecordsProcessed``, ``retries``, ``totalProcessingTime`` and
``isPkChunkingSupported``. Its results are CSV, every value quoted, the header row on every set (relationship
columns dotted: ``Account.Name``; null empty; dateTimes ``2024-05-01T12:00:00.000Z``); they page by ``maxRecords``
with an opaque ``Sforce-Locator`` ("null" on the last set) and ``Sforce-NumberOfRecords``; reading them before
``JobComplete`` is 412 ``JOB_NOT_COMPLETE``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_opsflow_testing.salesforce_schema import (
    COMPOUND_TYPES,
    JsonDict,
    SalesforceError,
    bad_request,
    make_id,
    not_found,
    record_error,
    sf_datetime,
)
from airflow_opsflow_testing.salesforce_soql import parse
from airflow_opsflow_testing.salesforce_store import SalesforceOrg

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
INGEST_OPS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPS = ("query", "queryAll")
FINISHED = ("JobComplete", "Failed", "Aborted")


@dataclass
class BulkProgress:
    """How long a job stays ``InProgress`` after upload: ``polls`` status reads and ``seconds`` seconds."""

    polls: int = 1
    seconds: float = 0.0


@dataclass
class BulkJob:
    id: str
    kind: str  # "ingest" | "query"
    operation: str
    object: str
    api_version: str
    created: str
    state: str
    external_id: str | None = None
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    query: str | None = None
    uploads: list[str] = field(default_factory=list)
    polls_left: int = 0
    ready_at: float = 0.0
    modstamp: str = ""
    error_message: str | None = None
    header: list[str] = field(default_factory=list)
    successful: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failed: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    result_rows: list[list[str]] = field(default_factory=list)  # query jobs: header excluded

    @property
    def delimiter(self) -> str:
        return DELIMITERS.get(self.column_delimiter, ",")

    @property
    def processed(self) -> int:
        return len(self.result_rows) if self.kind == "query" else len(self.successful) + len(self.failed)


class BulkApi:
    """The jobs of one org; the caller holds ``org.lock`` around every call."""

    def __init__(self, org: SalesforceOrg) -> None:
        self.org = org
        self.progress = BulkProgress()
        self.jobs: dict[str, BulkJob] = {}
        self.fail_next: list[str] = []  # errorMessages for the next jobs to complete
        self._count = 0

    # --- jobs ---------------------------------------------------------------------------------------------

    def _new(self, kind: str, operation: str, obj: str, version: str, state: str, body: JsonDict) -> BulkJob:
        self._count += 1
        now = sf_datetime(self.org.now())
        delimiter, ending = str(body.get("columnDelimiter") or "COMMA"), str(body.get("lineEnding") or "LF")
        if delimiter not in DELIMITERS or ending not in ("LF", "CRLF"):
            raise bad_request("INVALIDJOB", f"InvalidJob : Invalid columnDelimiter or lineEnding: {delimiter}, "
                              f"{ending}")
        job = BulkJob(make_id("750", self._count), kind, operation, obj, version, now, state,
                      column_delimiter=delimiter, line_ending=ending, modstamp=now)
        self.jobs[job.id] = job
        return job

    def create_ingest(self, body: Any, version: str) -> JsonDict:
        if not isinstance(body, dict):
            raise bad_request("JSON_PARSER_ERROR", "The request body must be a JSON object.")
        operation, name = str(body.get("operation") or ""), str(body.get("object") or "")
        if operation not in INGEST_OPS:
            raise bad_request("INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        obj = self.org.object(name)
        if obj is None:
            raise bad_request("INVALIDJOB", f"InvalidJob : Unable to find object: {name}")
        external = body.get("externalIdFieldName")
        if operation == "upsert":
            f = obj.field(str(external)) if external else None
            if not external:
                raise bad_request("INVALIDJOB", f"InvalidJob : External ID was blank for {obj.name}. An External "
                                  "ID must be specified for upsert.")
            if f is None or not (f.external_id or f.type == "id"):
                raise bad_request("INVALIDJOB", f"InvalidJob : Field name provided, {external} is not an External "
                                  f"ID or indexed field for {obj.name}")
            external = f.name
        job = self._new("ingest", operation, obj.name, version, "Open", body)
        job.external_id = external if operation == "upsert" else None
        return self.info(job, full=False)

    def create_query(self, body: Any, version: str) -> JsonDict:
        if not isinstance(body, dict):
            raise bad_request("JSON_PARSER_ERROR", "The request body must be a JSON object.")
        operation, soql = str(body.get("operation") or ""), str(body.get("query") or "")
        if operation not in QUERY_OPS:
            raise bad_request("INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        query = parse(soql, self.org.object, self.org.now().date())
        if any(c.field.type in COMPOUND_TYPES for c in query.columns):  # address, geolocation: REST/SOAP only
            raise bad_request("API_ERROR", "Selecting compound data not supported in Bulk Query")
        job = self._new("query", operation, query.obj.name, version, "UploadComplete", body)
        job.query = soql
        self._start(job)
        return self.info(job, full=False)

    def job(self, job_id: str, kind: str) -> BulkJob:
        job = self.jobs.get(job_id)
        if job is None or job.kind != kind:
            raise not_found()
        return job

    def upload(self, job: BulkJob, data: bytes) -> None:
        if job.state != "Open":
            raise SalesforceError(409, "INVALIDJOBSTATE", f"Job {job.id} is not Open (state {job.state}): "
                                  "its data can no longer change.")
        job.uploads.append(data.decode("utf-8-sig"))

    def set_state(self, job: BulkJob, body: Any) -> JsonDict:
        state = body.get("state") if isinstance(body, dict) else None
        if state == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
            job.state = "UploadComplete"
            self._start(job)
        elif state == "Aborted" and job.state not in FINISHED:
            job.state = "Aborted"
            if job.kind == "ingest":
                job.header, rows = self._rows(job)
                job.unprocessed = rows
        else:
            raise bad_request("INVALIDJOBSTATE", f"Can't change the state of job {job.id} from {job.state} to "
                              f"{state}.")
        job.modstamp = sf_datetime(self.org.now())
        return self.info(job, full=False)

    def delete(self, job: BulkJob) -> None:
        if job.state in ("Open", "InProgress"):
            raise bad_request("INVALIDJOBSTATE", f"Job {job.id} can't be deleted in state {job.state}.")
        del self.jobs[job.id]

    def _start(self, job: BulkJob) -> None:
        job.polls_left = self.progress.polls
        job.ready_at = time.monotonic() + self.progress.seconds

    def advance(self, job: BulkJob, poll: bool) -> None:
        """Move a processing job on: a status read counts as a poll; time counts on its own."""
        if job.state not in ("UploadComplete", "InProgress"):
            return
        if poll and job.polls_left > 0:
            job.polls_left -= 1
            job.state = "InProgress"
            return
        if job.polls_left > 0 or time.monotonic() < job.ready_at:
            if poll:
                job.state = "InProgress"
            return
        job.state = "InProgress"
        if self.fail_next:
            job.state, job.error_message = "Failed", self.fail_next.pop(0)
            if job.kind == "ingest":
                job.header, job.unprocessed = self._rows(job)
        elif job.kind == "ingest":
            self._ingest(job)
        else:
            self._query(job)
        job.modstamp = sf_datetime(self.org.now())

    # --- processing -------------------------------------------------------------------------------------

    def _rows(self, job: BulkJob) -> tuple[list[str], list[list[str]]]:
        header: list[str] = []
        rows: list[list[str]] = []
        for upload in job.uploads:
            parsed = [r for r in csv.reader(io.StringIO(upload), delimiter=job.delimiter) if r]
            if parsed:
                header = header or parsed[0]
                rows.extend(parsed[1:])
        return header, rows

    def _ingest(self, job: BulkJob) -> None:
        obj = self.org.resolve(job.object)
        job.header, rows = self._rows(job)
        unknown = next((h for h in job.header if obj.field(h) is None), None)
        if unknown is None and job.external_id and not any(h.lower() == job.external_id.lower()
                                                           for h in job.header):
            unknown = job.external_id
        if unknown is not None:
            job.state, job.error_message = "Failed", f"InvalidBatch : Field name not found : {unknown}"
            job.unprocessed = rows
            return
        for row in rows:
            values = {h: (None if v == "#N/A" else v) for h, v in zip(job.header, row, strict=False) if v != ""}
            record_id = next((str(v) for k, v in values.items() if k.lower() == "id" and v), "")
            try:
                saved, created = self._save(job, values, record_id)
            except SalesforceError as e:
                job.failed.append((record_id, e.bulk(), row))
            else:
                job.successful.append((saved, created, row))
        job.state = "JobComplete"

    def _save(self, job: BulkJob, values: dict[str, Any], record_id: str) -> tuple[str, bool]:
        obj = self.org.resolve(job.object)
        if job.operation == "insert":
            return self.org.create(obj, values, "bulk").id, True
        if job.operation in ("delete", "hardDelete"):
            if not record_id:
                raise record_error("MISSING_ARGUMENT", "Id not specified in a delete call")
            return self.org.delete(record_id, obj, "bulk").id, False
        if job.operation == "update":
            if not record_id:
                raise record_error("MISSING_ARGUMENT", "Id not specified in an update call")
            rest = {k: v for k, v in values.items() if k.lower() != "id"}
            return self.org.update(obj, record_id, rest, "bulk").id, False
        assert job.external_id is not None
        f = obj.field(job.external_id)
        assert f is not None
        key = next((v for k, v in values.items() if k.lower() == f.name.lower()), None)
        if key is None:
            if f.type == "id":
                return self.org.create(obj, {k: v for k, v in values.items() if k.lower() != "id"}, "bulk").id, True
            raise record_error("MISSING_ARGUMENT", f"{f.name} not specified")
        record, created = self.org.upsert(obj, f, key, values, "bulk")
        return record.id, created

    def _query(self, job: BulkJob) -> None:
        assert job.query is not None
        query = parse(job.query, self.org.object, self.org.now().date())
        rows = [r.fields for r in self.org.live(query.obj, deleted=job.operation == "queryAll")]
        found = query.run(rows)
        if query.count:
            job.header, job.result_rows = ["expr0"], [[str(len(found))]]
        else:
            def parent(value: Any) -> dict[str, Any] | None:
                record = self.org.lookup(value)
                return record.fields if record is not None else None

            job.header = [c.name for c in query.columns]  # relationship columns dotted: "Account.Name"
            job.result_rows = [[_csv_value(c.field.type, c.value(r, parent)) for c in query.columns] for r in found]
        job.state = "JobComplete"

    # --- answers ----------------------------------------------------------------------------------------

    def info(self, job: BulkJob, full: bool) -> JsonDict:
        out: JsonDict = {"id": job.id, "operation": job.operation, "object": job.object,
                         "createdById": self.org.user_id, "createdDate": job.created,
                         "systemModstamp": job.modstamp, "state": job.state}
        if job.external_id:
            out["externalIdFieldName"] = job.external_id
        out.update({"concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(job.api_version)})
        if job.kind == "ingest" and job.state == "Open":
            out["contentUrl"] = f"services/data/v{job.api_version}/jobs/ingest/{job.id}/batches"
        out.update({"lineEnding": job.line_ending, "columnDelimiter": job.column_delimiter})
        if full:
            out["jobType"] = "V2Ingest" if job.kind == "ingest" else "V2Query"
            out["numberRecordsProcessed"] = job.processed
            if job.kind == "ingest":
                out["numberRecordsFailed"] = len(job.failed)
            out.update({"retries": 0, "totalProcessingTime": 0})
            if job.kind == "ingest":
                out.update({"apiActiveProcessingTime": 0, "apexProcessingTime": 0})
            else:
                out["isPkChunkingSupported"] = True  # standard objects here and custom objects all chunk
            if job.error_message:
                out["errorMessage"] = job.error_message
        return out

    def list_jobs(self, kind: str) -> JsonDict:
        records = [self.info(j, full=False) | {"jobType": "V2Ingest" if kind == "ingest" else "V2Query"}
                   for j in self.jobs.values() if j.kind == kind]
        return {"done": True, "records": records, "nextRecordsUrl": None}

    def ingest_results(self, job: BulkJob, which: str) -> str:
        quoted = _writer_line(job, job.header, quote=False)
        if which == "successfulResults":
            rows = [[rid, "true" if created else "false", *row] for rid, created, row in job.successful]
            return _head(job, ["sf__Id", "sf__Created"], quoted) + _rows(job, rows)
        if which == "failedResults":
            rows = [[rid, error, *row] for rid, error, row in job.failed]
            return _head(job, ["sf__Id", "sf__Error"], quoted) + _rows(job, rows)
        return (quoted + _eol(job) if job.header else "") + _rows(job, job.unprocessed)

    def query_results(self, job: BulkJob, locator: str | None, max_records: int | None) -> tuple[str, str, int]:
        """(CSV page, next locator or "null", records in the page)."""
        if job.state != "JobComplete":
            status = {"UploadComplete": "UPLOAD_COMPLETE", "InProgress": "IN_PROGRESS"}.get(job.state,
                                                                                       job.state.upper())
            raise SalesforceError(412, "JOB_NOT_COMPLETE", "can only download query results of successfully "
                                  f"completed bulk job with status: JOB_COMPLETE. Current status: {status}")
        start = _offset(locator)
        size = max_records if max_records and max_records > 0 else 50_000
        page = job.result_rows[start:start + size]
        following = start + len(page)
        next_locator = _locator(following) if following < len(job.result_rows) else "null"
        text = _writer_line(job, job.header, quote=True) + _eol(job) + _rows(job, page)
        return text, next_locator, len(page)


def _csv_value(kind: str, value: Any) -> str:
    """A value as a results CSV writes it: null empty, booleans ``true``/``false``, dateTimes in the
    xsd:dateTime form of the SOAP and Bulk APIs (``2024-05-01T12:00:00.000Z``, where REST JSON has ``+0000``)."""
    if value is None:
        return ""
    if kind == "datetime" and isinstance(value, str) and value.endswith("+0000"):
        return value.removesuffix("+0000") + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _eol(job: BulkJob) -> str:
    return "\r\n" if job.line_ending == "CRLF" else "\n"


def _writer_line(job: BulkJob, values: list[str], quote: bool) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=job.delimiter, lineterminator="",
               quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL).writerow(values)
    return buffer.getvalue()


def _head(job: BulkJob, sf_columns: list[str], original: str) -> str:
    head = job.delimiter.join(f'"{c}"' for c in sf_columns)
    return head + (job.delimiter + original if job.header else "") + _eol(job)


def _rows(job: BulkJob, rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=job.delimiter, lineterminator=_eol(job), quoting=csv.QUOTE_ALL).writerows(rows)
    return buffer.getvalue()


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str | None) -> int:
    if not locator or locator == "null":
        return 0
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except (ValueError, binascii.Error):
        raise bad_request("INVALID_LOCATOR", f"Invalid locator: {locator}") from None
