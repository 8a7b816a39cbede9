"""Organizations and users of the fake Zendesk: create, update, create-or-update, and one bulk job item each.

Matching, as Zendesk documents it: ``create_or_update`` finds an organization by ``id`` or ``external_id``
(case-insensitive; a name alone always creates, so a second call with the same name fails with ``Name: X has
already been taken`` / ``DuplicateValue``), a user by ``id``, ``external_id`` or ``email``. Names of
organizations and external ids are unique per account, user emails too. ``organization_fields`` /
``user_fields`` are checked against the fields defined with ``FakeZendesk.define_field``; keys that are not
defined are ignored, as Zendesk drops unknown custom field keys.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from airflow_opsflow_testing.zendesk_schema import (
    ROLES,
    JsonDict,
    Organization,
    User,
    ZendeskError,
    invalid,
    not_found,
    record_invalid,
    tag_list,
)
from airflow_opsflow_testing.zendesk_store import ZendeskStore

Kind = Literal["organization", "user"]
Mode = Literal["create", "update", "upsert"]
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class Directory:
    """Organization and user writes on a :class:`~.zendesk_store.ZendeskStore` (each takes the store's lock)."""

    def __init__(self, store: ZendeskStore) -> None:
        self.store = store

    def table(self, kind: Kind) -> dict[int, Any]:
        return self.store.organizations if kind == "organization" else self.store.users

    def find(self, kind: Kind, record_id: Any) -> Any:
        try:
            return self.table(kind)[int(record_id)]
        except (KeyError, TypeError, ValueError):
            raise not_found() from None

    def by_external_id(self, kind: Kind, external_id: Any) -> Any:
        wanted = str(external_id).lower()
        return next((r for r in self.table(kind).values()
                     if r.external_id is not None and r.external_id.lower() == wanted), None)

    def match(self, kind: Kind, data: JsonDict) -> Any:
        """The record ``data`` designates by id, external id or (users) email; None when there is none."""
        if data.get("id") is not None:
            return self.table(kind).get(data["id"])
        if data.get("external_id") is not None and (found := self.by_external_id(kind, data["external_id"])):
            return found
        email = str(data.get("email") or "").lower()
        return next((u for u in self.store.users.values() if email and u.email == email), None) \
            if kind == "user" else None

    def write(self, kind: Kind, data: Any, mode: Mode, target: Any = None) -> tuple[Any, str]:
        """Create, update (``target`` or the matched record) or upsert one record: (a copy, "create"|"update")."""
        if not isinstance(data, dict):
            raise invalid(kind, f"{kind.capitalize()}: must be an object")
        with self.store.lock:
            if mode == "create":
                current = None
            elif target is not None:
                current = target
            else:
                current = self.match(kind, data)
                if current is None and mode == "update":
                    raise not_found()
            now = self.store.now()
            if current is None:
                record: Any = (Organization(0, "", now, now) if kind == "organization" else User(0, "", now, now))
            else:
                record = copy.deepcopy(current)
            errors: dict[str, list[JsonDict]] = {}
            changed = self._apply(kind, record, data, errors, creating=current is None)
            if errors:
                raise record_invalid(errors)
            if current is None:
                record.id = self.store.next_id()
            elif changed:
                record.updated_at = now
            if current is None or changed:
                self.table(kind)[record.id] = record
                self.store.commit(kind, record)
            return copy.deepcopy(record), "create" if current is None else "update"

    def job_item(self, kind: Kind, data: Any, mode: Mode, index: int) -> JsonDict:
        """One item of a bulk job, applied: its entry in the job's ``results``."""
        keys: JsonDict = {}
        if isinstance(data, dict):
            keys = {k: data[k] for k in ("external_id", "email") if data.get(k) is not None}
            keys = keys if kind == "user" else {k: v for k, v in keys.items() if k != "email"}
        try:
            record, action = self.write(kind, data, mode)
        except ZendeskError as e:
            failed: JsonDict = {"index": index, **keys, "status": "Failed", "success": False, "error": e.error,
                                "details": e.summary()}
            if isinstance(data, dict) and data.get("id") is not None:
                failed["id"] = data["id"]
            return failed
        return {"id": record.id, "index": index, **keys, "action": action,
                "status": "Created" if action == "create" else "Updated", "success": True}

    # --- fields -------------------------------------------------------------------------------------------

    def _apply(self, kind: Kind, record: Any, data: JsonDict, errors: dict[str, list[JsonDict]], *,
               creating: bool) -> bool:
        changed = False

        def fail(name: str, description: str, error: str = "InvalidValue") -> None:
            errors.setdefault(name, []).append({"description": description, "error": error})

        def put(name: str, value: Any) -> None:
            nonlocal changed
            if getattr(record, name) != value:
                setattr(record, name, value)
                changed = True

        name = data.get("name", None if creating else record.name)
        if not isinstance(name, str) or not name.strip():
            if "name" in data or creating:
                fail("name", "Name: cannot be blank", "BlankValue")
        else:
            if kind == "organization" and any(o.name.lower() == name.strip().lower() and o.id != record.id
                                              for o in self.store.organizations.values()):
                fail("name", f"Name: {name.strip()} has already been taken", "DuplicateValue")
            put("name", name.strip())
        if data.get("external_id") is not None:
            other = self.by_external_id(kind, data["external_id"])
            if other is not None and other.id != record.id:
                fail("external_id", f"External: {data['external_id']} has already been taken", "DuplicateValue")
            put("external_id", str(data["external_id"]))
        elif "external_id" in data:
            put("external_id", None)
        try:
            if "tags" in data:
                put("tags", tag_list(data["tags"]))
        except ZendeskError as e:
            errors.update(e.details)
        for key in ("details", "notes") + (("phone",) if kind == "user" else ("group_id",)):
            if key in data:
                put(key, data[key])
        if kind == "organization":
            for key in ("shared_tickets", "shared_comments"):
                if key in data:
                    put(key, bool(data[key]))
            if "domain_names" in data:
                put("domain_names", [str(d) for d in data["domain_names"] or []])
        else:
            self._user(record, data, fail, put)
        fields_key = f"{kind}_fields"
        values = data.get(fields_key)
        if values is not None and not isinstance(values, dict):
            fail(fields_key, f"{kind.capitalize()} fields: must be an object")
        elif values:
            merged = dict(record.fields)
            for key, value in values.items():
                definition = self.store.field(kind, key)
                if definition is None:
                    continue  # Zendesk ignores keys that are no field of the account
                stored, error = definition.check(value)
                if error:
                    fail(key, error)
                else:
                    merged[key] = stored
            put("fields", merged)
        return changed

    def _user(self, user: User, data: JsonDict, fail: Any, put: Any) -> None:
        if "email" in data and data["email"] is not None:
            email = str(data["email"]).strip().lower()
            if not EMAIL.fullmatch(email):
                fail("email", f"Email: {data['email']} is not properly formatted")
            elif any(u.email == email and u.id != user.id for u in self.store.users.values()):
                fail("email", f"Email: {email} is already being used by another user", "DuplicateValue")
            else:
                put("email", email)
        if "role" in data:
            if data["role"] not in ROLES:
                fail("role", f"Role: {data['role']} is not valid")
            else:
                put("role", data["role"])
        if "organization_id" in data:
            if data["organization_id"] is not None and data["organization_id"] not in self.store.organizations:
                fail("organization_id", f"Organization: {data['organization_id']} is not an organization")
            else:
                put("organization_id", data["organization_id"])
        for key in ("active", "verified"):
            if key in data:
                put(key, bool(data[key]))
