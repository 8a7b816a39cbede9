"""Bulk API 2.0 ingest jobs for the Salesforce destination: one job per batch, resumed rather than run twice.

A job goes: create (``POST jobs/ingest``), upload its CSV (``PUT jobs/ingest/{id}/batches``), ``UploadComplete``,
poll with backoff (doubling from ``poll[0]`` to ``poll[1]`` seconds) until ``JobComplete``/``Failed``/``Aborted``
(after ``timeout`` seconds it is aborted: what it processed counts, the rest was not written), then read its
``successfulResults`` and ``failedResults`` (only those it has, as ``numberRecordsProcessed``/``Failed`` say).
Rows in neither were not processed (``unprocessedrecords`` is their complement: not read, one request less).

Lost answers and retries (the engine repeats a batch after a transient error):

* a job is remembered by its batch's ``tag`` from creation to its results, so a repeated batch resumes it
  (re-reads its state, polls, fetches its results) instead of creating a second job;
* create, upload and ``UploadComplete`` go on fresh connections (libcurl never re-sends them silently);
* a lost create leaves at most an empty ``Open`` job, which Salesforce never processes; a failed or lost upload
  aborts the job (its data is uncertain, and an aborted job is never processed) and the batch gets a new one;
* a lost ``UploadComplete`` is resolved by reading the job's state (``Open``: not taken, send it again);
* a worker killed mid-job leaves the job running to completion; the engine's write-ahead marks then send those
  records again in a new job. An upsert by external id is idempotent, so the second job writes the same
  values to the same records: nothing is duplicated (a delete job repeated finds the records already gone).
  Such a job could still be queued when the next run writes newer values, and then overwrite them: so before
  its first write a run waits for the object's upsert and delete jobs still queued or running (:meth:`settle`).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationFailed, TransientError
from airflow_opsflow.sync.destinations.salesforce_api import DATA_PATH, SalesforceApi

log = logging.getLogger(__name__)
FINISHED = frozenset({"JobComplete", "Failed", "Aborted"})
_RUNNING = frozenset({"UploadComplete", "InProgress"})
# errorMessage prefixes of jobs that failed because of what was asked (columns, object): no retry helps
_CONFIG_FAILURES = ("InvalidBatch", "InvalidJob", "ClientInputError", "InvalidSessionId")
_LIST_PAGES = 50  # pages of the org's job list read by settle() at most


@dataclass
class JobResult:
    """A finished job: the Salesforce id of each successful row, the error of each failed row (by key)."""

    job_id: str
    state: str
    error: str | None = None
    ok: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Job:
    id: str
    phase: str = "open"  # open (created) -> uploaded -> running -> finished
    started: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class BulkIngest:
    """Run Bulk API 2.0 ingest jobs on ``object_name``.

    :param api: the org.
    :param object_name: the sObject.
    :param timeout: seconds a job may run before it is aborted.
    :param poll: first and longest wait between status reads.
    """

    def __init__(self, api: SalesforceApi, object_name: str, timeout: float = 1800.0,
                 poll: tuple[float, float] = (0.25, 10.0)) -> None:
        self.api = api
        self.object_name = object_name
        self.timeout = timeout
        self.poll = poll
        self._jobs: dict[Hashable, _Job] = {}  # tag -> the job of a batch not yet answered
        self._lock = threading.Lock()

    def run(self, tag: Hashable, operation: str, data: bytes, key_column: str,
            external_id: str | None = None) -> JobResult:
        """Run (or resume) the job of the batch ``tag``: ``data`` is its CSV, ``key_column`` names its rows."""
        with self._lock:
            job = self._jobs.get(tag)
        if job is None:
            job = self._create(operation, external_id)
            with self._lock:
                self._jobs[tag] = job
        if job.phase == "open":
            try:
                self.api.request("PUT", f"jobs/ingest/{job.id}/batches", raw=data,
                                 headers={"Content-Type": "text/csv", "Accept": "application/json"}, once=True)
            except (TransientError, BatchRejected) as e:
                self.forget(tag)
                self._abort(job)
                if isinstance(e, BatchRejected):
                    raise DestinationFailed(f"{self.api.what}: Salesforce refused the upload of Bulk API 2.0 job "
                                            f"{job.id}: {e}") from None
                raise
            job.phase = "uploaded"
        if job.phase == "uploaded":
            self._complete_upload(job)
            job.phase, job.started = "running", time.monotonic()
        if job.phase == "running":
            job.info = self._wait(job)
            job.phase = "finished"
        try:
            result = self._results(job, key_column)
        except DestinationFailed:
            self.forget(tag)
            raise
        self.forget(tag)
        took = time.monotonic() - job.started if job.started else 0.0
        log.info("%s: Bulk API 2.0 %s job %s: %s in %.1f s (%d written, %d failed)", self.api.what, operation,
                 job.id, result.state, took, len(result.ok), len(result.failed))
        return result

    def settle(self) -> int:
        """Wait for this object's upsert and delete jobs still queued or running (a killed run's: it would
        write older values after this run's newer ones); how many there were."""
        answer = self.api.get("jobs/ingest")
        running: list[str] = []
        for _ in range(_LIST_PAGES):
            page = answer.json() or {}
            running += [str(j.get("id")) for j in page.get("records") or []
                        if str(j.get("object", "")).lower() == self.object_name.lower()
                        and j.get("operation") in ("upsert", "delete") and j.get("state") in _RUNNING]
            following = page.get("nextRecordsUrl")
            if page.get("done", True) or not following:
                break
            answer = self.api.get(DATA_PATH.sub("", str(following)))
        for job_id in running:
            log.warning("%s: Bulk API 2.0 job %s, started earlier (by a run that was stopped?), is still running: "
                        "waiting for it before writing", self.api.what, job_id)
            job = _Job(job_id, "running", time.monotonic())
            self._wait(job)
        return len(running)

    def forget(self, tag: Hashable) -> None:
        with self._lock:
            self._jobs.pop(tag, None)

    def _create(self, operation: str, external_id: str | None) -> _Job:
        body: dict[str, Any] = {"object": self.object_name, "operation": operation, "contentType": "CSV",
                                "columnDelimiter": "COMMA", "lineEnding": "LF"}
        if external_id:
            body["externalIdFieldName"] = external_id
        try:
            answer = self.api.request("POST", "jobs/ingest", body, once=True)
        except BatchRejected as e:
            raise DestinationFailed(f"{self.api.what}: Salesforce refused the Bulk API 2.0 {operation} job: "
                                    f"{e}") from None
        job_id = str((answer.json() or {}).get("id") or "")
        if not job_id:
            raise TransientError(f"{self.api.what}: the Bulk API 2.0 job create answered no job id")
        return _Job(job_id)

    def _complete_upload(self, job: _Job) -> None:
        try:
            self.api.request("PATCH", f"jobs/ingest/{job.id}", {"state": "UploadComplete"}, once=True)
        except (TransientError, BatchRejected) as e:
            # Taken or not? The job's state tells (a lost answer, or a repeat of one that was taken).
            if self._info(job).get("state") != "Open":
                return
            if isinstance(e, BatchRejected):
                raise DestinationFailed(f"{self.api.what}: Bulk API 2.0 job {job.id}: {e}") from None
            raise

    def _info(self, job: _Job) -> dict[str, Any]:
        info = self.api.get(f"jobs/ingest/{job.id}").json() or {}
        return info if isinstance(info, dict) else {}

    def _wait(self, job: _Job) -> dict[str, Any]:
        """Poll until the job finished; past the deadline, abort it and take what it did."""
        delay, longest = self.poll
        deadline = job.started + self.timeout
        while True:
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            try:
                info = self._info(job)
            except TransientError:  # a lost or failed status read: read it again
                info = {}
            if info.get("state") in FINISHED:
                return info
            if time.monotonic() >= deadline:
                log.warning("%s: Bulk API 2.0 job %s still %s after %.0f s: aborted (the records it did not "
                            "process are sent again by a later run)", self.api.what, job.id, info.get("state"),
                            self.timeout)
                self._abort(job)
                info = self._info(job)
                if info.get("state") in FINISHED:
                    return info
            delay = min(delay * 2, longest)

    def _abort(self, job: _Job) -> None:
        try:
            self.api.request("PATCH", f"jobs/ingest/{job.id}", {"state": "Aborted"}, once=True)
        except (TransientError, BatchRejected, DestinationFailed) as e:
            log.debug("%s: aborting Bulk API 2.0 job %s: %s", self.api.what, job.id, e)

    def _results(self, job: _Job, key_column: str) -> JobResult:
        info = job.info
        state, error = str(info.get("state")), info.get("errorMessage")
        if state == "Failed" and str(error or "").startswith(_CONFIG_FAILURES):
            raise DestinationFailed(f"{self.api.what}: Bulk API 2.0 job {job.id} failed: {error}")
        result = JobResult(job.id, state, str(error) if error else None)
        processed, failed = int(info.get("numberRecordsProcessed") or 0), int(info.get("numberRecordsFailed") or 0)
        if processed - failed > 0:
            for row in self._csv(job, "successfulResults"):
                result.ok[row_key(row.get(key_column))] = str(row.get("sf__Id") or "")
        if failed > 0:
            for row in self._csv(job, "failedResults"):
                result.failed[row_key(row.get(key_column))] = str(row.get("sf__Error") or "rejected")
        return result

    def _csv(self, job: _Job, which: str) -> list[dict[str, str]]:
        answer = self.api.get(f"jobs/ingest/{job.id}/{which}", accept="text/csv")
        return list(csv.DictReader(io.StringIO(answer.body.decode("utf-8-sig"))))


def row_key(value: Any) -> str:
    """How rows are matched to their results: Salesforce echoes the uploaded values; external ids compare
    without case (unless the field is case-sensitive, a rare choice: two such keys are refused as duplicates)."""
    return str(value or "").strip().lower()


def encode_csv(columns: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode()
