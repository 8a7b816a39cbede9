"""HubSpot CRM objects (contacts, companies, deals, custom objects) through the v3 batch API.

* upsert: ``POST /crm/v3/objects/{type}/batch/upsert`` by a unique ``id_property`` (100 inputs a request);
* insert: ``batch/create``; update: ``batch/update`` addressed by ``id_property`` (absent -> ``missing``);
* delete (mirror): ``batch/archive`` by HubSpot's object id, remembered from the upsert's answer; a
  record written by a killed run before its id was recorded is looked up by ``id_property`` first.

A batch HubSpot refuses as a whole (400, e.g. one invalid property value) is split by the engine down to
the bad record; a 207 multi-status answer is mapped back to records through the error's ``context.ids``.
Values are sent as HubSpot expects them: strings, ``true``/``false``, empty string to clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_opsflow.sync.destinations.base import OK, DestinationClient, Operation, Outcome, Record
from airflow_opsflow.sync.destinations.transport import Answer, HttpTransport

MAX_INPUTS = 100
BY_PROPERTY = "@"  # a ref holding the id_property value, not HubSpot's object id (ids are numeric)


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
    :param object_type: ``contacts``, ``companies``, ``deals``, ... or a custom object's type id.
    :param id_property: a unique property identifying records (``email`` for contacts, or your own
        unique-value property such as ``account_id``); it must be mapped.
    """

    name: ClassVar[str] = "HubSpot"
    max_batch: ClassVar[int] = MAX_INPUTS
    plans_refs: ClassVar[bool] = True

    def __init__(self, transport: HttpTransport, object_type: str, id_property: str) -> None:
        if not object_type or "/" in object_type:
            raise ValueError(f"HubSpot object_type must be a type name such as 'companies', got {object_type!r}")
        self.transport = transport
        self.object_type = object_type
        self.id_property = id_property
        self.name = f"HubSpot {object_type}"  # type: ignore[misc]
        self._base = f"/crm/v3/objects/{object_type}"

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        if self.id_property not in fields:
            return [f"id_property {self.id_property!r} must be mapped (HubSpot finds records by it)"]
        return []

    def fingerprint(self) -> Any:
        return ["hubspot", self.object_type, self.id_property]

    def planned_ref(self, record: Record) -> str | None:
        # HubSpot assigns the object id; until it is known, the ref names the record by id_property.
        return BY_PROPERTY + self._id(record)

    def _id(self, r: Record) -> str:
        return str((r.fields or {}).get(self.id_property))

    def _props(self, r: Record) -> dict[str, Any]:
        # The id property goes in too: HubSpot echoes the written properties, and that is how results map
        # back to records in a 207 (results and errors come in no particular order).
        return {k: _value(v) for k, v in (r.fields or {}).items()}

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        if op == "delete":
            return self._archive(records)
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
        names = sorted({k for r in records for k in (r.fields or {})})
        body = {"idProperty": self.id_property, "properties": names,
                "inputs": [{"id": self._id(r)} for r in records[:MAX_INPUTS]]}
        answer = self.transport.request("POST", f"{self._base}/batch/read", body)
        found = {str((res.get("properties") or {}).get(self.id_property)): res.get("properties") or {}
                 for res in (answer.json() or {}).get("results") or []}
        return {r.key: found.get(self._id(r)) for r in records}

    def close(self) -> None:
        self.transport.close()
