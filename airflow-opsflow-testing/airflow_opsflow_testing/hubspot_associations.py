"""Associations between records of :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot` (v3 create, v4).

HubSpot-defined association types, with the ids HubSpot's association docs list (each pair has an unlabeled
type, some also a "Primary" one): contact→company 279 (Primary 1), deal→contact 3, deal→company 341 (Primary 5),
ticket→contact 16, ticket→company 339 (Primary 26), ticket→deal 28, note→contact 202, note→company 190,
note→deal 214, note→ticket 228; each has its inverse (company→contact 280, ticket→note 227...).

As on HubSpot, an association always exists in both directions, a labeled one also brings the pair's unlabeled
type, ``PUT .../associations/default/...`` answers with both directions, and reads list every type of a pair
(``label`` null for unlabeled ones). Associations of archived records are not listed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_opsflow_testing.hubspot_schema import HubSpotError, JsonDict, ObjectType, hubspot_time, validation_error

if TYPE_CHECKING:
    from airflow_opsflow_testing.hubspot_store import HubSpotCrm

CATEGORY = "HUBSPOT_DEFINED"
MAX_BATCH = 1000  # v4 batch association endpoints take up to 1,000 inputs


@dataclass(frozen=True)
class AssociationType:
    type_id: int
    from_type: str
    to_type: str
    name: str  # what v3 reads call it: "note_to_ticket", "ticket_to_company_unlabeled"
    label: str | None  # None: the pair's unlabeled type
    inverse: int


def _pairs() -> list[AssociationType]:
    table = [  # from, to, forward id, inverse id, label
        ("contacts", "companies", 279, 280, None), ("contacts", "companies", 1, 2, "Primary"),
        ("deals", "contacts", 3, 4, None),
        ("deals", "companies", 341, 342, None), ("deals", "companies", 5, 6, "Primary"),
        ("tickets", "contacts", 16, 15, None),
        ("tickets", "companies", 339, 340, None), ("tickets", "companies", 26, 25, "Primary"),
        ("tickets", "deals", 28, 27, None),
        ("notes", "contacts", 202, 201, None), ("notes", "companies", 190, 189, None),
        ("notes", "deals", 214, 213, None), ("notes", "tickets", 228, 227, None),
    ]
    labeled = {(a, b) for a, b, _, _, label in table if label}
    types = []
    for a, b, forward, back, label in table:
        suffix = "_unlabeled" if label is None and (a, b) in labeled else ""  # "Primary" keeps the plain name
        types.append(AssociationType(forward, a, b, f"{_singular(a)}_to_{_singular(b)}{suffix}", label, back))
        types.append(AssociationType(back, b, a, f"{_singular(b)}_to_{_singular(a)}{suffix}", label, forward))
    return types


def _singular(name: str) -> str:
    return "company" if name == "companies" else name[:-1]


TYPES: dict[int, AssociationType] = {a.type_id: a for a in _pairs()}


class Associations:
    """Links between records: (from type, from id, to type) -> {to id: {association type ids}}."""

    def __init__(self) -> None:
        self._links: dict[tuple[str, str, str], dict[str, set[int]]] = {}

    def clear(self) -> None:
        self._links.clear()

    @staticmethod
    def unlabeled(from_type: str, to_type: str) -> AssociationType:
        found = next((a for a in TYPES.values() if (a.from_type, a.to_type, a.label) == (from_type, to_type, None)),
                     None)
        if found is None:
            raise validation_error(f"No default association type exists from {from_type} to {to_type}")
        return found

    @staticmethod
    def kind(type_id: Any, from_type: str, to_type: str | None = None) -> AssociationType:
        found = TYPES.get(type_id) if isinstance(type_id, int) else None
        if found is None or found.from_type != from_type or to_type not in (None, found.to_type):
            where = f"{from_type} to {to_type}" if to_type else from_type
            raise validation_error(f"{type_id} is not a valid association type id from {where}")
        return found

    def add(self, kind: AssociationType, from_id: str, to_id: str) -> None:
        """Link both ways; a labeled type also brings the pair's unlabeled one."""
        kinds = {kind} | ({self.unlabeled(kind.from_type, kind.to_type)} if kind.label is not None else set())
        for k in kinds:
            self._links.setdefault((k.from_type, from_id, k.to_type), {}).setdefault(to_id, set()).add(k.type_id)
            self._links.setdefault((k.to_type, to_id, k.from_type), {}).setdefault(from_id, set()).add(k.inverse)

    def remove(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self._links.get((from_type, from_id, to_type), {}).pop(to_id, None)
        self._links.get((to_type, to_id, from_type), {}).pop(from_id, None)

    def of(self, crm: HubSpotCrm, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        """The live records ``from_id`` is associated with, in id order, and the association types of each."""
        links = self._links.get((from_type, from_id, to_type), {})
        live = crm.objects.get(to_type, {})
        return {i: set(links[i]) for i in sorted(links, key=int) if i in live and not live[i].archived}


# --- helpers the object endpoints use --------------------------------------------------------------------

def plan_create(crm: HubSpotCrm, t: ObjectType, specs: Any) -> list[tuple[AssociationType, str]]:
    """Check the ``associations`` of a v3 create body before anything is written."""
    if specs is None:
        return []
    if not isinstance(specs, list):
        raise validation_error("Invalid input JSON: associations must be a list")
    planned = []
    for spec in specs:
        to_id = str(((spec or {}).get("to") or {}).get("id", "")) if isinstance(spec, dict) else ""
        types = spec.get("types") if isinstance(spec, dict) else None
        if not to_id or not isinstance(types, list) or not types:
            raise validation_error("Invalid input JSON: each association needs to.id and types")
        for item in types:
            kind = Associations.kind(item.get("associationTypeId") if isinstance(item, dict) else None, t.name)
            if crm.find(crm.types[kind.to_type], to_id) is None:
                raise HubSpotError(400, "VALIDATION_ERROR", f"{crm.types[kind.to_type].label} {to_id} does not "
                                   "exist: associations must point at existing records", context={"ids": [to_id]})
            planned.append((kind, to_id))
    return planned


def attach(crm: HubSpotCrm, t: ObjectType, body: JsonDict, to_types: Iterable[str]) -> JsonDict:
    """Add a v3 read's ``associations`` section (``?associations=notes``); types without any are left out."""
    section: JsonDict = {}
    for segment in to_types:
        to = crm.resolve(segment)
        linked = crm.associations.of(crm, t.name, body["id"], to.name)
        results = [{"id": i, "type": TYPES[k].name} for i, kinds in linked.items() for k in sorted(kinds)]
        if results:
            section[to.name] = {"results": results}
    if section:
        body["associations"] = section
    return body


# --- v4 endpoints ------------------------------------------------------------------------------------------

def _now() -> str:
    return hubspot_time(datetime.now(UTC))


def _record(crm: HubSpotCrm, t: ObjectType, object_id: str) -> None:
    if crm.find(t, object_id) is None:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"No {t.label} with id {object_id} exists",
                           context={"id": [object_id]})


def _default_pair(kind: AssociationType, from_id: str, to_id: str) -> list[JsonDict]:
    spec = {"associationCategory": CATEGORY, "associationTypeId": kind.type_id}
    back = {"associationCategory": CATEGORY, "associationTypeId": kind.inverse}
    return [{"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": spec},
            {"from": {"id": to_id}, "to": {"id": from_id}, "associationSpec": back}]


def put_default(crm: HubSpotCrm, a: ObjectType, from_id: str, b: ObjectType, to_id: str) -> tuple[int, Any]:
    _record(crm, a, from_id)
    _record(crm, b, to_id)
    started, kind = _now(), Associations.unlabeled(a.name, b.name)
    crm.associations.add(kind, from_id, to_id)
    return 200, {"status": "COMPLETE", "results": _default_pair(kind, from_id, to_id), "startedAt": started,
                 "completedAt": _now()}


def _labels(crm: HubSpotCrm, a: ObjectType, from_id: str, b: ObjectType, to_id: str) -> JsonDict:
    kinds = crm.associations.of(crm, a.name, from_id, b.name).get(to_id, set())
    return {"fromObjectTypeId": a.type_id, "fromObjectId": int(from_id), "toObjectTypeId": b.type_id,
            "toObjectId": int(to_id), "labels": sorted(str(TYPES[k].label) for k in kinds if TYPES[k].label)}


def _specs(a: ObjectType, b: ObjectType, specs: Any) -> list[AssociationType]:
    if not isinstance(specs, list) or not specs:
        raise validation_error("Invalid input JSON: expected a list of association specs")
    return [Associations.kind(s.get("associationTypeId") if isinstance(s, dict) else None, a.name, b.name)
            for s in specs]


def put_labeled(crm: HubSpotCrm, a: ObjectType, from_id: str, b: ObjectType, to_id: str,
                body: Any) -> tuple[int, Any]:
    kinds = _specs(a, b, body)
    _record(crm, a, from_id)
    _record(crm, b, to_id)
    for kind in kinds:
        crm.associations.add(kind, from_id, to_id)
    return 201, _labels(crm, a, from_id, b, to_id)


def _to_entries(linked: dict[str, set[int]]) -> list[JsonDict]:
    return [{"toObjectId": int(i), "associationTypes": [
        {"category": CATEGORY, "typeId": k, "label": TYPES[k].label} for k in sorted(kinds)]}
        for i, kinds in linked.items()]


def list_page(crm: HubSpotCrm, a: ObjectType, from_id: str, b: ObjectType, limit: int,
              after: str | None) -> tuple[int, Any]:
    _record(crm, a, from_id)
    entries = _to_entries(crm.associations.of(crm, a.name, from_id, b.name))
    start = int(after) if after and after.isdigit() else 0
    body: JsonDict = {"results": entries[start:start + limit]}
    if start + limit < len(entries):
        body["paging"] = {"next": {"after": str(start + limit), "link": None}}
    return 200, body


def _inputs(body: Any, model: str) -> list[JsonDict]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise validation_error(f"Invalid input JSON: Cannot build {model}, some of required attributes are not set "
                               "[inputs]")
    if len(inputs) > MAX_BATCH:
        raise validation_error(f"The maximum number of inputs supported in a batch request is {MAX_BATCH}")
    return inputs


def _batch_answer(results: list[JsonDict], errors: list[JsonDict], started: str, ok: int) -> tuple[int, Any]:
    answer: JsonDict = {"status": "COMPLETE", "results": results}
    if errors:
        answer.update(numErrors=len(errors), errors=errors)
    answer.update(startedAt=started, completedAt=_now())
    return (207 if errors else ok), answer


def _missing(t: ObjectType, ids: list[str]) -> JsonDict:
    return {"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": ids}, "links": {}, "errors": [],
            "message": f"Could not find {t.label} objects with ids {', '.join(ids)}"}


def batch(crm: HubSpotCrm, op: str, a: ObjectType, b: ObjectType, body: Any) -> tuple[int, Any]:
    """``POST /crm/v4/associations/{from}/{to}/batch/{create,read,archive,associate/default}``."""
    inputs, started = _inputs(body, f"BatchInputPublicAssociation ({op})"), _now()
    kinds = [_specs(a, b, i.get("types")) if op == "create" else [] for i in inputs]  # a bad type fails the batch
    results: list[JsonDict] = []
    errors: list[JsonDict] = []
    for item, item_kinds in zip(inputs, kinds, strict=True):
        from_id = str((item.get("from") or {}).get("id", "")) if op != "read" else str(item.get("id", ""))
        if crm.find(a, from_id) is None:
            errors.append(_missing(a, [from_id]))
            continue
        if op == "read":
            linked = crm.associations.of(crm, a.name, from_id, b.name)
            if linked:
                results.append({"from": {"id": from_id}, "to": _to_entries(linked)})
            else:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND", "links": {}, "errors": [],
                               "context": {"fromObjectId": [from_id]},
                               "message": f"No {b.name} is associated with {a.label} {from_id}."})
            continue
        targets = item.get("to")
        to_ids = [str(t.get("id", "")) for t in targets] if isinstance(targets, list) else [
            str((targets or {}).get("id", ""))]
        absent = [i for i in to_ids if crm.find(b, i) is None]
        if absent:
            errors.append(_missing(b, absent))
            continue
        for to_id in to_ids:
            if op == "archive":
                crm.associations.remove(a.name, from_id, b.name, to_id)
            elif op == "create":
                for kind in item_kinds:
                    crm.associations.add(kind, from_id, to_id)
                results.append(_labels(crm, a, from_id, b, to_id))
            else:  # associate/default
                kind = Associations.unlabeled(a.name, b.name)
                crm.associations.add(kind, from_id, to_id)
                results.extend(_default_pair(kind, from_id, to_id))
    if op == "archive":
        return 204, None
    return _batch_answer(results, errors, started, 201 if op == "create" else 200)


def labels(a: ObjectType, b: ObjectType) -> tuple[int, Any]:
    kinds = [k for k in TYPES.values() if (k.from_type, k.to_type) == (a.name, b.name)]
    return 200, {"results": [{"category": CATEGORY, "typeId": k.type_id, "label": k.label}
                             for k in sorted(kinds, key=lambda k: k.type_id)]}
