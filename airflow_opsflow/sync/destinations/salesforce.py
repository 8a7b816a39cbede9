"""Salesforce sObjects (Account, Contact, custom objects) upserted by an external id; deletes for mirror mode.

How batches go (``api``):

* ``collections``: the engine's batches are 200 records, one ``PATCH composite/sobjects/{obj}/{ExtIdField}``
  each (``allOrNone: false``: one result per record; its Id is kept as the record's ref, its errors are mapped
  to its key). A request refused as a whole (400) is split by the engine down to the bad record.
* ``bulk``: batches of up to 100,000 records, each one Bulk API 2.0 upsert job
  (:mod:`~airflow_opsflow.sync.destinations.salesforce_bulk`: CSV, polling, per-row results by external id).
* ``auto`` (default): the engine's batches are up to 100,000 records, filled before they are sent, so a batch
  holds all the run's changes or 100,000 of them. A batch of ``bulk_threshold`` records or more goes as one
  Bulk job (6 requests whatever its size), a smaller one through Collections, 200 records a request,
  ``concurrency`` requests at once. There a request refused whole is split here down to the
  bad record, and when one fails transiently the engine repeats the batch: the requests Salesforce already
  answered are not sent again (their outcomes are kept until the batch is answered).

An upsert by external id re-sent after a lost answer (or by a run after a killed one) writes the same values to
the same record, so it is harmless; a Bulk job is resumed rather than run twice (see its module).

Deletes (mirror) go by the record Id the upsert answered, or, for a record a killed run may have created before
its Id was recorded, by the Id a SOQL query finds for its external id: ``DELETE composite/sobjects?ids=`` (200
a request) or a Bulk delete job for a full batch. A record already gone counts as deleted.

A run makes no request beyond its writes (none at all, not even a login, when nothing changed). The object's
describe is read only when Salesforce refuses something the configuration may cause (a request or a Bulk job refused
whole, or a record error such as ``INVALID_FIELD_FOR_INSERT_UPDATE``): the object must exist, the external id field
must be an External ID, and every mapped field must exist and be createable and updateable; otherwise the run stops
there, naming what is wrong, with nothing written (Salesforce refuses such writes whole). When only some records of
a batch were refused so (a field only some records set) and Salesforce wrote the others, their outcomes are kept and
the refused records' errors name the problem (logged once as an error). Before the first write of a record a killed
run left unconfirmed (``Record.pending``), the run waits for the object's Bulk jobs still running: such a job would
otherwise overwrite the newer values.

Values go as mapped in JSON; in Bulk CSV, null and empty values become ``#N/A`` (an empty cell would leave the
field unchanged) and booleans ``true``/``false``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, TypeVar

from airflow_opsflow.sync.destinations.base import (
    OK,
    BatchRejected,
    DestinationClient,
    DestinationFailed,
    Operation,
    Outcome,
    Record,
    TransientError,
)
from airflow_opsflow.sync.destinations.salesforce_api import SalesforceApi, record_errors, soql_literal
from airflow_opsflow.sync.destinations.salesforce_bulk import BulkIngest, JobResult, encode_csv, row_key
from airflow_opsflow.sync.destinations.transport import Answer

log = logging.getLogger(__name__)
T = TypeVar("T")

API_CHOICES = ("auto", "collections", "bulk")
COLLECTION_MAX = 200  # records per sObject Collections request
BULK_MAX = 100_000  # records per engine batch (one job) at most
UPLOAD_MAX = 100_000_000  # bytes of CSV per job (Bulk API 2.0 takes 150 MB; Salesforce advises staying at 100)
BULK_ROUNDS = 2  # jobs per batch: the first, and one more for the rows a job left unprocessed
BULK_REQUESTS = 6  # create, upload, UploadComplete, ~2 status reads, successfulResults (dry-run estimates)
SOQL_IN = 200  # values per SOQL IN list
BY_EXTERNAL_ID = "@"  # a ref holding the external id value, not the record Id (ids never start with it)
GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})  # a delete of an absent record
# record errors the configuration may cause (a field that does not exist or cannot be written): describe then
CONFIG_ERRORS = ("INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE", "INVALID_TYPE", "NOT_FOUND")


class Misconfigured(DestinationFailed):
    """The object's describe shows what no retry fixes: no such object or field, not an External ID..."""


@dataclass
class _Progress:
    """What Salesforce already answered for a batch the engine may repeat (by index in the batch)."""

    done: dict[int, Outcome] = field(default_factory=dict)
    rounds: int = 0
    last: JobResult | None = None


class SalesforceObjectsClient(DestinationClient):
    """Upsert records into a Salesforce sObject by an external id field (and delete them in mirror mode). The
    engine side of :class:`~airflow_opsflow.destinations.salesforce.SalesforceObjects`.

    :param api: the org (logged in lazily).
    :param object_name: the sObject's API name (``Account``, ``Warehouse_Account__c``).
    :param external_id_field: an External ID field of the object (``Warehouse_Id__c``); it must be mapped.
    :param api_choice: ``auto``, ``collections`` or ``bulk`` (see the module).
    :param bulk_threshold: with ``auto``, a batch of this many records or more goes as a Bulk API 2.0 job, a
        smaller one through sObject Collections.
    :param concurrency: Collections requests of one batch in flight at once.
    :param bulk_timeout: seconds a Bulk job may run before it is aborted.
    :param poll: first and longest wait between a Bulk job's status reads.
    """

    name: ClassVar[str] = "Salesforce"
    max_batch: ClassVar[int] = COLLECTION_MAX
    operations: ClassVar[frozenset[str]] = frozenset({"upsert", "delete"})
    plans_refs: ClassVar[bool] = True

    def __init__(self, api: SalesforceApi, object_name: str, external_id_field: str, api_choice: str = "auto",
                 bulk_threshold: int = 2_000, concurrency: int = 4, bulk_timeout: float = 1800.0,
                 poll: tuple[float, float] = (0.25, 10.0)) -> None:
        check_settings(object_name, external_id_field, api_choice, bulk_threshold)
        self.api = api
        self.object_name = object_name
        self.external_id_field = external_id_field
        self.api_choice = api_choice
        self.bulk_threshold = bulk_threshold
        self.concurrency = max(1, concurrency)
        self.name = f"Salesforce {object_name}"  # type: ignore[misc]
        self.max_batch = COLLECTION_MAX if api_choice == "collections" else BULK_MAX  # type: ignore[misc]
        self.batch_size = COLLECTION_MAX if api_choice == "collections" else BULK_MAX
        self.bulk = BulkIngest(api, object_name, bulk_timeout, poll)
        self._ext = external_id_field  # the mapped field's name as written in the mapping (preflight)
        self._fields: list[str] = [external_id_field]
        self._described: dict[str, dict[str, Any]] | None = None  # lower-case field name -> describe
        self._problem: str | None = None  # what the describe found wrong: the run's later batches keep it
        self._logged = False
        self._settled = False
        self._check_lock = threading.Lock()
        self._lock = threading.Lock()
        self._progress: dict[Hashable, _Progress] = {}
        self._pool: ThreadPoolExecutor | None = None

    # -- configuration ---------------------------------------------------------------------------------

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        self._fields = list(fields)
        mapped = [f for f in fields if f.lower() == self.external_id_field.lower()]
        if not mapped:
            return [f"external_id_field {self.external_id_field!r} must be mapped (Salesforce upserts by it)"]
        self._ext = mapped[0]
        return []

    def fingerprint(self) -> Any:
        # Not the API choice: Collections and Bulk write the same records.
        return ["salesforce", self.object_name.lower(), self.external_id_field.lower()]

    def planned_ref(self, record: Record) -> str | None:
        # Salesforce assigns the Id; until it is known, the ref names the record by its external id.
        value = (record.fields or {}).get(self._ext)
        return None if _empty(value) else BY_EXTERNAL_ID + str(value)

    def _check(self) -> None:
        """Read the object's describe (once a run): stop the run on what no retry fixes."""
        if self._described is not None:
            return
        with self._check_lock:
            if self._described is not None:
                return
            if self._problem is not None:  # one describe a run
                raise Misconfigured(self._problem)
            try:
                answer = self.api.get(f"sobjects/{self.object_name}/describe")
            except DestinationFailed as e:
                if "HTTP 404" not in str(e):
                    raise
                raise Misconfigured(f"{self.name}: Salesforce has no sObject {self.object_name!r} (or the "
                                        "connection's user cannot see it). Check the object's API name (a custom "
                                        "object's ends in __c)") from None
            described = {str(f.get("name", "")).lower(): f for f in (answer.json() or {}).get("fields") or []}
            problems = []
            ext = described.get(self.external_id_field.lower())
            if ext is None:
                problems.append(f"it has no field {self.external_id_field!r}")
            elif not ext.get("externalId"):
                problems.append(f"{ext.get('name')} is not an External ID field (upserts need one: tick "
                                "'External ID', and 'Unique', in the field's settings)")
            unknown = [f for f in self._fields if f.lower() not in described and f != self._ext]
            if unknown:
                problems.append(f"it has no field(s) {', '.join(unknown)}")
            locked = [f for f in self._fields if f.lower() in described
                      and not (described[f.lower()].get("createable") and described[f.lower()].get("updateable"))]
            if locked:
                problems.append(f"{', '.join(locked)} cannot be written (not createable and updateable)")
            if problems:
                self._problem = (f"{self.name}: " + "; ".join(problems) + ". Check that the mapping names the "
                                 "fields' API names and that the connection's user may edit them")
                raise Misconfigured(self._problem)
            self._described = described

    # -- sending ---------------------------------------------------------------------------------------

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        if op not in self.operations:
            raise DestinationFailed(f"{self.name} cannot {op} records (only upsert, and delete for mirror)")
        if not self._settled and any(r.pending for r in records):
            with self._check_lock:
                if not self._settled:
                    self.bulk.settle()  # a killed run's job still queued would overwrite the newer values
                    self._settled = True
        outcomes = self._delete(records) if op == "delete" else self._upsert(records)
        if self._described is None and any(o.status == "error" and _config_error(o.error) for o in outcomes):
            try:
                self._check()
            except Misconfigured as e:
                written = sum(o.status != "error" for o in outcomes)
                if not written:
                    raise
                # Records Salesforce confirmed in this batch (allOrNone false, a Bulk job's rows) are written:
                # failing the batch would lose their state and refs. The refused ones keep the explanation.
                if not self._logged:
                    self._logged = True
                    log.error("%s (%d record(s) of the batch written, the others refused)", e, written)
                outcomes = [Outcome("error", f"{o.error} ({e})") if o.status == "error" and _config_error(o.error)
                            else o for o in outcomes]
        return outcomes

    def _explained(self, call: Callable[[], T]) -> T:
        """``call()``; refused as a whole, first look for a configuration mistake (describe, once a run),
        before the batch is split record by record."""
        try:
            return call()
        except (BatchRejected, DestinationFailed) as refused:
            try:
                self._check()
            except Misconfigured:
                raise
            except (DestinationFailed, TransientError):
                pass  # the describe failed as well: the refusal itself says more
            raise refused

    def _use_bulk(self, batch: int) -> bool:
        return self.api_choice == "bulk" or (self.api_choice == "auto" and batch >= self.bulk_threshold)

    def _upsert(self, records: Sequence[Record]) -> list[Outcome]:
        out: list[Outcome | None] = [None] * len(records)
        valid = []
        for i, r in enumerate(records):
            if _empty((r.fields or {}).get(self._ext)):
                out[i] = Outcome("error", f"{self.external_id_field} is empty: Salesforce upserts records by it")
            else:
                valid.append(i)
        chosen = [records[i] for i in valid]
        if not chosen:
            results: list[Outcome] = []
        elif self._use_bulk(len(records)):
            results = self._bulk_upsert(_tag("upsert", records), chosen)
        elif len(chosen) <= COLLECTION_MAX:
            results = self._upsert_request(chosen)
        else:
            results = self._in_parallel(_tag("upsert", records), chosen, self._upsert_request)
        for i, outcome in zip(valid, results, strict=True):
            out[i] = outcome
        return _filled(out)

    def _upsert_request(self, records: Sequence[Record]) -> list[Outcome]:
        body = {"allOrNone": False,
                "records": [{"attributes": {"type": self.object_name}, **(r.fields or {})} for r in records]}
        answer = self._explained(lambda: self.api.request(
            "PATCH", f"composite/sobjects/{self.object_name}/{self.external_id_field}", body))
        return self._per_record(answer, len(records), deleting=False)

    def _per_record(self, answer: Answer, count: int, deleting: bool) -> list[Outcome]:
        results = answer.json()
        if not isinstance(results, list) or len(results) != count:
            raise TransientError(f"{self.name}: Salesforce answered {len(results) if isinstance(results, list) else 0}"
                                 f" results for {count} records")
        out = []
        for res in results:
            if res.get("success"):
                out.append(OK if deleting or not res.get("id") else Outcome(ref=str(res["id"])))
                continue
            errors = res.get("errors") or []
            if deleting and errors and all(e.get("statusCode") in GONE for e in errors):
                out.append(OK)  # already gone
            else:
                out.append(Outcome("error", record_errors(errors)))
        return out

    def _bulk_upsert(self, tag: Hashable, records: Sequence[Record]) -> list[Outcome]:
        ext = self._ext
        columns = [ext, *(f for f in self._fields if f != ext)]
        out: list[Outcome | None] = [None] * len(records)
        seen: dict[str, int] = {}
        rows, keys, where = [], [], []
        for i, r in enumerate(records):
            fields = r.fields or {}
            key = row_key(fields.get(ext))
            if key in seen:  # results are matched by external id: two rows with one would be ambiguous
                out[i] = Outcome("error", f"DUPLICATE_EXTERNAL_ID: {ext} {fields.get(ext)!r} is also the value of "
                                          f"key {records[seen[key]].key} in this batch")
                continue
            seen[key] = i
            rows.append([csv_value(fields.get(c, _ABSENT)) for c in columns])
            keys.append(key)
            where.append(i)
        results = self._bulk(tag, "upsert", columns, rows, keys, deleting=False)
        for i, outcome in zip(where, results, strict=True):
            out[i] = outcome
        return _filled(out)

    def _bulk(self, tag: Hashable, operation: str, columns: list[str], rows: list[list[str]], keys: list[str],
              deleting: bool) -> list[Outcome]:
        """Rows through Bulk jobs (a job, then one more for the rows it left unprocessed); outcomes in order."""
        data = encode_csv(columns, rows)
        if len(data) > UPLOAD_MAX and len(rows) > 1:
            mid = len(rows) // 2
            return (self._bulk((tag, "a"), operation, columns, rows[:mid], keys[:mid], deleting)
                    + self._bulk((tag, "b"), operation, columns, rows[mid:], keys[mid:], deleting))
        progress = self._progress_of(tag)
        external_id = self.external_id_field if operation == "upsert" else None
        while True:
            pending = [i for i in range(len(rows)) if i not in progress.done]
            if not pending or progress.rounds >= BULK_ROUNDS or (progress.last and progress.last.state == "Aborted"):
                break
            if progress.rounds:
                log.warning("%s: Bulk API 2.0 job %s left %d record(s) unprocessed (%s): sending them in a new job",
                            self.name, progress.last.job_id if progress.last else "?", len(pending),
                            progress.last.error if progress.last else "")
                data = encode_csv(columns, [rows[i] for i in pending])
            result = self._explained(partial(self.bulk.run, (tag, progress.rounds), operation, data, columns[0],
                                             external_id))
            progress.rounds += 1
            progress.last = result
            for i in pending:
                if keys[i] in result.ok:
                    progress.done[i] = OK if deleting or not result.ok[keys[i]] else Outcome(ref=result.ok[keys[i]])
                elif keys[i] in result.failed:
                    progress.done[i] = _bulk_failed(result.failed[keys[i]], deleting)
        self._forget(tag)
        last = progress.last
        if pending and last is not None:
            why = f"Bulk API 2.0 job {last.job_id} ended {last.state}" + (f": {last.error}" if last.error else "")
            if len(pending) == len(rows):
                raise TransientError(f"{self.name}: {why}, with none of the batch's records processed")
            for i in pending:
                progress.done[i] = Outcome("error", f"not processed ({why}); sent again by the next run")
        return [progress.done[i] for i in range(len(rows))]

    def _in_parallel(self, tag: Hashable, items: Sequence[T], one: Callable[[Sequence[T]], list[Outcome]],
                     ) -> list[Outcome]:
        """``items`` in requests of 200, ``concurrency`` at once; the engine repeats a batch that failed
        transiently, and then only the requests not yet answered go out."""
        progress = self._progress_of(tag)
        spans = [(a, min(a + COLLECTION_MAX, len(items))) for a in range(0, len(items), COLLECTION_MAX)]
        spans = [(a, b) for a, b in spans if any(i not in progress.done for i in range(a, b))]
        pool = self._executor()
        futures = [(a, pool.submit(self._isolating, one, items[a:b])) for a, b in spans]
        transient: TransientError | None = None
        failed: DestinationFailed | None = None
        for a, future in futures:
            try:
                outcomes = future.result()
            except TransientError as e:
                transient = e if transient is None or (e.rate_limited and not transient.rate_limited) else transient
                continue
            except DestinationFailed as e:
                failed = failed or e
                continue
            for k, outcome in enumerate(outcomes):
                progress.done[a + k] = outcome
        if failed is not None:
            self._forget(tag)
            raise failed
        if transient is not None:
            raise transient
        self._forget(tag)
        return [progress.done[i] for i in range(len(items))]

    def _isolating(self, one: Callable[[Sequence[T]], list[Outcome]], items: Sequence[T]) -> list[Outcome]:
        """One request; refused as a whole, split in halves down to the refused record."""
        try:
            return one(items)
        except BatchRejected as e:
            if len(items) == 1:
                return [Outcome("error", str(e))]
            mid = len(items) // 2
            return self._isolating(one, items[:mid]) + self._isolating(one, items[mid:])

    # -- deletes ---------------------------------------------------------------------------------------

    def _delete(self, records: Sequence[Record]) -> list[Outcome]:
        out: list[Outcome | None] = [None] * len(records)
        ids: dict[int, str] = {}
        lookups: dict[str, list[int]] = {}  # external id value -> indexes
        for i, r in enumerate(records):
            if not r.ref:
                out[i] = Outcome("error", "no Salesforce record id recorded for this key")
            elif r.ref.startswith(BY_EXTERNAL_ID):
                lookups.setdefault(r.ref[len(BY_EXTERNAL_ID):], []).append(i)
            else:
                ids[i] = r.ref
        if lookups:  # written by a killed run, its Id never recorded: find it (absent: nothing to delete)
            found = self._ids_by_external_id(list(lookups))
            for value, where in lookups.items():
                for i in where:
                    record_id = found.get(row_key(value))
                    if record_id:
                        ids[i] = record_id
                    else:
                        out[i] = OK
        unique = list(dict.fromkeys(ids.values()))
        if unique:
            tag = _tag("delete", records)
            if self._use_bulk(len(records)):
                results = self._bulk(tag, "delete", ["Id"], [[x] for x in unique], [row_key(x) for x in unique],
                                     deleting=True)
            elif len(unique) <= COLLECTION_MAX:
                results = self._delete_request(unique)
            else:
                results = self._in_parallel(tag, unique, self._delete_request)
            by_id = dict(zip(unique, results, strict=True))
            for i, record_id in ids.items():
                out[i] = by_id[record_id]
        return _filled(out)

    def _delete_request(self, ids: Sequence[str]) -> list[Outcome]:
        answer = self._explained(lambda: self.api.request(
            "DELETE", f"composite/sobjects?ids={','.join(ids)}&allOrNone=false"))
        return self._per_record(answer, len(ids), deleting=True)

    def _ids_by_external_id(self, values: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        ext = self.external_id_field
        for start in range(0, len(values), SOQL_IN):
            # SOQL, not SQL: names are checked API names, values quoted literals
            chunk = ", ".join(soql_literal(v) for v in values[start:start + SOQL_IN])
            soql = f"SELECT Id, {ext} FROM {self.object_name} WHERE {ext} IN ({chunk})"  # noqa: S608
            for rec in self.api.query(soql):
                found.setdefault(row_key(_get(rec, ext)), str(rec.get("Id")))
        return found

    # -- dry runs --------------------------------------------------------------------------------------

    def read(self, records: Sequence[Record]) -> dict[str, dict[str, Any] | None] | None:
        sample = [r for r in records if not _empty((r.fields or {}).get(self._ext))][:SOQL_IN]
        if not sample:
            return {}
        self._check()
        names = list(dict.fromkeys(["Id", self.external_id_field, *self._fields]))
        values = ", ".join(soql_literal(str((r.fields or {})[self._ext])) for r in sample)
        # (the mapped names exist on the object: _check read its describe)
        soql = f"SELECT {', '.join(names)} FROM {self.object_name} WHERE {self.external_id_field} IN ({values})"  # noqa: S608
        found = {row_key(_get(rec, self.external_id_field)): rec for rec in self.api.query(soql)}
        current: dict[str, dict[str, Any] | None] = {}
        for r in sample:
            rec = found.get(row_key((r.fields or {})[self._ext]))
            fields = r.fields or {}
            # Salesforce answers typed values (1100.0 for "1100.00"): an equal one is shown as the record has it
            current[r.key] = None if rec is None else {
                k: v if _same(_get(rec, k), v) else _get(rec, k) for k, v in fields.items()}
        return current

    def requests_for(self, op: Operation, records: int, batch_size: int) -> int:
        def per_batch(size: int) -> int:
            return BULK_REQUESTS if self._use_bulk(size) else -(-size // COLLECTION_MAX)

        full, rest = divmod(records, batch_size)
        return full * per_batch(batch_size) + (per_batch(rest) if rest else 0)

    # -- plumbing --------------------------------------------------------------------------------------

    def _progress_of(self, tag: Hashable) -> _Progress:
        with self._lock:
            return self._progress.setdefault(tag, _Progress())

    def _forget(self, tag: Hashable) -> None:
        with self._lock:
            self._progress.pop(tag, None)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="opsflow-salesforce")
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._progress.clear()
        if pool is not None:
            pool.shutdown(wait=True)
        self.api.close()


def check_settings(object_name: str, external_id_field: str, api_choice: str, bulk_threshold: int) -> None:
    """The declaration's and the client's checks (API names, the API choice, the threshold)."""
    for what, value in (("object_name", object_name), ("external_id_field", external_id_field)):
        if not value or not value.replace("_", "").isalnum() or not value.isascii() or value[0].isdigit():
            raise ValueError(f"Salesforce {what} must be an API name such as 'Account' or 'Warehouse_Id__c', "
                             f"got {value!r}")
    if api_choice not in API_CHOICES:
        raise ValueError(f"Salesforce api must be one of {', '.join(API_CHOICES)}, got {api_choice!r}")
    if not 1 <= bulk_threshold <= BULK_MAX:
        raise ValueError(f"Salesforce bulk_threshold must be between 1 and {BULK_MAX:,}, got {bulk_threshold}")


_ABSENT = object()


def csv_value(value: Any) -> str:
    """A value as a Bulk API 2.0 CSV cell (null and empty: ``#N/A``; a field absent from the record: empty)."""
    if value is _ABSENT:
        return ""
    if value is None or value == "":
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _config_error(error: str | None) -> bool:
    return bool(error) and str(error).split(":", 1)[0].strip() in CONFIG_ERRORS


def _bulk_failed(error: str, deleting: bool) -> Outcome:
    """A failed row's ``sf__Error`` (``CODE:message:fields --``) as an outcome."""
    code, _, rest = error.partition(":")
    if deleting and code in GONE:
        return OK
    message, fields = rest, ""
    if rest.endswith("--"):
        message, _, fields = rest.removesuffix("--").rstrip().rpartition(":")
    return Outcome("error", f"{code}: {message.strip()}" + (f" (fields {fields.strip()})" if fields.strip() else ""))


def _same(current: Any, sent: Any) -> bool:
    """Whether Salesforce's value ``current`` is what ``sent`` (a mapped value) wrote."""
    if current == sent or (current is None and _empty(sent)):
        return True
    if isinstance(current, bool):
        return str(sent).lower() == str(current).lower()
    if isinstance(current, (int, float)) and not isinstance(sent, bool):
        try:
            return float(current) == float(sent)
        except (TypeError, ValueError):
            return False
    if isinstance(current, str) and isinstance(sent, str) and "T" in current:
        try:  # datetimes: 2024-05-01T12:00:00.000+0000 and 2024-05-01T12:00:00+00:00
            a, b = (datetime.fromisoformat(re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", t.replace("Z", "+00:00")))
                    for t in (current, sent))
        except ValueError:
            return False
        return (a.tzinfo is None) == (b.tzinfo is None) and a == b
    return False


def _empty(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def _get(record: dict[str, Any], name: str) -> Any:
    """A field of a SOQL record (keys are the describe's names: match without case)."""
    if name in record:
        return record[name]
    lower = name.lower()
    return next((v for k, v in record.items() if k.lower() == lower), None)


def _tag(op: str, records: Sequence[Record]) -> tuple[str, str, int, str, str]:
    """Names a batch: the engine repeats a batch with the same records (the same write id)."""
    return op, records[0].write_id, len(records), records[0].key, records[-1].key


def _filled(out: list[Outcome | None]) -> list[Outcome]:
    return [o if o is not None else Outcome("error", "no answer for this record") for o in out]
