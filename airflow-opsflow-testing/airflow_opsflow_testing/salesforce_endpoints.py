"""The REST endpoints of FakeSalesforce under ``/services/data/vNN.N``: sObjects, SOQL, Collections, Bulk 2.0.

Answers as documented in the REST API developer guide:

* ``POST /sobjects/{obj}`` → 201 ``{"id", "success", "errors"}``; ``GET|PATCH|DELETE /sobjects/{obj}/{id}`` →
  the record / 204; a malformed id is 404 "Provided external ID field does not exist or is not accessible: X";
* ``PATCH /sobjects/{obj}/{ExtField}/{value}`` → 201 ``created: true``, then 200 ``created: false`` (API 46.0+;
  204 without a body before), 300 with the matching records' URLs, 404 ``NOT_FOUND`` when the field is not an
  external id;
* ``/composite/sobjects`` (POST create, PATCH update, DELETE ``?ids=``, GET ``/{obj}?ids=&fields=``) and
  ``PATCH /composite/sobjects/{obj}/{ExtField}``: at most 200 records (``EXCEEDED_ID_LIMIT``), 200 with one
  result per record, ``allOrNone`` rolling every record back (``ALL_OR_NONE_OPERATION_ROLLED_BACK``);
* ``/query`` and ``/queryAll`` with ``nextRecordsUrl`` paging (``Sforce-Query-Options: batchSize=n``), ``/limits``;
* ``/jobs/ingest`` and ``/jobs/query`` (:mod:`~airflow_opsflow_testing.salesforce_bulk`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from airflow_opsflow_testing.salesforce_bulk import BulkApi, BulkJob
from airflow_opsflow_testing.salesforce_schema import (
    NOT_FOUND,
    JsonDict,
    SalesforceError,
    SfObject,
    bad_request,
    make_id,
    normalize_id,
    not_found,
    record_error,
)
from airflow_opsflow_testing.salesforce_soql import Column, parse
from airflow_opsflow_testing.salesforce_store import MultipleMatches, SalesforceOrg, SfRecord

MAX_COLLECTION = 200
ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"
LIMIT = "record limit reached. cannot submit more than 200 records into this call"
Query = dict[str, list[str]]


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able; a str when ``content_type`` is not JSON; None: no body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=UTF-8"


@dataclass
class Call:
    """One data API request, as the handlers see it."""

    match: re.Match[str]
    query: Query
    body: Any
    raw: bytes
    headers: Message
    version: str

    def arg(self, name: str) -> str | None:
        return self.query[name][-1] if self.query.get(name) else None


Handler = Callable[[Call], Reply]


class DataApi:
    """The handlers; ``route(method, rest)`` finds one for a path below ``/services/data/vNN.N``."""

    def __init__(self, org: SalesforceOrg, bulk: BulkApi) -> None:
        self.org, self.bulk = org, bulk
        self.query_batch_size = 2000
        self.limits: dict[str, int] = {"max": 15_000, "used": 0}
        self._cursors: dict[str, list[JsonDict]] = {}
        obj, rid, job = r"/sobjects/(?P<obj>[^/]+)", r"(?P<id>[^/]+)", r"(?P<job>[^/]+)"
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", r"", "resources", self._resources), ("GET", r"/limits", "limits", self._limits),
            ("GET", r"/sobjects", "describe_global", self._describe_global),
            ("GET", obj, "sobject", self._sobject), ("POST", obj, "create", self._create),
            ("GET", obj + r"/describe", "describe", self._describe),
            ("GET", obj + "/" + rid, "get", self._get), ("PATCH", obj + "/" + rid, "update", self._update),
            ("DELETE", obj + "/" + rid, "delete", self._delete),
            ("GET", obj + r"/(?P<field>[^/]+)/(?P<value>[^/]+)", "get_by_external_id", self._get_external),
            ("PATCH", obj + r"/(?P<field>[^/]+)/(?P<value>[^/]+)", "upsert", self._upsert),
            ("GET", r"/query", "query", self._query), ("GET", r"/queryAll", "query_all", self._query),
            ("GET", r"/(?:query|queryAll)/(?P<cursor>[^/]+)", "query_more", self._query_more),
            ("POST", r"/composite/sobjects", "collection_create", self._collection_create),
            ("PATCH", r"/composite/sobjects", "collection_update", self._collection_update),
            ("DELETE", r"/composite/sobjects", "collection_delete", self._collection_delete),
            ("GET", r"/composite/sobjects/(?P<obj>[^/]+)", "collection_retrieve", self._collection_retrieve),
            ("PATCH", r"/composite/sobjects/(?P<obj>[^/]+)/(?P<field>[^/]+)", "collection_upsert",
             self._collection_upsert),
            ("POST", r"/jobs/ingest", "ingest_create", self._ingest_create),
            ("GET", r"/jobs/ingest", "ingest_jobs", self._jobs),
            ("GET", r"/jobs/ingest/" + job, "ingest_job", self._job),
            ("PATCH", r"/jobs/ingest/" + job, "ingest_state", self._job_state),
            ("DELETE", r"/jobs/ingest/" + job, "ingest_delete", self._job_delete),
            ("PUT", r"/jobs/ingest/" + job + r"/batches", "ingest_upload", self._ingest_upload),
            ("GET", r"/jobs/ingest/" + job + r"/(?P<which>successfulResults|failedResults|unprocessedrecords)",
             "ingest_results", self._ingest_results),
            ("POST", r"/jobs/query", "query_job_create", self._query_job_create),
            ("GET", r"/jobs/query", "query_jobs", self._jobs),
            ("GET", r"/jobs/query/" + job, "query_job", self._job),
            ("PATCH", r"/jobs/query/" + job, "query_job_state", self._job_state),
            ("DELETE", r"/jobs/query/" + job, "query_job_delete", self._job_delete),
            ("GET", r"/jobs/query/" + job + r"/results", "query_job_results", self._query_job_results),
        ]
        self.routes = [(verb, re.compile(path + "$", re.IGNORECASE), name, handler)
                       for verb, path, name, handler in table]
        self.operations = sorted({name for _, _, name, _ in self.routes})

    def route(self, verb: str, rest: str) -> tuple[str, re.Match[str] | None, Handler | None]:
        """(operation name, match, handler); the handler is None for a known path with another method."""
        found = [(v, m, n, h) for v, p, n, h in self.routes if (m := p.match(rest))]
        # a literal path wins over a pattern that also matches it (/sobjects/Case/describe is not a record id)
        found.sort(key=lambda r: r[1].re.pattern.count("(?P<"))
        hit = next((r for r in found if r[0] == verb), None)
        if hit is not None:
            return hit[2], hit[1], hit[3]
        return ("unknown", None, None) if not found else (found[0][2], None, None)

    # --- describe and limits ------------------------------------------------------------------------------

    def _resources(self, c: Call) -> Reply:
        base = f"/services/data/v{c.version}"
        return Reply(200, {name: f"{base}/{name}" for name in ("sobjects", "query", "queryAll", "limits",
                                                                 "composite", "jobs")})

    def _limits(self, c: Call) -> Reply:
        used, most = self.limits["used"], self.limits["max"]
        ingest = sum(1 for j in self.bulk.jobs.values() if j.kind == "ingest")
        query = sum(1 for j in self.bulk.jobs.values() if j.kind == "query")
        return Reply(200, {"DailyApiRequests": {"Max": most, "Remaining": max(0, most - used)},
                           "DailyBulkApiBatches": {"Max": 15_000, "Remaining": 15_000 - ingest},
                           "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 10_000 - query},
                           "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
                           "DataStorageMB": {"Max": 5, "Remaining": 5}})

    def _describe_global(self, c: Call) -> Reply:
        return Reply(200, {"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION,
                           "sobjects": [o.summary(c.version) for o in self.org.objects.values()]})

    def _obj(self, c: Call) -> SfObject:
        return self.org.resolve(c.match["obj"])

    def _sobject(self, c: Call) -> Reply:
        obj = self._obj(c)
        recent = [self._render(obj, r, c.version, ["Id", "Name"] if obj.field("Name") else ["Id"])
                  for r in self.org.live(obj)[-25:]]
        return Reply(200, {"objectDescribe": obj.summary(c.version), "recentItems": recent})

    def _describe(self, c: Call) -> Reply:
        return Reply(200, self._obj(c).describe(c.version))

    # --- single records -----------------------------------------------------------------------------------

    def _render(self, obj: SfObject, record: SfRecord, version: str, names: list[str] | None = None) -> JsonDict:
        out: JsonDict = {"attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/"
                                                                 f"{record.id}"}}
        for f in obj.fields.values() if names is None else [obj.field(n) for n in names]:
            if f is not None:
                out[f.name] = record.get(f.name)
        return out

    def _record(self, obj: SfObject, record_id: str) -> SfRecord:
        if normalize_id(record_id) is None:
            raise not_found(f"Provided external ID field does not exist or is not accessible: {record_id}")
        record = self.org.find(record_id)
        if record is None or record.object != obj.name:
            raise not_found()
        if record.deleted:
            raise not_found("entity is deleted", "ENTITY_IS_DELETED")
        return record

    def _field_names(self, obj: SfObject, c: Call) -> list[str] | None:
        wanted = c.arg("fields")
        if not wanted:
            return None
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        unknown = [n for n in names if obj.field(n) is None]
        if unknown:
            raise bad_request("INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {obj.name}")
        return names

    def _create(self, c: Call) -> Reply:
        obj = self._obj(c)
        values = _body_object(c.body)
        if any(k.lower() == "id" for k in values):
            raise record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        record = self.org.create(obj, values)
        return Reply(201, {"id": record.id, "success": True, "errors": []})

    def _get(self, c: Call) -> Reply:
        obj = self._obj(c)
        return Reply(200, self._render(obj, self._record(obj, c.match["id"]), c.version, self._field_names(obj, c)))

    def _update(self, c: Call) -> Reply:
        obj = self._obj(c)
        record = self._record(obj, c.match["id"])
        self.org.update(obj, record.id, {k: v for k, v in _body_object(c.body).items() if k.lower() != "id"})
        return Reply(204)

    def _delete(self, c: Call) -> Reply:
        obj = self._obj(c)
        record = self._record(obj, c.match["id"])
        self.org.delete(record.id, obj)
        return Reply(204)

    def _external(self, obj: SfObject, name: str) -> Any:
        f = obj.field(name)
        if f is None or not (f.external_id or f.type == "id"):
            raise not_found()
        return f

    def _get_external(self, c: Call) -> Reply:
        obj = self._obj(c)
        f = self._external(obj, c.match["field"])
        found = self.org.matches(obj, f, c.match["value"])
        if len(found) > 1:
            return Reply(300, [f"/services/data/v{c.version}/sobjects/{obj.name}/{r.id}" for r in found])
        if not found:
            raise not_found()
        return Reply(200, self._render(obj, found[0], c.version, self._field_names(obj, c)))

    def _upsert(self, c: Call) -> Reply:
        obj = self._obj(c)
        f = self._external(obj, c.match["field"])
        values = _body_object(c.body)
        try:
            record, created = self.org.upsert(obj, f, c.match["value"], values)
        except MultipleMatches as e:
            return Reply(300, [f"/services/data/v{c.version}/sobjects/{obj.name}/{rid}" for rid in e.ids])
        if float(c.version) < 46:  # before 46.0: no "created", and an update answers 204 without a body
            return Reply(201, {"id": record.id, "success": True, "errors": []}) if created else Reply(204)
        return Reply(201 if created else 200, {"id": record.id, "success": True, "errors": [], "created": created})

    # --- SOQL ---------------------------------------------------------------------------------------------

    def _query(self, c: Call) -> Reply:
        soql = c.arg("q")
        if not soql:
            raise bad_request("MALFORMED_QUERY", "A query string has to be specified")
        deleted = c.match.re.pattern.startswith("/queryAll")
        query = parse(soql, self.org.object, self.org.now().date())
        found = query.run([r.fields for r in self.org.live(query.obj, deleted=deleted)])
        if query.count:
            return Reply(200, {"totalSize": len(found), "done": True, "records": []})
        records = [self._selected(query.obj, r, c.version, query.columns) for r in found]
        return Reply(200, self._page(records, 0, self._batch_size(c), c.version, None))

    def _selected(self, obj: SfObject, row: JsonDict, version: str, columns: list[Column]) -> JsonDict:
        """A record as a query answers it: the selected fields in order, a parent's under its relationship name
        with its own ``attributes`` (``"Account": {"attributes": {...}, "Name": "Acme"}``), a null lookup as
        ``"Account": null``."""
        out = self._render(obj, SfRecord(obj.name, str(row["Id"]), row), version, [])
        for column in columns:
            node, current = out, row
            for lookup, relation in column.hops:
                parent = self.org.lookup(current.get(lookup.name))
                if parent is None:
                    node[relation] = None
                    break
                if node.get(relation) is None:
                    node[relation] = self._render(self.org.resolve(parent.object), parent, version, [])
                node, current = node[relation], parent.fields
            else:
                node[column.field.name] = current.get(column.field.name)
        return out

    def _batch_size(self, c: Call) -> int:
        options = c.headers.get("Sforce-Query-Options", "")
        m = re.search(r"batchSize\s*=\s*(\d+)", options)
        asked = min(max(int(m.group(1)), 200), 2000) if m else 2000
        return max(1, min(asked, self.query_batch_size))

    def _page(self, records: list[JsonDict], start: int, size: int, version: str, cursor: str | None) -> JsonDict:
        out: JsonDict = {"totalSize": len(records), "done": start + size >= len(records)}
        if not out["done"]:
            if cursor is None:
                cursor = make_id("01g", len(self._cursors) + 1)
                self._cursors[cursor] = records
            out["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor}-{start + size}"
        out["records"] = records[start:start + size]
        return out

    def _query_more(self, c: Call) -> Reply:
        cursor, _, offset = c.match["cursor"].rpartition("-")
        records = self._cursors.get(cursor)
        if records is None or not offset.isdigit():
            raise bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
        return Reply(200, self._page(records, int(offset), self._batch_size(c), c.version, cursor))

    # --- sObject Collections ------------------------------------------------------------------------------

    def _collection(self, c: Call) -> tuple[list[Any], bool]:
        body = c.body if isinstance(c.body, dict) else None
        records = body.get("records") if body is not None else None
        if not isinstance(records, list):
            raise bad_request("JSON_PARSER_ERROR", "The request body must be a JSON object with a records list.")
        if len(records) > MAX_COLLECTION:
            raise bad_request("EXCEEDED_ID_LIMIT", LIMIT)
        return records, bool(body.get("allOrNone")) if body is not None else False

    def _each(self, items: list[Any], all_or_none: bool, save: Callable[[Any], JsonDict],
              failed: Callable[[Any, SalesforceError], JsonDict]) -> Reply:
        """Run ``save`` per item in one transaction; with ``allOrNone`` a failure rolls every item back."""
        results: list[JsonDict] = []
        errors: list[bool] = []
        with self.org.transaction() as rollback:
            for item in items:
                try:
                    results.append(save(item))
                    errors.append(False)
                except SalesforceError as e:
                    results.append(failed(item, e))
                    errors.append(True)
            if all_or_none and any(errors):
                rollback()
                gone = record_error("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK)
                results = [r if bad else failed(item, gone) for item, r, bad in zip(items, results, errors,
                                                                                     strict=True)]
        return Reply(200, results)

    def _typed(self, item: Any, expected: str | None = None) -> tuple[SfObject, dict[str, Any]]:
        if not isinstance(item, dict):
            raise record_error("JSON_PARSER_ERROR", "Each record must be a JSON object.")
        kind = item.get("attributes", {}).get("type") if isinstance(item.get("attributes"), dict) else None
        if not kind:
            raise record_error("INVALID_TYPE", "Must send a concrete entity type.")
        obj = self.org.object(str(kind))
        if obj is None or (expected is not None and obj.name != expected):
            raise record_error("INVALID_TYPE", f"sObject type '{kind}' is not supported."
                               if obj is None else f"Record type {kind} does not match {expected}.")
        return obj, {k: v for k, v in item.items() if k != "attributes"}

    def _collection_create(self, c: Call) -> Reply:
        records, all_or_none = self._collection(c)

        def save(item: Any) -> JsonDict:
            obj, values = self._typed(item)
            if any(k.lower() == "id" for k in values):
                raise record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            return {"id": self.org.create(obj, values, "collections").id, "success": True, "errors": []}

        return self._each(records, all_or_none, save, lambda item, e: {"success": False, "errors": [e.result()]})

    def _collection_update(self, c: Call) -> Reply:
        records, all_or_none = self._collection(c)

        def record_id(item: Any) -> str | None:
            return next((str(v) for k, v in item.items() if k.lower() == "id"), None) \
                if isinstance(item, dict) else None

        def save(item: Any) -> JsonDict:
            obj, values = self._typed(item)
            rid = record_id(item)
            if not rid:
                raise record_error("MISSING_ARGUMENT", "Id not specified in an update call")
            rest = {k: v for k, v in values.items() if k.lower() != "id"}
            return {"id": self.org.update(obj, rid, rest, "collections").id, "success": True, "errors": []}

        def failed(item: Any, e: SalesforceError) -> JsonDict:
            rid = record_id(item)
            return {**({"id": normalize_id(rid) or rid} if rid else {}), "success": False, "errors": [e.result()]}

        return self._each(records, all_or_none, save, failed)

    def _collection_upsert(self, c: Call) -> Reply:
        obj = self._obj(c)
        f = obj.field(c.match["field"])
        if f is None or not (f.external_id or f.type == "id"):
            raise bad_request("INVALID_FIELD", f"Field name provided, {c.match['field']} is not an External ID or "
                              f"indexed field for {obj.name}")
        records, all_or_none = self._collection(c)

        def save(item: Any) -> JsonDict:
            _, values = self._typed(item, obj.name)
            key = next((v for k, v in values.items() if k.lower() == f.name.lower()), None)
            if key is None:
                if f.type != "id":
                    raise record_error("MISSING_ARGUMENT", f"{f.name} not specified")
                record, created = self.org.create(obj, values, "collections"), True
            else:
                record, created = self.org.upsert(obj, f, key, values, "collections")
            return {"id": record.id, "success": True, "errors": [], "created": created}

        return self._each(records, all_or_none, save,
                          lambda item, e: {"success": False, "errors": [e.result()], "created": False})

    def _collection_delete(self, c: Call) -> Reply:
        ids = [i for v in c.query.get("ids", []) for i in v.split(",") if i]
        if not ids:
            raise bad_request("MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > MAX_COLLECTION:
            raise bad_request("EXCEEDED_ID_LIMIT", LIMIT)
        all_or_none = (c.arg("allOrNone") or "false").lower() == "true"

        def save(rid: str) -> JsonDict:
            return {"id": self.org.delete(rid, via="collections").id, "success": True, "errors": []}

        return self._each(ids, all_or_none, save,
                          lambda rid, e: {"id": normalize_id(rid) or rid, "success": False, "errors": [e.result()]})

    def _collection_retrieve(self, c: Call) -> Reply:
        obj = self._obj(c)
        ids = [i for v in c.query.get("ids", []) for i in v.split(",") if i]
        names = self._field_names(obj, c)
        if not ids or not names:
            raise bad_request("MISSING_ARGUMENT", "ids and fields are required")
        out: list[JsonDict | None] = []
        for rid in ids:
            record = self.org.find(rid)
            ok = record is not None and record.object == obj.name and not record.deleted
            out.append(self._render(obj, record, c.version, names) if ok and record else None)
        return Reply(200, out)

    # --- Bulk API 2.0 -------------------------------------------------------------------------------------

    def _bulk_job(self, c: Call) -> BulkJob:
        kind = "ingest" if "/jobs/ingest" in c.match.re.pattern else "query"
        return self.bulk.job(c.match["job"], kind)

    def _ingest_create(self, c: Call) -> Reply:
        return Reply(200, self.bulk.create_ingest(c.body, c.version))

    def _query_job_create(self, c: Call) -> Reply:
        return Reply(200, self.bulk.create_query(c.body, c.version))

    def _jobs(self, c: Call) -> Reply:
        kind = "ingest" if "ingest" in c.match.re.pattern else "query"
        for job in list(self.bulk.jobs.values()):
            self.bulk.advance(job, poll=False)
        return Reply(200, self.bulk.list_jobs(kind))

    def _job(self, c: Call) -> Reply:
        job = self._bulk_job(c)
        self.bulk.advance(job, poll=True)
        return Reply(200, self.bulk.info(job, full=True))

    def _job_state(self, c: Call) -> Reply:
        return Reply(200, self.bulk.set_state(self._bulk_job(c), c.body))

    def _job_delete(self, c: Call) -> Reply:
        self.bulk.delete(self._bulk_job(c))
        return Reply(204)

    def _ingest_upload(self, c: Call) -> Reply:
        self.bulk.upload(self._bulk_job(c), c.raw)
        return Reply(201)

    def _ingest_results(self, c: Call) -> Reply:
        job = self._bulk_job(c)
        self.bulk.advance(job, poll=False)
        which = {"successfulresults": "successfulResults", "failedresults": "failedResults"}.get(
            c.match["which"].lower(), "unprocessedrecords")
        return Reply(200, self.bulk.ingest_results(job, which), content_type="text/csv")

    def _query_job_results(self, c: Call) -> Reply:
        job = self._bulk_job(c)
        self.bulk.advance(job, poll=False)
        size = c.arg("maxRecords")
        text, locator, count = self.bulk.query_results(job, c.arg("locator"), int(size) if size and size.isdigit()
                                                       else None)
        return Reply(200, text, {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)},
                     content_type="text/csv")


def _body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("JSON_PARSER_ERROR", "The request body must be a JSON object.")
    return body


__all__ = ["NOT_FOUND", "Call", "DataApi", "Reply"]
