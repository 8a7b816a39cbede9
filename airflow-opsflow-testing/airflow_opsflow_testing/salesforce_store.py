"""The records of FakeSalesforce and the rules a save follows (one org, shared by REST, Collections and Bulk).

A save checks, in order: unknown fields (``INVALID_FIELD``), read-only ones (``INVALID_FIELD_FOR_INSERT_UPDATE``),
value types (``INVALID_TYPE_ON_FIELD_IN_RECORD``, ``STRING_TOO_LONG``, ``INVALID_EMAIL_ADDRESS``), restricted
picklists (``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``), references (``FIELD_INTEGRITY_EXCEPTION``,
``INVALID_CROSS_REFERENCE_KEY``), required fields (``REQUIRED_FIELD_MISSING``) and unique fields
(``DUPLICATE_VALUE``). Then derived fields follow: Case ``IsClosed``/``ClosedDate`` from the status's closed flag,
``CaseNumber``, Contact ``Name``, a custom object's ``Name`` (its id when not given), the audit fields.

Records are replaced, never edited in place, so an all-or-none request undoes itself by putting back the
records it replaced (:meth:`SalesforceOrg.transaction`); ids and case numbers it used stay used, as on Salesforce.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_opsflow_testing.salesforce_schema import (
    COMPOUND_TYPES,
    NUMBER_TYPES,
    SalesforceError,
    SfField,
    SfObject,
    compound_value,
    custom_object,
    make_id,
    normalize_id,
    not_found,
    parse_date,
    parse_datetime,
    record_error,
    sf_datetime,
    standard_objects,
)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
READ_ONLY = ("Unable to create/update fields: {}. Please check the security settings of this field and verify "
             "that it is read/write for your profile or permission set.")


@dataclass
class SfRecord:
    object: str
    id: str
    fields: dict[str, Any]  # canonical field name -> value (Id and the audit fields included)
    deleted: bool = False

    def get(self, name: str) -> Any:
        return self.fields.get(name)


@dataclass(frozen=True)
class WriteRecord:
    """One applied create/update/delete: what the caller sent (canonical names) and through which API."""

    op: str  # "create" | "update" | "delete"
    object: str
    id: str
    values: dict[str, Any]
    via: str  # "rest" | "collections" | "bulk"


class MultipleMatches(SalesforceError):
    """An upsert's external id matched several records (REST answers 300 with their URLs)."""

    def __init__(self, field_name: str, ids: list[str]) -> None:
        super().__init__(300, "DUPLICATE_EXTERNAL_ID",
                         f"{field_name}: more than one record found for external id field: [{', '.join(ids)}]",
                         [field_name], record=True)
        self.ids = ids


@dataclass
class _Undo:
    entries: list[tuple[str, str, SfRecord | None]] = field(default_factory=list)
    writes: int = 0


class SalesforceOrg:
    """Objects, records and the write log, behind one re-entrant lock (``with org.lock``)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self.now = clock or (lambda: datetime.now(UTC))
        self.objects: dict[str, SfObject] = {}
        self.records: dict[str, dict[str, SfRecord]] = {}
        self.writes: list[WriteRecord] = []
        self.user_id, self.org_id = make_id("005", 1), make_id("00D", 1)
        self._counters: dict[str, int] = {}
        self._case_number = 1000
        self._custom_objects = 0
        self._undo: _Undo | None = None
        # (object, field) -> (field, folded value -> ids): external-id look-ups without a scan per upsert (a
        # 100k-record Bulk upsert would otherwise be quadratic); kept up to date by _save, rebuilt when unsure.
        self._index: dict[tuple[str, str], tuple[SfField, dict[Any, dict[str, None]]]] = {}
        for obj in standard_objects():
            self.add_object(obj)

    # --- schema ---------------------------------------------------------------------------------------

    def add_object(self, obj: SfObject) -> SfObject:
        with self.lock:
            self.objects[obj.name.lower()] = obj
            self.records.setdefault(obj.name, {})
            return obj

    def define_object(self, name: str, label: str | None = None) -> SfObject:
        with self.lock:
            if name.lower() in self.objects:
                return self.objects[name.lower()]
            self._custom_objects += 1
            prefix = "a0" + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[self._custom_objects % 36]
            return self.add_object(custom_object(name, prefix, label))

    def object(self, name: str) -> SfObject | None:
        return self.objects.get(name.lower())

    def resolve(self, name: str) -> SfObject:
        obj = self.object(name)
        if obj is None:
            raise not_found()
        return obj

    def object_of(self, record_id: str) -> SfObject | None:
        prefix = record_id[:3]
        return next((o for o in self.objects.values() if o.key_prefix == prefix), None)

    # --- reads ----------------------------------------------------------------------------------------

    def live(self, obj: SfObject, deleted: bool = False) -> list[SfRecord]:
        return [r for r in self.records[obj.name].values() if deleted or not r.deleted]

    def find(self, record_id: str) -> SfRecord | None:
        full = normalize_id(record_id)
        obj = self.object_of(full) if full else None
        return None if obj is None or full is None else self.records[obj.name].get(full)

    def lookup(self, value: Any) -> SfRecord | None:
        """The live record a lookup field's value points to (None: empty, unknown or deleted)."""
        found = self.find(value) if isinstance(value, str) and value else None
        return found if found is not None and not found.deleted else None

    def matches(self, obj: SfObject, f: SfField, value: Any) -> list[SfRecord]:
        if f.type == "id":
            found = self.find(str(value))
            return [found] if found is not None and found.object == obj.name and not found.deleted else []
        wanted = _fold(f, value)
        records = self.records[obj.name]
        hits = [records[i] for i in self._indexed(obj, f).get(wanted, {}) if i in records]
        return [r for r in hits if not r.deleted and r.get(f.name) is not None and _fold(f, r.get(f.name)) == wanted]

    def _indexed(self, obj: SfObject, f: SfField) -> dict[Any, dict[str, None]]:
        entry = self._index.get((obj.name, f.name))
        if entry is None or entry[0] is not f:
            index: dict[Any, dict[str, None]] = {}
            for r in self.records[obj.name].values():
                if r.get(f.name) is not None:
                    index.setdefault(_fold(f, r.get(f.name)), {})[r.id] = None
            entry = self._index[(obj.name, f.name)] = (f, index)
        return entry[1]

    def forget_index(self) -> None:
        """Drop the look-up indexes (a field redefined, records restored): rebuilt on the next look-up."""
        self._index.clear()

    # --- writes ---------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Callable[[], None]]:
        """Hold the lock for a multi-record request; calling the yielded ``rollback`` undoes its saves."""
        with self.lock:
            outer, self._undo = self._undo, _Undo(writes=len(self.writes))
            undo = self._undo

            def rollback() -> None:
                self.forget_index()
                for object_name, record_id, before in reversed(undo.entries):
                    if before is None:
                        del self.records[object_name][record_id]
                    else:
                        self.records[object_name][record_id] = before
                del self.writes[undo.writes:]
                undo.entries.clear()

            try:
                yield rollback
            finally:
                self._undo = outer

    def _save(self, record: SfRecord, before: SfRecord | None) -> None:
        if self._undo is not None:
            self._undo.entries.append((record.object, record.id, before))
        self.records[record.object][record.id] = record
        for (name, _), (f, index) in self._index.items():
            if name != record.object:
                continue
            old = before.get(f.name) if before is not None else None
            if old is not None:
                index.get(_fold(f, old), {}).pop(record.id, None)
            new = record.get(f.name)
            if new is not None:
                index.setdefault(_fold(f, new), {})[record.id] = None

    def create(self, obj: SfObject, values: dict[str, Any], via: str = "rest") -> SfRecord:
        with self.lock:
            given = self._prepare(obj, values, creating=True)
            number = self._counters.get(obj.key_prefix, 0) + 1
            new_id = make_id(obj.key_prefix, number)
            now = sf_datetime(self.now())
            fields: dict[str, Any] = {f.name: (False if f.type == "boolean" else None) for f in obj.fields.values()}
            fields.update({f.name: f.default for f in obj.fields.values() if f.default is not None})
            fields.update({"Id": new_id, "IsDeleted": False, "CreatedDate": now, "CreatedById": self.user_id,
                           "LastModifiedDate": now, "LastModifiedById": self.user_id, "SystemModstamp": now})
            if obj.field("OwnerId"):
                fields["OwnerId"] = self.user_id
            fields.update(given)
            record = SfRecord(obj.name, new_id, fields)
            self._derive(obj, record, None)
            self._check(obj, record)
            self._counters[obj.key_prefix] = number  # only now: a refused record uses no id
            if obj.name == "Case":
                self._case_number += 1
                record.fields["CaseNumber"] = f"{self._case_number:08d}"
            self._save(record, None)
            self.writes.append(WriteRecord("create", obj.name, new_id, given, via))
            return record

    def update(self, obj: SfObject, record_id: str, values: dict[str, Any], via: str = "rest") -> SfRecord:
        with self.lock:
            before = self._existing(obj, record_id)
            given = self._prepare(obj, values, creating=False)
            now = sf_datetime(self.now())
            record = SfRecord(obj.name, before.id, {**before.fields, **given, "LastModifiedDate": now,
                                                    "SystemModstamp": now})
            self._derive(obj, record, before)
            self._check(obj, record)
            self._save(record, before)
            self.writes.append(WriteRecord("update", obj.name, before.id, given, via))
            return record

    def upsert(self, obj: SfObject, f: SfField, value: Any, values: dict[str, Any],
               via: str = "rest") -> tuple[SfRecord, bool]:
        """Create or update by external id: ``(record, created)``; several matches raise :class:`MultipleMatches`."""
        with self.lock:
            found = self.matches(obj, f, value)
            if len(found) > 1:
                raise MultipleMatches(f.name, [r.id for r in found])
            rest = {k: v for k, v in values.items() if k.lower() != f.name.lower()}
            if found:
                return self.update(obj, found[0].id, rest, via), False
            if f.type == "id":
                raise record_error("NOT_FOUND", "Provided external ID field does not exist or is not accessible: "
                                   f"{value}")
            return self.create(obj, {**rest, f.name: value}, via), True

    def delete(self, record_id: str, obj: SfObject | None = None, via: str = "rest") -> SfRecord:
        with self.lock:
            full = normalize_id(record_id)
            if full is None:
                raise record_error("MALFORMED_ID", f"malformed id {record_id}")
            record = self.find(full)
            if record is None or (obj is not None and record.object != obj.name):
                raise record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            if record.deleted:
                raise record_error("ENTITY_IS_DELETED", "entity is deleted")
            gone = SfRecord(record.object, record.id, {**record.fields, "IsDeleted": True}, deleted=True)
            self._save(gone, record)
            self.writes.append(WriteRecord("delete", record.object, record.id, {}, via))
            if record.object == "Case":  # a case's comments go with it
                for comment in self.live(self.resolve("CaseComment")):
                    if comment.get("ParentId") == record.id:
                        self._save(SfRecord(comment.object, comment.id, {**comment.fields, "IsDeleted": True},
                                            deleted=True), comment)
            return gone

    def _existing(self, obj: SfObject, record_id: str) -> SfRecord:
        full = normalize_id(record_id)
        if full is None:
            raise record_error("MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", ["Id"])
        record = self.records[obj.name].get(full)
        if record is None:
            raise record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if record.deleted:
            raise record_error("ENTITY_IS_DELETED", "entity is deleted")
        return record

    # --- validation -----------------------------------------------------------------------------------

    def _prepare(self, obj: SfObject, values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Canonical names and typed values of what the caller sent, or the first error Salesforce reports."""
        resolved: list[tuple[SfField, Any]] = []
        for key, value in values.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                # a request-level answer on REST (no "fields"), as the JSON never deserialises
                raise SalesforceError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
            resolved.append((f, value))
        locked = [f.name for f, _ in resolved if not (f.createable if creating else f.updateable)]
        if locked:
            raise record_error("INVALID_FIELD_FOR_INSERT_UPDATE", READ_ONLY.format(", ".join(locked)), locked)
        out = {f.name: self.coerce(f, value) for f, value in resolved}
        for f, _ in resolved:
            value = out[f.name]
            if f.restricted and (value is None or f.picklist_value(value) is None):
                raise record_error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                   f"{f.display}: bad value for restricted picklist field: {value}", [f.name])
            if f.type == "reference" and value is not None:
                self._check_reference(f, value)
        return out

    def coerce(self, f: SfField, value: Any) -> Any:
        def wrong() -> SalesforceError:
            return record_error("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.display}: value not of required type: "
                                f"{value}", [f.name])

        if value is None:
            return False if f.type == "boolean" else None
        if f.type == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            raise wrong()
        if f.type in NUMBER_TYPES:
            if isinstance(value, bool):
                raise wrong()
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise wrong() from None
            if f.type == "int":
                if not number.is_integer():
                    raise wrong()
                return int(number)
            return number
        if f.type == "date":
            parsed_date = parse_date(value) if isinstance(value, str) else None
            if parsed_date is None:
                raise wrong()
            return parsed_date.isoformat()
        if f.type == "datetime":
            parsed = parse_datetime(value) if isinstance(value, str) else None
            if parsed is None:
                raise wrong()
            return sf_datetime(parsed)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise wrong()
        text = str(value)
        if f.type in ("reference", "id"):
            return normalize_id(text) or text
        if len(text) > f.length:
            raise record_error("STRING_TOO_LONG", f"{f.display}: data value too large: {text} (max length="
                               f"{f.length})", [f.name])
        if f.type == "email" and text and not EMAIL.match(text):
            raise record_error("INVALID_EMAIL_ADDRESS", f"{f.display}: invalid email address: {text}", [f.name])
        return text

    def _check_reference(self, f: SfField, value: str) -> None:
        full = normalize_id(value)
        prefixes = {"005"} if f.reference_to == ("User",) else {
            o.key_prefix for name in f.reference_to if (o := self.object(name)) is not None}
        if full is None or full[:3] not in prefixes:
            raise record_error("FIELD_INTEGRITY_EXCEPTION", f"{f.display}: id value of incorrect type: {value}",
                               [f.name])
        if f.reference_to == ("User",):
            return  # the fake has one user; any user id is accepted
        target = self.find(full)
        if target is None or target.deleted:
            raise record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])

    def _derive(self, obj: SfObject, record: SfRecord, before: SfRecord | None) -> None:
        fields = record.fields
        if obj.name == "Case":
            status = obj.field("Status")
            value = status.picklist_value(fields.get("Status") or "") if status else None
            closed = bool(value and value.closed)
            fields["IsClosed"] = closed
            was_closed = bool(before and before.get("IsClosed"))
            if closed and not was_closed:
                fields["ClosedDate"] = fields["LastModifiedDate"]
            elif not closed:
                fields["ClosedDate"] = None
        elif obj.name == "Contact":
            fields["Name"] = " ".join(p for p in (fields.get("FirstName"), fields.get("LastName")) if p)
        elif obj.custom and "name" in obj.fields and not fields.get("Name"):
            fields["Name"] = record.id
        for f in obj.fields.values():
            if f.type in COMPOUND_TYPES:
                fields[f.name] = compound_value(f, fields)

    def _check(self, obj: SfObject, record: SfRecord) -> None:
        missing = [f.name for f in obj.fields.values() if f.required and record.get(f.name) in (None, "")]
        if missing:
            raise record_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                               missing)
        for f in obj.fields.values():
            value = record.get(f.name)
            if not f.unique or value is None:
                continue
            other = next((r for r in self.matches(obj, f, value) if r.id != record.id), None)
            if other is not None:
                raise record_error("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates value on "
                                   f"record with id: {other.id}")

    # --- housekeeping ---------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            for records in self.records.values():
                records.clear()
            self.forget_index()
            self.writes.clear()
            self._counters.clear()
            self._case_number = 1000


def _fold(f: SfField, value: Any) -> Any:
    """How an external id or unique value compares: case-insensitively unless the field is case-sensitive."""
    if f.type in NUMBER_TYPES:
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    text = str(value)
    return text if f.case_sensitive else text.lower()
