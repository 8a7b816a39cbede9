"""The records of :class:`~airflow_opsflow_testing.zendesk_server.FakeZendesk`, Zendesk's error shapes and its JSON.

Error bodies as Zendesk sends them (checked against client code and reports that quote real answers):
``{"error": "RecordNotFound", "description": "Not found"}`` (404), ``{"error": "Couldn't authenticate you"}``
(401), ``{"error": "RecordInvalid", "description": "Record validation errors", "details": {field: [{"description":
..., "error": ...}]}}`` (422, e.g. ``Status: closed prevents ticket update`` or ``Name: X has already been taken``
/ ``DuplicateValue``) and the plain-text 429 ``Number of allowed API requests per minute exceeded``. Where
Zendesk's exact wording is not published (an unknown custom field value, too many ids, the job queue limit)
the fake keeps the same shape with its own words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

JsonDict = dict[str, Any]

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")  # Zendesk's order: status<solved means the first 4
PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_TYPES = ("problem", "incident", "question", "task")
ROLES = ("end-user", "agent", "admin")
FIELD_TYPES = ("text", "textarea", "checkbox", "date", "integer", "decimal", "regexp", "dropdown")
MAX_MANY = 100  # ids per show_many, records per create_many/update_many/create_or_update_many
CLOSED_UPDATE = "Status: closed prevents ticket update"


class ZendeskError(Exception):
    """An answer Zendesk refuses with: ``body()`` is its JSON (or its plain text when ``text`` is given)."""

    def __init__(self, status: int, error: str, description: str | None = None, details: Any = None, *,
                 headers: dict[str, str] | None = None, text: str | None = None) -> None:
        super().__init__(f"{status} {error}: {description or text or ''}")
        self.status, self.error, self.description, self.details = status, error, description, details
        self.headers = headers or {}
        self.text = text

    def body(self) -> Any:
        if self.text is not None:
            return self.text
        out: JsonDict = {"error": self.error}
        if self.description is not None:
            out["description"] = self.description
        if self.details is not None:
            out["details"] = self.details
        return out

    def summary(self) -> str:
        """The error in one line, as a job result's ``details`` carries it."""
        if isinstance(self.details, dict):
            return "; ".join(e.get("description", "") for errs in self.details.values() for e in errs)
        return self.description or self.error


def record_invalid(details: dict[str, list[JsonDict]]) -> ZendeskError:
    return ZendeskError(422, "RecordInvalid", "Record validation errors", details)


def invalid(field_name: str, description: str, error: str | None = "InvalidValue") -> ZendeskError:
    """A 422 about one field: ``{"details": {field: [{"description": ..., "error": ...}]}}``."""
    entry = {"description": description} if error is None else {"description": description, "error": error}
    return record_invalid({field_name: [entry]})


def not_found() -> ZendeskError:
    return ZendeskError(404, "RecordNotFound", "Not found")


def bad_request(description: str, error: str = "InvalidValue") -> ZendeskError:
    return ZendeskError(400, error, description)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CustomField:
    """An organization or user field (``organization_fields``/``user_fields``), keyed by ``key``."""

    id: int
    key: str
    type: str = "text"
    title: str = ""
    options: list[str] = field(default_factory=list)  # dropdown values

    def check(self, value: Any) -> tuple[Any, str | None]:
        """The value as Zendesk stores it, or an error text; None clears the field."""
        label = self.title or self.key
        if value is None:
            return None, None
        if self.type in ("text", "textarea", "regexp"):
            return (value, None) if isinstance(value, str) else (None, f"{label}: must be a string")
        if self.type == "checkbox":
            return (value, None) if isinstance(value, bool) else (None, f"{label}: must be true or false")
        if self.type == "integer":
            if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
                return None, f"{label}: is not a number"
            return int(str(value).strip()), None
        if self.type == "decimal":
            try:
                return (float(value), None) if not isinstance(value, bool) else (None, f"{label}: is not a number")
            except (TypeError, ValueError):
                return None, f"{label}: is not a number"
        if self.type == "date":
            try:
                return date.fromisoformat(str(value)[:10]).isoformat(), None
            except ValueError:
                return None, f"{label}: is not a valid date (YYYY-MM-DD)"
        if value not in self.options:  # dropdown
            return None, f"{label}: {value} is not a valid option"
        return value, None

    def render(self, kind: str, base: str) -> JsonDict:
        out: JsonDict = {"url": f"{base}/api/v2/{kind}_fields/{self.id}.json", "id": self.id, "key": self.key,
                         "type": self.type, "title": self.title or self.key, "raw_title": self.title or self.key,
                         "active": True, "position": 0, "description": "", "system": False}
        if self.type == "dropdown":
            out["custom_field_options"] = [{"name": o, "value": o} for o in self.options]
        return out


@dataclass
class Comment:
    id: int
    author_id: int
    body: str
    public: bool
    created_at: datetime
    audit_id: int

    def render(self) -> JsonDict:
        return {"id": self.id, "type": "Comment", "author_id": self.author_id, "body": self.body,
                "html_body": f"<div class=\"zd-comment\"><p>{self.body}</p></div>", "plain_body": self.body,
                "public": self.public, "attachments": [], "audit_id": self.audit_id,
                "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
                "created_at": iso(self.created_at), "metadata": {"system": {"client": "fake-zendesk"}}}


@dataclass
class Ticket:
    """One ticket as the fake holds it; ``FakeZendesk.ticket(id)`` returns a copy."""

    id: int
    subject: str | None
    status: str
    requester_id: int
    submitter_id: int
    created_at: datetime
    updated_at: datetime
    priority: str | None = None
    type: str | None = None
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)
    assignee_id: int | None = None
    organization_id: int | None = None
    group_id: int | None = None
    custom_fields: dict[int, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    solved_at: datetime | None = None
    followup_source_id: int | None = None  # via_followup_source_id given at create
    followup_ids: list[int] = field(default_factory=list)

    @property
    def description(self) -> str:
        return self.comments[0].body if self.comments else ""

    def render(self, base: str) -> JsonDict:
        source: JsonDict = {"from": {}, "to": {}, "rel": None}
        if self.followup_source_id is not None:
            source = {"from": {"ticket_id": self.followup_source_id}, "to": {}, "rel": "follow_up"}
        fields = [{"id": k, "value": v} for k, v in sorted(self.custom_fields.items())]
        return {"url": f"{base}/api/v2/tickets/{self.id}.json", "id": self.id, "external_id": self.external_id,
                "via": {"channel": "api", "source": source}, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at), "generated_timestamp": int(self.updated_at.timestamp()),
                "type": self.type, "subject": self.subject, "raw_subject": self.subject,
                "description": self.description, "priority": self.priority, "status": self.status,
                "recipient": None, "requester_id": self.requester_id, "submitter_id": self.submitter_id,
                "assignee_id": self.assignee_id, "organization_id": self.organization_id, "group_id": self.group_id,
                "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [], "forum_topic_id": None,
                "problem_id": None, "has_incidents": False, "is_public": any(c.public for c in self.comments),
                "due_at": None, "tags": list(self.tags), "custom_fields": fields, "fields": fields,
                "satisfaction_rating": None, "sharing_agreement_ids": [], "followup_ids": list(self.followup_ids),
                "ticket_form_id": None, "brand_id": None, "allow_channelback": False, "allow_attachments": True,
                "from_messaging_channel": False}


@dataclass
class Organization:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # organization_fields, by key
    details: str | None = None
    notes: str | None = None
    domain_names: list[str] = field(default_factory=list)
    group_id: int | None = None
    shared_tickets: bool = False
    shared_comments: bool = False

    def render(self, base: str) -> JsonDict:
        return {"url": f"{base}/api/v2/organizations/{self.id}.json", "id": self.id, "name": self.name,
                "shared_tickets": self.shared_tickets, "shared_comments": self.shared_comments,
                "external_id": self.external_id, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at), "domain_names": list(self.domain_names),
                "details": self.details, "notes": self.notes, "group_id": self.group_id, "tags": list(self.tags),
                "organization_fields": dict(self.fields)}


@dataclass
class User:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    email: str | None = None
    external_id: str | None = None
    role: str = "end-user"
    organization_id: int | None = None
    tags: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # user_fields, by key
    phone: str | None = None
    details: str | None = None
    notes: str | None = None
    active: bool = True
    verified: bool = False

    def render(self, base: str) -> JsonDict:
        return {"url": f"{base}/api/v2/users/{self.id}.json", "id": self.id, "name": self.name, "email": self.email,
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at), "time_zone": "UTC",
                "iana_time_zone": "Etc/UTC", "phone": self.phone, "locale": "en-US", "locale_id": 1,
                "organization_id": self.organization_id, "role": self.role, "verified": self.verified,
                "external_id": self.external_id, "tags": list(self.tags), "details": self.details,
                "notes": self.notes, "active": self.active, "suspended": False, "shared": False,
                "restricted_agent": self.role == "end-user", "moderator": False, "ticket_restriction": None,
                "only_private_comments": False, "user_fields": dict(self.fields)}


def tag_list(value: Any, field_name: str = "tags") -> list[str]:
    """Tags as Zendesk keeps them: strings, a space splitting one into several, duplicates dropped."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(field_name, "Tags: must be a list of strings")
    out: list[str] = []
    for tag in (t for v in value for t in v.split()):
        if tag not in out:
            out.append(tag)
    return out
