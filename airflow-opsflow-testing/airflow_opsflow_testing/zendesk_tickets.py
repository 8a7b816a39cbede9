"""Tickets of the fake Zendesk: create, update (with ``comment``), follow-ups, and the closing of solved tickets.

Zendesk's system ticket rules, as its help center states them, that the fake enforces:

* a ticket that left ``new`` can never be set back to ``new``; a new ticket given an assignee becomes ``open``;
* a ``closed`` ticket cannot be updated (422 ``Status: closed prevents ticket update``); its requester opens a
  *follow-up* instead: a new ticket created with ``via_followup_source_id`` = the closed ticket's id
  (``via.source.rel`` is ``follow_up`` and the closed ticket lists it in ``followup_ids``);
* a ``solved`` ticket can be reopened by an update; solved tickets are closed some days later (4 by Zendesk's
  default automation, 28 at most) - here when the test calls :meth:`TicketDesk.close_solved`;
* solving a ticket without assignee assigns the agent solving it (the "auto assign on solve" setting);
* ``safe_update`` with a stale ``updated_stamp`` is refused with 409 ``UpdateConflict``;
* ``tickets/update_many`` runs each ticket's update as an item of a job (:meth:`TicketDesk.job_item`):
  ``additional_tags`` / ``remove_tags`` add and remove tags without replacing the others.

Writes are validated on a copy and applied whole: a 422 changes nothing.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from airflow_opsflow_testing.zendesk_schema import (
    CLOSED_UPDATE,
    PRIORITIES,
    STATUSES,
    TICKET_TYPES,
    Comment,
    JsonDict,
    Ticket,
    User,
    ZendeskError,
    bad_request,
    invalid,
    iso,
    not_found,
    record_invalid,
    tag_list,
)
from airflow_opsflow_testing.zendesk_store import ZendeskStore

STALE = ("Safe Update prevented the update due to outdated ticket data. "
         "Please fetch the latest ticket data and try again.")
_PLAIN = {"subject": "subject", "type": "type", "priority": "priority", "external_id": "external_id",
          "group_id": "group_id"}


class TicketDesk:
    """Ticket operations on a :class:`~.zendesk_store.ZendeskStore` (each takes the store's lock)."""

    def __init__(self, store: ZendeskStore) -> None:
        self.store = store

    def find(self, ticket_id: Any) -> Ticket:
        try:
            return self.store.tickets[int(ticket_id)]
        except (KeyError, TypeError, ValueError):
            raise not_found() from None

    # --- create / update ---------------------------------------------------------------------------------

    def create(self, body: Any, actor: User) -> tuple[Ticket, JsonDict]:
        data = _payload(body)
        with self.store.lock:
            now = self.store.now()
            ticket = Ticket(0, None, "new", actor.id, actor.id, now, now)
            errors: dict[str, list[JsonDict]] = {}
            created = self._apply(ticket, data, actor, errors, creating=True)
            comment = data.get("comment") if isinstance(data.get("comment"), dict) else None
            text = (comment or {}).get("body") or (comment or {}).get("html_body") or data.get("description")
            if not isinstance(text, str) or not text.strip():
                errors["description"] = [{"description": "Description: cannot be blank", "error": "BlankValue"}]
            source = self._followup_source(data.get("via_followup_source_id"), errors)
            if errors:
                raise record_invalid(errors)
            if "status" not in data:
                ticket.status = "open" if ticket.assignee_id else "new"
            ticket.id = self.store.next_ticket_id()
            audit_id = self.store.next_id()
            ticket.comments.append(self._comment(str(text), comment, actor, audit_id))
            if ticket.status in ("solved", "closed"):
                ticket.solved_at = now
            if source is not None:
                ticket.followup_source_id = source.id
                source.followup_ids.append(ticket.id)
                self.store.commit("ticket", source)
            self.store.tickets[ticket.id] = ticket
            self.store.commit("ticket", ticket)
            events = [_event("Comment", comment=ticket.comments[0]),
                      *[_event("Create", name, value) for name, value, _ in created]]
            return copy.deepcopy(ticket), self._audit(ticket, audit_id, actor, events)

    def update(self, ticket_id: Any, body: Any, actor: User) -> tuple[Ticket, JsonDict]:
        data = _payload(body)
        with self.store.lock:
            current = self.find(ticket_id)
            if current.status == "closed":
                raise invalid("status", CLOSED_UPDATE, error=None)  # the shape Zendesk answers, no error code
            if data.get("safe_update") and data.get("updated_stamp") != iso(current.updated_at):
                raise ZendeskError(409, "UpdateConflict", STALE)
            ticket = copy.deepcopy(current)
            errors: dict[str, list[JsonDict]] = {}
            changes = self._apply(ticket, data, actor, errors, creating=False)
            if errors:
                raise record_invalid(errors)
            if ticket.status == "new" and ticket.assignee_id is not None:
                changes.append(("status", "open", ticket.status))
                ticket.status = "open"
            audit_id = self.store.next_id()
            events = [_event("Change", name, value, before) for name, value, before in changes]
            comment = data.get("comment") if isinstance(data.get("comment"), dict) else None
            text = (comment or {}).get("body") or (comment or {}).get("html_body")
            if isinstance(text, str) and text.strip():
                ticket.comments.append(self._comment(text, comment, actor, audit_id))
                events.insert(0, _event("Comment", comment=ticket.comments[-1]))
            if events:
                now = self.store.now()
                ticket.updated_at = now
                if ticket.status == "solved" and current.status != "solved":
                    ticket.solved_at = now
                elif ticket.status not in ("solved", "closed"):
                    ticket.solved_at = None
                self.store.tickets[ticket.id] = ticket
                self.store.commit("ticket", ticket)
            return copy.deepcopy(ticket), self._audit(ticket, audit_id, actor, events)

    def job_item(self, ticket_id: Any, data: Any, actor: User, index: int) -> JsonDict:
        """One item of a ``tickets/update_many`` job, applied: its entry in the job's ``results``. Zendesk
        documents ``{"id", "action": "update", "success": true, "status": "Updated"}``; a refused ticket
        carries the error and the description its single update would answer (a closed ticket: ``Status:
        closed prevents ticket update``), as the fake's other job items do."""
        try:
            ticket, _ = self.update(ticket_id, {"ticket": data}, actor)
        except ZendeskError as e:
            tid = int(ticket_id) if str(ticket_id).isdigit() else ticket_id
            return {"id": tid, "index": index, "action": "update", "status": "Failed", "success": False,
                    "error": e.error, "details": e.summary()}
        return {"id": ticket.id, "index": index, "action": "update", "status": "Updated", "success": True}

    def close_solved(self, days: float) -> list[int]:
        """Close every ticket solved at least ``days`` ago on the account's clock; the ids closed."""
        with self.store.lock:
            now = self.store.now()
            due = [t for t in self.store.tickets.values()
                   if t.status == "solved" and t.solved_at is not None and t.solved_at <= now - timedelta(days=days)]
            for ticket in due:
                ticket.status, ticket.updated_at = "closed", now
                self.store.commit("ticket", ticket)
            return [t.id for t in due]

    # --- fields -------------------------------------------------------------------------------------------

    def _apply(self, ticket: Ticket, data: JsonDict, actor: User, errors: dict[str, list[JsonDict]], *,
               creating: bool) -> list[tuple[str, Any, Any]]:
        """Set the writable fields present in ``data``; (field, new, old) of each change, errors collected."""
        changes: list[tuple[str, Any, Any]] = []

        def fail(name: str, description: str, error: str = "InvalidValue") -> None:
            errors.setdefault(name, []).append({"description": description, "error": error})

        def put(name: str, value: Any) -> None:
            before = getattr(ticket, name)
            if value != before:
                setattr(ticket, name, value)
                changes.append((name, value, before))

        for key, attr in _PLAIN.items():
            if key not in data:
                continue
            value = data[key]
            if key == "priority" and value is None and ticket.priority is not None:
                continue  # Zendesk: a priority once set can be changed but not cleared
            allowed = {"priority": PRIORITIES, "type": TICKET_TYPES}.get(key)
            if value is not None and allowed is not None and value not in allowed:
                fail(key, f"{key.capitalize()}: {value} is not valid")
            elif key == "external_id" and value is not None:
                put(attr, str(value))
            elif key == "subject" and value is not None and not isinstance(value, str):
                fail(key, "Subject: must be a string")
            else:
                put(attr, value)
        if "status" in data:
            status = data["status"]
            if status not in STATUSES:
                fail("status", f"Status: {status} is not valid")
            elif status == "new" and ticket.status != "new" and not creating:
                fail("status", "Status: cannot be set back to new")
            else:
                put("status", status)
        try:
            if "tags" in data:
                put("tags", tag_list(data["tags"]))
            added = tag_list(data.get("additional_tags"), "additional_tags")
            removed = set(tag_list(data.get("remove_tags"), "remove_tags"))
            if added or removed:
                put("tags", [t for t in ticket.tags if t not in removed] + [t for t in added if t not in ticket.tags])
        except ZendeskError as e:
            errors.update(e.details)
        self._people(ticket, data, fail, put)
        if "custom_fields" in data:
            values = data["custom_fields"] or []
            if not isinstance(values, list) or not all(isinstance(v, dict) and "id" in v for v in values):
                fail("custom_fields", "Custom fields: must be a list of {id, value}")
            else:
                put("custom_fields", {**ticket.custom_fields, **{int(v["id"]): v.get("value") for v in values}})
        if ticket.status == "solved" and ticket.assignee_id is None and not errors:
            if actor.role == "end-user":
                fail("assignee_id", "Assignee: is required to solve a ticket", "BlankValue")
            else:
                put("assignee_id", actor.id)  # auto assign on solve
        return changes

    def _people(self, ticket: Ticket, data: JsonDict, fail: Any, put: Any) -> None:
        users, orgs = self.store.users, self.store.organizations
        if "assignee_id" in data:
            who = users.get(data["assignee_id"]) if data["assignee_id"] is not None else None
            if data["assignee_id"] is not None and (who is None or who.role == "end-user"):
                fail("assignee_id", f"Assignee: {data['assignee_id']} is not an agent")
            else:
                put("assignee_id", data["assignee_id"])
        if "requester_id" in data:
            if data["requester_id"] not in users:
                fail("requester_id", f"Requester: {data['requester_id']} is not a user")
            else:
                put("requester_id", data["requester_id"])
        elif isinstance(data.get("requester"), dict):
            put("requester_id", self._requester(data["requester"]).id)
        if "organization_id" in data:
            if data["organization_id"] is not None and data["organization_id"] not in orgs:
                fail("organization_id", f"Organization: {data['organization_id']} is not an organization")
            else:
                put("organization_id", data["organization_id"])

    def _requester(self, ref: JsonDict) -> User:
        """``requester: {name, email}``: the user with that email, or a new end user (as Zendesk does)."""
        email = str(ref.get("email") or "").lower() or None
        found = next((u for u in self.store.users.values() if email and u.email == email), None)
        if found is not None:
            return found
        now = self.store.now()
        user = User(self.store.next_id(), str(ref.get("name") or email or "Unknown"), now, now, email=email)
        self.store.users[user.id] = user
        self.store.commit("user", user)
        return user

    def _followup_source(self, ref: Any, errors: dict[str, list[JsonDict]]) -> Ticket | None:
        if ref is None:
            return None
        source = self.store.tickets.get(ref) if isinstance(ref, int) else None
        if source is None or source.status != "closed":
            what = "is not a ticket" if source is None else "is not closed"
            errors["via_followup_source_id"] = [{"description": f"Via followup source: {ref} {what}",
                                                 "error": "InvalidValue"}]
            return None
        return source

    def _comment(self, text: str, comment: JsonDict | None, actor: User, audit_id: int) -> Comment:
        author = (comment or {}).get("author_id")
        return Comment(self.store.next_id(), author if author in self.store.users else actor.id, text,
                       bool((comment or {}).get("public", True)), self.store.now(), audit_id)

    def _audit(self, ticket: Ticket, audit_id: int, actor: User, events: list[JsonDict]) -> JsonDict:
        for event in events:
            event["id"] = self.store.next_id()
        return {"id": audit_id, "ticket_id": ticket.id, "created_at": iso(self.store.now()), "author_id": actor.id,
                "metadata": {"system": {"client": "fake-zendesk"}, "custom": {}},
                "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}}, "events": events}


def _payload(body: Any) -> JsonDict:
    if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
        raise bad_request("Parameter ticket is required", "ParameterMissing")
    return dict(body["ticket"])


def _event(kind: str, name: str | None = None, value: Any = None, before: Any = None, *,
           comment: Comment | None = None) -> JsonDict:
    if comment is not None:
        rendered = comment.render()
        return {"type": "Comment", **{k: rendered[k] for k in ("author_id", "body", "html_body", "plain_body",
                                                               "public", "attachments", "audit_id")}}
    event: JsonDict = {"type": kind, "field_name": name, "value": value}
    if kind == "Change":
        event["previous_value"] = before
    return event
