"""The CRM behind :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot`: records, unique values, writes.

Operations take the decoded request and return ``(status, body)`` or raise
:class:`~airflow_opsflow_testing.hubspot_schema.HubSpotError`; the caller holds :attr:`HubSpotCrm.lock`.
How batches report bad inputs follows HubSpot (see the server's module docstring for the sources):

* ``batch/create`` is all-or-nothing (400, or 409 for an existing contact email) unless every input carries
  an ``objectWriteTraceId``: then the good inputs are created and the bad ones listed in a 207;
* ``batch/update`` and ``batch/upsert`` write the good inputs and list the bad ones in a 207, except an
  upsert by contact ``email``, where HubSpot supports no partial upsert: one bad input fails the batch (400);
* ``batch/read`` and ``batch/update`` list unknown ids in one ``OBJECT_NOT_FOUND`` entry of a 207.

Ticket writes are also checked against their pipeline (:mod:`~.hubspot_pipelines`), creates may carry
``associations`` (:mod:`~.hubspot_associations`), and every write feeds the lagging search index
(:mod:`~.hubspot_search`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_opsflow_testing.hubspot_associations import Associations, AssociationType, plan_create
from airflow_opsflow_testing.hubspot_pipelines import Pipelines
from airflow_opsflow_testing.hubspot_schema import (
    HubSpotError,
    JsonDict,
    ObjectType,
    PropertyIssue,
    add_system_properties,
    default_types,
    hubspot_time,
    invalid_properties,
    normalize,
    validation_error,
)
from airflow_opsflow_testing.hubspot_search import SearchIndex

MAX_BATCH = 100
MAX_PAGE = 100
_MODEL = {"create": "BatchInputSimplePublicObjectBatchInputForCreate",  # the names HubSpot's errors use
          "update": "BatchInputSimplePublicObjectBatchInput", "upsert": "BatchInputSimplePublicObjectBatchInputUpsert",
          "read": "BatchReadInputSimplePublicObjectId", "archive": "BatchInputSimplePublicObjectId"}


@dataclass
class HubSpotObject:
    """A stored record: property values as HubSpot returns them (strings), system ones excluded."""

    id: str
    object_type: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived: bool = False


@dataclass(frozen=True)
class WriteRecord:
    """One applied write: what a test counts to prove "no duplicate create"."""

    op: str  # "create" | "update" | "archive"
    object_type: str
    object_id: str
    endpoint: str  # "batch/upsert", "batch/create", "patch", ...
    id_property: str | None = None  # how the input named the record, for upserts and updates by idProperty
    id_value: str | None = None
    properties: dict[str, str | None] = field(default_factory=dict)  # as written (None: cleared)


@dataclass
class _Plan:
    index: int
    existing: HubSpotObject | None
    values: dict[str, str | None]
    id_property: str | None = None
    id_value: str | None = None
    links: list[tuple[AssociationType, str]] = field(default_factory=list)  # associations given with a create


class HubSpotCrm:
    """Object types, records and unique-value indexes of one HubSpot account."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.types = default_types()
        self.objects: dict[str, dict[str, HubSpotObject]] = {name: {} for name in self.types}
        self.writes: list[WriteRecord] = []
        self._unique: dict[tuple[str, str], dict[str, str]] = {}  # (type, property) -> value -> id
        self._next_id = 101
        self._next_custom = 1
        self.pipelines = Pipelines(self.types)
        self.associations = Associations()
        self.search_index = SearchIndex()

    def reset(self) -> None:
        with self.lock:
            for records in self.objects.values():
                records.clear()
            self._unique.clear()
            self.writes.clear()
            self.associations.clear()
            self.search_index.clear()
            self._next_id = 101

    def define_type(self, name: str, type_id: str | None = None, label: str | None = None) -> ObjectType:
        with self.lock:
            if name not in self.types:
                if type_id is None:
                    type_id, self._next_custom = f"2-{1000 + self._next_custom}", self._next_custom + 1
                object_type = ObjectType(name, type_id, label or name.upper().removesuffix("S"),
                                         default_properties=("hs_createdate", "hs_lastmodifieddate", "hs_object_id"))
                add_system_properties(object_type)
                self.types[name] = object_type
                self.objects[name] = {}
            return self.types[name]

    def resolve(self, segment: str) -> ObjectType:
        """An object type from a path segment: its name, its type id ("0-1"), or a singular ("contact")."""
        for t in self.types.values():
            if segment in (t.name, t.type_id) or segment.lower() in (t.name, t.label.lower()):
                return t
        raise validation_error(f"Unable to infer object type from: {segment}")

    # --- lookups and rendering --------------------------------------------------------------------------

    def find(self, t: ObjectType, id_value: str, id_property: str | None = None,
             archived: bool = False) -> HubSpotObject | None:
        if id_property in (None, "hs_object_id"):
            obj = self.objects[t.name].get(id_value)
        else:
            key = id_value.lower() if (t.name, id_property) == ("contacts", "email") else id_value
            found = self._unique.get((t.name, id_property), {}).get(key)
            obj = self.objects[t.name].get(found) if found else None
        return obj if obj is not None and obj.archived == archived else None

    def render(self, t: ObjectType, obj: HubSpotObject, names: Iterable[str] | None = None) -> JsonDict:
        values = {**obj.properties, "hs_object_id": obj.id, "createdate": hubspot_time(obj.created_at),
                  t.modified_property: hubspot_time(obj.updated_at)}
        if t.name not in ("contacts", "companies", "deals"):
            values["hs_createdate"] = values["createdate"]
        wanted = t.default_properties if names is None else names
        body: JsonDict = {"id": obj.id, "properties": {name: values.get(name) for name in wanted},
                          "createdAt": hubspot_time(obj.created_at), "updatedAt": hubspot_time(obj.updated_at),
                          "archived": obj.archived}
        if obj.archived:
            body["archivedAt"] = hubspot_time(obj.updated_at)
        return body

    def _written(self, t: ObjectType, values: Mapping[str, Any]) -> list[str]:
        """The properties a write answers with: those written plus the system ones, as HubSpot does."""
        return sorted({*values, "hs_object_id", "createdate", t.modified_property})

    # --- validation and writes --------------------------------------------------------------------------

    def validate(self, t: ObjectType, properties: Any, self_id: str | None = None,
                 context: dict[str, list[str]] | None = None) -> tuple[dict[str, str | None], HubSpotError | None]:
        if not isinstance(properties, dict):
            return {}, validation_error("Invalid input JSON: properties must be an object", context)
        values: dict[str, str | None] = {}
        issues: list[PropertyIssue] = []
        for name, raw in properties.items():
            value, issue = normalize(t, str(name), raw)
            if issue is not None:
                issues.append(issue)
            else:
                values[str(name)] = value
        if not issues:  # where the write leaves a ticket in its pipeline (and what HubSpot derives from that)
            current = self.objects[t.name][self_id].properties if self_id in self.objects[t.name] else {}
            issues = self.pipelines.check(t, values, current, creating=self_id is None)
        if issues:
            return values, invalid_properties(issues, context)
        for name, value in values.items():
            owner = self._unique.get((t.name, name), {}).get(value or "")
            if value and owner and owner != self_id:
                what = "Contact" if t.name == "contacts" else t.label.capitalize()
                return values, HubSpotError(409, "CONFLICT", f"{what} already exists. Existing ID: {owner}",
                                            context=context or None)
        return values, None

    def reindex(self, t: ObjectType) -> None:
        """Rebuild a type's unique-value indexes (after a property became unique)."""
        for key in [k for k in self._unique if k[0] == t.name]:
            del self._unique[key]
        for obj in self.objects[t.name].values():
            if not obj.archived:
                self._index(t, obj, add=True)

    def _index(self, t: ObjectType, obj: HubSpotObject, add: bool) -> None:
        for name, prop in t.properties.items():
            value = obj.properties.get(name)
            if prop.unique and value:
                index = self._unique.setdefault((t.name, name), {})
                if add:
                    index[value] = obj.id
                elif index.get(value) == obj.id:
                    del index[value]

    def create(self, t: ObjectType, values: Mapping[str, str | None], endpoint: str,
               id_property: str | None = None, id_value: str | None = None) -> HubSpotObject:
        now = datetime.now(UTC)
        obj = HubSpotObject(str(self._next_id), t.name, {k: v for k, v in values.items() if v is not None}, now, now)
        self._next_id += 1
        self.objects[t.name][obj.id] = obj
        self._index(t, obj, add=True)
        self.writes.append(WriteRecord("create", t.name, obj.id, endpoint, id_property, id_value, dict(values)))
        self.search_index.record(obj)
        return obj

    def update(self, t: ObjectType, obj: HubSpotObject, values: Mapping[str, str | None], endpoint: str,
               id_property: str | None = None, id_value: str | None = None) -> HubSpotObject:
        self._index(t, obj, add=False)
        for name, value in values.items():
            if value is None:
                obj.properties.pop(name, None)
            else:
                obj.properties[name] = value
        obj.updated_at = datetime.now(UTC)
        self._index(t, obj, add=True)
        self.writes.append(WriteRecord("update", t.name, obj.id, endpoint, id_property, id_value, dict(values)))
        self.search_index.record(obj)
        return obj

    def archive(self, t: ObjectType, obj: HubSpotObject, endpoint: str) -> None:
        self._index(t, obj, add=False)  # an archived record no longer holds its unique values
        obj.archived, obj.updated_at = True, datetime.now(UTC)
        self.writes.append(WriteRecord("archive", t.name, obj.id, endpoint))
        self.search_index.record(obj)

    # --- single-record endpoints ------------------------------------------------------------------------

    def get_one(self, t: ObjectType, object_id: str, id_property: str | None, names: list[str] | None,
                archived: bool) -> tuple[int, Any]:
        self._check_id_property(t, id_property)
        obj = self.find(t, object_id, id_property, archived)
        if obj is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [object_id]})
        return 200, self.render(t, obj, names)

    def create_one(self, t: ObjectType, body: Any) -> tuple[int, Any]:
        body = _dict(body, "SimplePublicObjectInputForCreate")
        values, error = self.validate(t, body.get("properties", {}))
        if error is not None:
            raise error
        links = plan_create(self, t, body.get("associations"))  # checked before anything is written
        obj = self.create(t, values, "create")
        for kind, to_id in links:
            self.associations.add(kind, obj.id, to_id)
        return 201, self.render(t, obj, self._written(t, values))

    def update_one(self, t: ObjectType, object_id: str, id_property: str | None, body: Any) -> tuple[int, Any]:
        self._check_id_property(t, id_property)
        obj = self.find(t, object_id, id_property)
        if obj is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [object_id]})
        values, error = self.validate(t, _dict(body, "SimplePublicObjectInput").get("properties", {}), obj.id)
        if error is not None:
            raise error
        self.update(t, obj, values, "patch", id_property, object_id if id_property else None)
        return 200, self.render(t, obj, self._written(t, values))

    def archive_one(self, t: ObjectType, object_id: str) -> tuple[int, Any]:
        obj = self.find(t, object_id)
        if obj is not None:
            self.archive(t, obj, "delete")
        return 204, None

    def list_page(self, t: ObjectType, limit: int, after: str | None, names: list[str] | None,
                  archived: bool) -> tuple[int, Any]:
        """Records in id order; ``after`` is the id the next page starts at, as HubSpot's cursor is."""
        limit = max(1, min(limit, MAX_PAGE))
        start = int(after) if after and after.isdigit() else 0
        ids = sorted(int(i) for i, o in self.objects[t.name].items() if o.archived == archived and int(i) >= start)
        body: JsonDict = {"results": [self.render(t, self.objects[t.name][str(i)], names) for i in ids[:limit]]}
        if len(ids) > limit:
            body["paging"] = {"next": {"after": str(ids[limit]),
                                       "link": f"/crm/v3/objects/{t.name}?limit={limit}&after={ids[limit]}"}}
        return 200, body

    def _check_id_property(self, t: ObjectType, id_property: str | None, upsert: bool = False) -> None:
        if id_property is None or (t.unique_id_property(id_property)
                                   and (id_property, upsert) != ("hs_object_id", True)):
            return
        raise validation_error(f"Property {id_property} is not a unique identifier property of {t.name}: idProperty "
                               "must name a property with unique values")

    # --- batch endpoints --------------------------------------------------------------------------------

    def batch(self, op: str, t: ObjectType, body: Any, query_id_property: str | None,
              archived: bool) -> tuple[int, Any]:
        body = _dict(body, _MODEL[op])
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise validation_error(f"Invalid input JSON: Cannot build {_MODEL[op]}, some of required attributes are "
                                   "not set [inputs]")
        if len(inputs) > MAX_BATCH:
            raise validation_error(f"The maximum number of inputs supported in a batch request is {MAX_BATCH}. "
                                   "Please reduce the number of items and try again")
        started = hubspot_time(datetime.now(UTC))
        if op != "create":
            self._refuse_duplicates(t, inputs, body.get("idProperty") or query_id_property)
        if op == "archive":
            for item in inputs:
                if (obj := self.find(t, str(item.get("id")))) is not None:
                    self.archive(t, obj, "batch/archive")
            return 204, None
        if op == "read":
            return self._batch_read(t, body, inputs, query_id_property, archived, started)
        results, errors = getattr(self, f"_batch_{op}")(t, inputs, query_id_property)
        answer: JsonDict = {"status": "COMPLETE", "results": results}
        if errors:
            answer.update(numErrors=len(errors), errors=errors)
        answer.update(startedAt=started, completedAt=hubspot_time(datetime.now(UTC)))
        return (207 if errors else 201 if op == "create" else 200), answer  # HubSpot creates with 201

    def _refuse_duplicates(self, t: ObjectType, inputs: list[JsonDict], id_property: str | None) -> None:
        seen: set[str] = set()
        duplicates: list[str] = []
        for item in inputs:
            key = str(item.get("id"))
            if (t.name, item.get("idProperty") or id_property) == ("contacts", "email"):
                key = key.lower()
            if key in seen and key not in duplicates:
                duplicates.append(key)
            seen.add(key)
        if duplicates:
            raise validation_error(f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique",
                                   {"ids": duplicates})

    def _batch_read(self, t: ObjectType, body: JsonDict, inputs: list[JsonDict], query_id_property: str | None,
                    archived: bool, started: str) -> tuple[int, Any]:
        id_property = body.get("idProperty") or query_id_property
        self._check_id_property(t, id_property)
        names = body.get("properties") or None
        results, missing = [], []
        for item in inputs:
            obj = self.find(t, str(item.get("id")), id_property, archived)
            if obj is None:
                missing.append(str(item.get("id")))
            else:
                results.append(self.render(t, obj, names))
        answer: JsonDict = {"status": "COMPLETE", "results": results}
        if missing:
            answer.update(numErrors=1, errors=[_not_found(t, missing)])
        answer.update(startedAt=started, completedAt=hubspot_time(datetime.now(UTC)))
        return (207 if missing else 200), answer

    def _batch_create(self, t: ObjectType, inputs: list[JsonDict],
                      _: str | None) -> tuple[list[JsonDict], list[JsonDict]]:
        traced = bool(inputs) and all(i.get("objectWriteTraceId") for i in inputs)  # HubSpot's multi-status opt-in
        plans, failures = [], []
        pending: dict[tuple[str, str], int] = {}  # unique values claimed by earlier inputs of this batch
        for index, item in enumerate(inputs):
            context = {"objectWriteTraceId": [str(item["objectWriteTraceId"])]} if traced else {}
            values, error = self.validate(t, item.get("properties", {}), context=context)
            links: list[tuple[AssociationType, str]] = []
            if error is None:
                try:
                    links = plan_create(self, t, item.get("associations"))
                except HubSpotError as e:
                    error = HubSpotError(e.status, e.category, e.message, context=context or e.context)
            clash = next((k for k in values.items() if k in pending), None) if error is None else None
            if clash is not None:
                error = HubSpotError(409, "CONFLICT", f"Duplicate value {clash[1]} for unique property {clash[0]} "
                                                      "in batch input", context=context or None)
            if error is not None:
                if not traced:
                    raise error
                failures.append(error.batch_entry())
                continue
            pending.update({(k, v): index for k, v in values.items() if v and t.properties[k].unique})
            plans.append(_Plan(index, None, values, links=links))
        results = []
        for p in plans:
            obj = self.create(t, p.values, "batch/create")
            for kind, to_id in p.links:
                self.associations.add(kind, obj.id, to_id)
            results.append(self.render(t, obj, self._written(t, p.values)))
        return results, failures

    def _batch_update(self, t: ObjectType, inputs: list[JsonDict],
                      query_id_property: str | None) -> tuple[list[JsonDict], list[JsonDict]]:
        plans, failures, missing = [], [], []
        for index, item in enumerate(inputs):
            id_property, object_id = item.get("idProperty") or query_id_property, str(item.get("id"))
            self._check_id_property(t, id_property)
            obj = self.find(t, object_id, id_property)
            if obj is None:
                missing.append(object_id)
                continue
            values, error = self.validate(t, item.get("properties", {}), obj.id, {"ids": [object_id]})
            if error is not None:
                failures.append(error.batch_entry())
            else:
                plans.append(_Plan(index, obj, values, id_property, object_id if id_property else None))
        if missing:
            failures.insert(0, _not_found(t, missing))
        results = []
        for p in plans:
            assert p.existing is not None
            obj = self.update(t, p.existing, p.values, "batch/update", p.id_property, p.id_value)
            results.append(self.render(t, obj, self._written(t, p.values)))
        return results, failures

    def _batch_upsert(self, t: ObjectType, inputs: list[JsonDict],
                      query_id_property: str | None) -> tuple[list[JsonDict], list[JsonDict]]:
        plans, failures = [], []
        by_email = False
        for index, item in enumerate(inputs):
            id_property = item.get("idProperty") or query_id_property
            if not id_property or item.get("id") in (None, ""):
                raise validation_error("Invalid input JSON: Cannot build SimplePublicObjectBatchInputUpsert, some of "
                                       "required attributes are not set [id, idProperty]")
            self._check_id_property(t, id_property, upsert=True)
            by_email = by_email or (t.name, id_property) == ("contacts", "email")
            id_value = str(item["id"])
            context = {"ids": [id_value]}
            if item.get("objectWriteTraceId"):
                context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
            existing = self.find(t, id_value, id_property)
            properties = item.get("properties", {})
            if existing is None and isinstance(properties, dict):
                properties = {id_property: id_value, **properties}  # a created record takes the id as its value
            values, error = self.validate(t, properties, existing.id if existing else None, context)
            if error is not None:
                if by_email:
                    raise error  # HubSpot supports no partial upsert by email: the batch fails as a whole
                failures.append(error.batch_entry())
                continue
            plans.append(_Plan(index, existing, values, id_property, id_value))
        results = []
        for p in plans:
            assert p.id_property is not None
            existing = p.existing
            if existing is None:
                obj = self.create(t, p.values, "batch/upsert", p.id_property, p.id_value)
            else:
                obj = self.update(t, existing, p.values, "batch/upsert", p.id_property, p.id_value)
            results.append({**self.render(t, obj, self._written(t, p.values)), "new": existing is None})
        return results, failures


def _dict(body: Any, model: str) -> JsonDict:
    if not isinstance(body, dict):
        raise validation_error(f"Invalid input JSON: Cannot build {model} from a JSON {type(body).__name__}")
    return body


def _not_found(t: ObjectType, ids: list[str]) -> JsonDict:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {t.label} objects, they may be deleted or not exist. Check that ids are "
                       "valid.", "context": {"ids": ids}}
