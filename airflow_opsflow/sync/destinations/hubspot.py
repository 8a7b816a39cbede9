"""HubSpot CRM objects (contacts, companies, deals, tickets, custom objects) through the v3 batch API.

* upsert: ``POST /crm/v3/objects/{type}/batch/upsert`` by a unique ``id_property`` (100 inputs a request);
* insert: ``batch/create``; update: ``batch/update`` addressed by ``id_property`` (absent -> ``missing``);
* delete (mirror): ``batch/archive`` by HubSpot's object id, remembered from the upsert's answer; a
  record written by a killed run before its id was recorded is looked up by ``id_property`` first.

``type`` is a name (``tickets``) or a type id (``0-5``, a custom object's ``2-1234``). Tickets need their
stage on create: map ``hs_pipeline_stage`` (and ``hs_pipeline``, else HubSpot's default pipeline ``0``) to
the stage's and pipeline's ids (``GET /crm/v3/pipelines/tickets`` lists them); the mapping has no
constants, so a fixed pipeline is a literal column of the query (``'0' AS pipeline``).

A batch HubSpot refuses as a whole (400, e.g. one invalid property value) is split by the engine down to
the bad record; a 207 multi-status answer is mapped back to records through the error's ``context.ids``.
Values are sent as HubSpot expects them: strings, ``true``/``false``, empty string to clear.

Associations (:class:`Association`): after a batch is written, each record written is associated with the
record of another type whose unique ``id_property`` equals the record's ``key`` field (a mapped field used
for this only, never written as a property). Per association and batch: one ``batch/read`` of the targets by
``idProperty`` (distinct values) and one v4 ``batch/associate/default`` (HubSpot's default, unlabeled
association), so a batch of 100 costs 1 + 2 per association requests. The key is hashed with the other
fields: a record whose key did not change is not sent again, one whose key changed is associated with its
new target (its old association is left in place: HubSpot records may have several, some made by people,
and the old target is not known without reading every record's associations).

A target that does not exist is an error for that record, naming the value: the record itself was written
(its object id is kept), but it is not confirmed, so the next run sends it again and associates it once the
target exists. Confirming it would store its hash, and nothing would send it again until its key changed.
When a request after the write fails transiently (429, 5xx), the engine repeats the batch: what HubSpot
already answered for it (the write, resolved targets, associations made) is kept and not sent again.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

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
from airflow_opsflow.sync.destinations.transport import Answer, HttpTransport

MAX_INPUTS = 100
BY_PROPERTY = "@"  # a ref holding the id_property value, not HubSpot's object id (ids are numeric)
PIPELINE_STAGE = {"tickets": "hs_pipeline_stage", "0-5": "hs_pipeline_stage"}  # required when a record is created


class Association(NamedTuple):
    """Associate each record with the ``to`` record whose ``id_property`` equals the record's ``key`` field.

    :param to: the target object type (``companies``, ``contacts``, ``2-1234``...).
    :param key: the mapped field holding the target's value (not written as a property).
    :param id_property: a unique-value property of ``to`` (or ``hs_object_id``) the value is looked up by.
    """

    to: str
    key: str
    id_property: str


@dataclass
class _Progress:
    """What HubSpot already answered for a batch the engine may repeat."""

    written: list[Outcome] | None = None
    targets: dict[int, dict[str, str | None]] = field(default_factory=dict)  # association -> value -> object id
    linked: set[int] = field(default_factory=set)  # associations done
    errors: dict[int, list[str]] = field(default_factory=dict)  # record index -> association errors


def _value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, (str, int, float)) else str(v)


class HubSpotObjectsClient(DestinationClient):
    """Write records as HubSpot CRM objects. The engine side of
    :class:`~airflow_opsflow.destinations.hubspot.HubSpotObjects` (its declaration, which opens it).

    :param transport: the HubSpot API connection (bearer token, rate budget).
    :param object_type: ``contacts``, ``companies``, ``deals``, ``tickets``... or a custom object's type id.
    :param id_property: a unique property identifying records (``email`` for contacts, or your own
        unique-value property such as ``account_id``); it must be mapped.
    :param associations: records of other types to associate each written record with (see the module).
    """

    name: ClassVar[str] = "HubSpot"
    max_batch: ClassVar[int] = MAX_INPUTS
    plans_refs: ClassVar[bool] = True

    def __init__(self, transport: HttpTransport, object_type: str, id_property: str,
                 associations: Sequence[Association] = ()) -> None:
        if not object_type or "/" in object_type:
            raise ValueError(f"HubSpot object_type must be a type name such as 'companies', got {object_type!r}")
        self.transport = transport
        self.object_type = object_type
        self.id_property = id_property
        self.associations = [Association(*a) for a in associations]
        self.name = f"HubSpot {object_type}"  # type: ignore[misc]
        self._base = f"/crm/v3/objects/{object_type}"
        self._keys = frozenset(a.key for a in self.associations)  # fields not written as properties
        self._lock = threading.Lock()
        self._progress: dict[Hashable, _Progress] = {}

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        problems = []
        if self.id_property not in fields:
            problems.append(f"id_property {self.id_property!r} must be mapped (HubSpot finds records by it)")
        stage = PIPELINE_STAGE.get(self.object_type.lower())
        if stage and mode != "update" and stage not in fields:
            problems.append(f"{stage!r} must be mapped: HubSpot creates a ticket only with its stage (the stage's "
                            "id in the ticket's hs_pipeline; a constant is a literal column of the query, e.g. "
                            "'1' AS stage); with mode='update' existing tickets are updated without it")
        for a in self.associations:
            if a.key not in fields:
                problems.append(f"association key {a.key!r} (for {a.to}) must be mapped: it holds the {a.to} "
                                f"record's {a.id_property}")
            elif a.key == self.id_property:
                problems.append(f"association key {a.key!r} is the id_property: map the {a.to} value to a field "
                                "of its own")
        return problems

    def fingerprint(self) -> Any:
        base: list[Any] = ["hubspot", self.object_type, self.id_property]
        # Only with associations: adding one re-sends every record (to associate it); none changes nothing.
        return base + [list(a) for a in self.associations] if self.associations else base

    def planned_ref(self, record: Record) -> str | None:
        # HubSpot assigns the object id; until it is known, the ref names the record by id_property.
        return BY_PROPERTY + self._id(record)

    def requests_for(self, op: Operation, records: int, batch_size: int) -> int:
        batches = -(-records // batch_size)
        return batches * (1 if op == "delete" else 1 + 2 * len(self.associations))

    def _id(self, r: Record) -> str:
        return str((r.fields or {}).get(self.id_property))

    def _props(self, r: Record) -> dict[str, Any]:
        # The id property goes in too: HubSpot echoes the written properties, and that is how results map
        # back to records in a 207 (results and errors come in no particular order).
        return {k: _value(v) for k, v in (r.fields or {}).items() if k not in self._keys}

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        if op == "delete":
            return self._archive(records)
        if not self.associations:
            return self._write(op, records)
        tag = (op, records[0].write_id, len(records), records[0].key, records[-1].key)  # a repeat has the same
        with self._lock:
            progress = self._progress.setdefault(tag, _Progress())
        try:
            if progress.written is None:
                progress.written = self._write(op, records)
            for n, association in enumerate(self.associations):
                if n not in progress.linked:
                    for i, error in self._associate(n, association, records, progress).items():
                        progress.errors.setdefault(i, []).append(error)
                    progress.linked.add(n)
        except TransientError:
            raise  # the engine repeats the batch: what was answered is kept for it
        except BaseException:
            with self._lock:
                self._progress.pop(tag, None)
            raise
        with self._lock:
            self._progress.pop(tag, None)
        out = list(progress.written)
        for i, errors in progress.errors.items():
            out[i] = Outcome("error", "; ".join(errors), ref=out[i].ref)
        return out

    def _write(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        if op == "upsert":
            inputs = [{"idProperty": self.id_property, "id": self._id(r), "properties": self._props(r)}
                      for r in records]
            path = "batch/upsert"
        elif op == "insert":
            inputs = [{"properties": self._props(r)} for r in records]
            path = "batch/create"
        else:
            inputs = [{"idProperty": self.id_property, "id": self._id(r), "properties": self._props(r)}
                      for r in records]
            path = "batch/update"
        answer = self.transport.request("POST", f"{self._base}/{path}", {"inputs": inputs})
        return self._outcomes(op, records, answer)

    def _outcomes(self, op: Operation, records: Sequence[Record], answer: Answer) -> list[Outcome]:
        body = answer.json() or {}
        refs: dict[str, str] = {}
        for result in body.get("results") or []:
            value = (result.get("properties") or {}).get(self.id_property)
            if value is not None and result.get("id") is not None:
                refs[str(value)] = str(result["id"])
        if not refs and len(body.get("results") or []) == len(records) and not body.get("errors"):
            refs = {self._id(r): str(res.get("id")) for r, res in zip(records, body["results"], strict=True)}
        errors: dict[str, Outcome] = {}
        for err in body.get("errors") or []:
            message = f"{err.get('category', 'ERROR')}: {err.get('message', 'rejected')}"
            context = err.get("context") or {}
            ids = [str(i) for i in (context.get("ids") or context.get("id") or [])]
            missing = op == "update" and err.get("category") == "OBJECT_NOT_FOUND"
            for i in ids:
                errors[i] = Outcome("missing") if missing else Outcome("error", message)
            if not ids:  # an error we cannot attribute: every record without a result shares it
                for r in records:
                    errors.setdefault(self._id(r), Outcome("error", message))
        out = []
        for r in records:
            rid = self._id(r)
            ref = refs.get(rid)
            if ref is not None:
                out.append(Outcome(ref=ref))
            else:
                out.append(errors.get(rid, Outcome(ref=r.ref) if answer.status in (200, 201) else
                                      Outcome("error", "HubSpot returned no result for this record")))
        return out

    # -- associations ----------------------------------------------------------------------------------

    def _associate(self, n: int, a: Association, records: Sequence[Record], progress: _Progress) -> dict[int, str]:
        """Associate the batch's written records with their ``a.to`` records; the errors, by record index."""
        assert progress.written is not None
        errors: dict[int, str] = {}
        wanted: dict[int, tuple[str, str]] = {}  # record index -> (object id, target value)
        for i, (r, o) in enumerate(zip(records, progress.written, strict=True)):
            value = _value((r.fields or {}).get(a.key))
            if o.status != "ok" or value == "":  # rejected, absent (update), or nothing to associate with
                continue
            if not o.ref or o.ref.startswith(BY_PROPERTY):
                errors[i] = (
                    f"HubSpot returned no object id, so it was not associated with {a.to} {a.id_property} "
                    f"{value!r}")
                continue
            wanted[i] = (o.ref, str(value))
        if not wanted:
            return errors
        if n not in progress.targets:
            progress.targets[n] = self._targets(a, [v for _, v in wanted.values()])
        targets = progress.targets[n]
        inputs: list[tuple[int, str, str]] = []  # (record index, object id, target object id)
        for i, (ref, value) in wanted.items():
            target = targets.get(self._fold(a, value))
            if target is None:
                errors[i] = (
                    f"no {a.to} record with {a.id_property} {value!r} to associate with (the record was written; "
                    f"it is associated by a later run once that {a.to} record exists)")
            else:
                inputs.append((i, ref, target))
        for start in range(0, len(inputs), MAX_INPUTS):
            errors.update(self._link(a, inputs[start:start + MAX_INPUTS]))
        return errors

    def _fold(self, a: Association, value: str) -> str:
        # HubSpot compares contact emails case-insensitively (and refuses a batch holding both spellings).
        return value.lower() if (a.to.lower(), a.id_property) in (("contacts", "email"), ("0-1", "email")) else value

    def _targets(self, a: Association, values: list[str]) -> dict[str, str | None]:
        """The object ids of the ``a.to`` records with these ``a.id_property`` values (folded value -> id)."""
        unique = list(dict.fromkeys(self._fold(a, v) for v in values))
        found: dict[str, str | None] = dict.fromkeys(unique)
        for start in range(0, len(unique), MAX_INPUTS):
            body = {"idProperty": a.id_property, "properties": [a.id_property],
                    "inputs": [{"id": v} for v in unique[start:start + MAX_INPUTS]]}
            answer = self._association_request(a, f"/crm/v3/objects/{a.to}/batch/read", body, "read")
            for res in (answer.json() or {}).get("results") or []:
                value = (res.get("properties") or {}).get(a.id_property)
                if value is not None and res.get("id") is not None:
                    found[self._fold(a, str(value))] = str(res["id"])
        return found

    def _link(self, a: Association, inputs: list[tuple[int, str, str]]) -> dict[int, str]:
        """One batch associate request; the errors HubSpot answered, by record index."""
        body = {"inputs": [{"from": {"id": ref}, "to": {"id": target}} for _, ref, target in inputs]}
        path = f"/crm/v4/associations/{self.object_type}/{a.to}/batch/associate/default"
        answer = self._association_request(a, path, body, "associate")
        refused: dict[int, str] = {}
        by_id: dict[str, list[int]] = {}
        for i, ref, target in inputs:
            by_id.setdefault(ref, []).append(i)
            by_id.setdefault(target, []).append(i)
        for err in (answer.json() or {}).get("errors") or []:
            message = f"associating with {a.to}: {err.get('category', 'ERROR')}: {err.get('message', 'refused')}"
            context = err.get("context") or {}
            ids = [str(i) for key in ("ids", "id", "fromObjectId", "toObjectId") for i in context.get(key) or []]
            hit = {i for object_id in ids for i in by_id.get(object_id, [])}
            for i in hit or [i for i, _, _ in inputs]:  # unattributed: every record of the request
                refused.setdefault(i, message)
        return refused

    def _association_request(self, a: Association, path: str, body: Any, what: str) -> Answer:
        try:
            return self.transport.request("POST", path, body)
        except BatchRejected as e:  # the same for every batch: splitting it would change nothing
            hint = ("its id_property must be a unique-value property of that type (or hs_object_id)" if what == "read"
                    else f"HubSpot must have a default association from {self.object_type} to {a.to}")
            raise DestinationFailed(f"association with {a.to} by {a.id_property} (key {a.key!r}): {e}; "
                                    f"{hint}") from None

    # -- mirror deletes and reads ----------------------------------------------------------------------

    def _archive(self, records: Sequence[Record]) -> list[Outcome]:
        ids = {r.key: r.ref for r in records if r.ref and not r.ref.startswith(BY_PROPERTY)}
        by_property = {r.ref[len(BY_PROPERTY):]: r.key for r in records if r.ref and r.ref.startswith(BY_PROPERTY)}
        if by_property:  # written by a killed run, its id never recorded: find it (absent: nothing to archive)
            body = {"idProperty": self.id_property, "properties": [self.id_property],
                    "inputs": [{"id": value} for value in by_property]}
            answer = self.transport.request("POST", f"{self._base}/batch/read", body)
            for res in (answer.json() or {}).get("results") or []:
                value = str((res.get("properties") or {}).get(self.id_property))
                if value in by_property and res.get("id") is not None:
                    ids[by_property[value]] = str(res["id"])
        if ids:
            self.transport.request("POST", f"{self._base}/batch/archive",
                                   {"inputs": [{"id": ref} for ref in ids.values()]})
        return [OK if r.ref else Outcome("error", "no HubSpot object id recorded for this key") for r in records]

    def read(self, records: Sequence[Record]) -> dict[str, dict[str, Any] | None] | None:
        if not records:
            return {}
        records = records[:MAX_INPUTS]
        names = sorted({k for r in records for k in (r.fields or {}) if k not in self._keys})
        body = {"idProperty": self.id_property, "properties": names,
                "inputs": [{"id": self._id(r)} for r in records]}
        answer = self.transport.request("POST", f"{self._base}/batch/read", body)
        found: dict[str, dict[str, Any]] = {}
        object_ids: dict[str, str] = {}  # id_property value -> object id
        for res in (answer.json() or {}).get("results") or []:
            value = str((res.get("properties") or {}).get(self.id_property))
            found[value] = dict(res.get("properties") or {})
            if res.get("id") is not None:
                object_ids[value] = str(res["id"])
        for a in self.associations:  # a dry run's diff shows the target a record is associated with now
            linked = self._linked_values(a, list(object_ids.values()))
            for r in records:
                current = found.get(self._id(r))
                if current is not None:
                    values = linked.get(object_ids.get(self._id(r), ""), [])
                    new = (r.fields or {}).get(a.key)
                    current[a.key] = new if str(_value(new)) in values else (
                        values[0] if len(values) == 1 else values or None)
        return {r.key: found.get(self._id(r)) for r in records}

    def _linked_values(self, a: Association, object_ids: list[str]) -> dict[str, list[str]]:
        """The ``a.id_property`` values of the ``a.to`` records each object is associated with."""
        if not object_ids:
            return {}
        answer = self.transport.request("POST", f"/crm/v4/associations/{self.object_type}/{a.to}/batch/read",
                                        {"inputs": [{"id": i} for i in object_ids]})
        links = {str((res.get("from") or {}).get("id")): [str(t.get("toObjectId")) for t in res.get("to") or []]
                 for res in (answer.json() or {}).get("results") or []}
        targets = list(dict.fromkeys(t for ts in links.values() for t in ts))[:MAX_INPUTS]
        values: dict[str, str] = {}
        if targets:
            answer = self.transport.request("POST", f"/crm/v3/objects/{a.to}/batch/read",
                                            {"properties": [a.id_property], "inputs": [{"id": t} for t in targets]})
            values = {str(res.get("id")): str((res.get("properties") or {}).get(a.id_property))
                      for res in (answer.json() or {}).get("results") or []}
        return {i: sorted(values[t] for t in ts if t in values) for i, ts in links.items()}

    def close(self) -> None:
        self.transport.close()
