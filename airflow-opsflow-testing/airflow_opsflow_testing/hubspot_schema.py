"""Property schemas and error shapes of :class:`~airflow_opsflow_testing.hubspot_server.FakeHubSpot`.

Each object type has a set of defined properties, typed as HubSpot types them (``string``, ``number``,
``bool``, ``date``, ``datetime``, ``enumeration``); values travel as strings both ways. Validation failures
carry HubSpot's per-property entries (``isValid``, ``message``, ``error`` code, ``name``...), which HubSpot
serialises into the ``message`` after ``Property values were not valid: `` and also lists under ``errors``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonDict = dict[str, Any]

TYPES = ("string", "number", "bool", "date", "datetime", "enumeration")
INVALID_PROPERTIES = "Property values were not valid"
PORTAL_ID = 24681357
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


class HubSpotError(Exception):
    """A refused request in HubSpot's shape: ``{"status": "error", "message", "correlationId", "category"}``."""

    def __init__(self, status: int, category: str, message: str, *, context: Mapping[str, list[str]] | None = None,
                 errors: list[JsonDict] | None = None) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message
        self.context = dict(context) if context else None
        self.errors = errors

    def body(self) -> JsonDict:
        body: JsonDict = {"status": "error", "message": self.message, "correlationId": str(uuid.uuid4())}
        if self.errors:
            body["errors"] = self.errors
        if self.context:
            body["context"] = self.context
        body["category"] = self.category
        return body

    def batch_entry(self) -> JsonDict:
        """The error as one entry of a 207 answer's ``errors`` (no correlationId, as HubSpot sends them)."""
        return {"status": "error", "category": self.category, "message": self.message,
                "context": self.context or {}}


def validation_error(message: str, context: Mapping[str, list[str]] | None = None) -> HubSpotError:
    return HubSpotError(400, "VALIDATION_ERROR", message, context=context)


@dataclass(frozen=True)
class PropertyIssue:
    """One invalid property value: HubSpot's ``{"isValid": false, "message", "error", "name"}`` entry."""

    name: str
    code: str  # PROPERTY_DOESNT_EXIST, INVALID_OPTION, INVALID_EMAIL, INVALID_DATE, ...
    message: str

    def entry(self) -> JsonDict:
        return {"isValid": False, "message": self.message, "error": self.code, "name": self.name,
                "localizedErrorMessage": self.message, "portalId": PORTAL_ID}


def invalid_properties(issues: list[PropertyIssue], context: Mapping[str, list[str]] | None = None) -> HubSpotError:
    message = f"{INVALID_PROPERTIES}: " + json.dumps([i.entry() for i in issues], separators=(",", ":"))
    errors = [{"message": i.message, "code": i.code, "context": {"propertyName": [i.name]}} for i in issues]
    return HubSpotError(400, "VALIDATION_ERROR", message, context=context, errors=errors)


FIELD_TYPES = {"string": "text", "number": "number", "bool": "booleancheckbox", "date": "date", "datetime": "date",
               "enumeration": "select"}  # the form field HubSpot gives each type unless told otherwise


@dataclass
class PropertyDef:
    name: str
    type: str
    unique: bool = False
    options: tuple[str, ...] = ()  # enumeration values
    read_only: bool = False  # maintained by HubSpot (hs_object_id, createdate...)
    hubspot_defined: bool = True  # False: created through the properties API or define_property
    label: str = ""
    field_type: str = ""
    group_name: str = ""


@dataclass
class ObjectType:
    """A CRM object type: its path name, type id, the name its errors use and its property schema."""

    name: str  # "contacts", or a custom type's name
    type_id: str  # "0-1"; custom objects "2-<n>"
    label: str  # "CONTACT": how batch errors name the type
    properties: dict[str, PropertyDef] = field(default_factory=dict)
    default_properties: tuple[str, ...] = ()  # returned when a read names none
    modified_property: str = "hs_lastmodifieddate"

    def define(self, name: str, type: str, *, unique: bool = False, options: Iterable[str] | None = None,
               read_only: bool = False, hubspot_defined: bool = True, label: str = "", field_type: str = "",
               group_name: str = "") -> PropertyDef:
        if type not in TYPES:
            raise ValueError(f"property type must be one of {TYPES}, not {type!r}")
        if type == "enumeration" and not options:
            raise ValueError(f"enumeration property {name!r} needs options")
        prop = PropertyDef(name, type, unique, tuple(options or ()), read_only, hubspot_defined,
                           label or name.replace("_", " ").capitalize(), field_type or FIELD_TYPES[type],
                           group_name or f"{self.label.lower()}information")
        self.properties[name] = prop
        return prop

    def unique_id_property(self, name: str) -> bool:
        """Whether ``name`` may serve as ``idProperty``: a unique-value property, or ``email`` of contacts."""
        prop = self.properties.get(name)
        return prop is not None and (prop.unique or name == "hs_object_id")


PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
_CATEGORIES = ("PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY")
_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
           "contractsent", "closedwon", "closedlost")
_LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
              "evangelist", "other")


def default_types() -> dict[str, ObjectType]:
    """contacts (email unique), companies, deals, tickets and notes with a handful of HubSpot's default properties.

    A company's ``domain`` is deliberately not unique: HubSpot does not let it serve as ``idProperty`` either.
    """
    contacts = ObjectType("contacts", "0-1", "CONTACT", modified_property="lastmodifieddate",
                          default_properties=("createdate", "email", "firstname", "hs_object_id",
                                              "lastmodifieddate", "lastname"))
    contacts.define("email", "string", unique=True)
    for name in ("firstname", "lastname", "phone", "company", "website", "jobtitle", "city", "country"):
        contacts.define(name, "string")
    contacts.define("lifecyclestage", "enumeration", options=_LIFECYCLE)
    contacts.define("lastmodifieddate", "datetime", read_only=True)
    companies = ObjectType("companies", "0-2", "COMPANY",
                           default_properties=("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"))
    for name in ("name", "domain", "phone", "city", "country", "industry", "website"):
        companies.define(name, "string")
    companies.define("numberofemployees", "number")
    companies.define("annualrevenue", "number")
    companies.define("hs_lastmodifieddate", "datetime", read_only=True)
    deals = ObjectType("deals", "0-3", "DEAL",
                       default_properties=("amount", "closedate", "createdate", "dealname", "dealstage",
                                           "hs_lastmodifieddate", "hs_object_id", "pipeline"))
    deals.define("dealname", "string")
    deals.define("amount", "number")
    deals.define("dealstage", "enumeration", options=_STAGES)
    deals.define("pipeline", "enumeration", options=("default",))
    deals.define("closedate", "datetime")
    deals.define("hs_lastmodifieddate", "datetime", read_only=True)
    types = {t.name: t for t in (contacts, companies, deals, *_service_types())}
    for t in types.values():
        add_system_properties(t)
    return types


def _service_types() -> tuple[ObjectType, ObjectType]:
    """tickets (0-5) and notes (0-46); default properties as HubSpot's search docs list them.

    ``hs_pipeline``/``hs_pipeline_stage`` start with the default Support Pipeline's ids: the pipelines registry
    (:mod:`~airflow_opsflow_testing.hubspot_pipelines`) keeps their options in step with the defined pipelines.
    """
    tickets = ObjectType("tickets", "0-5", "TICKET",
                         default_properties=("content", "createdate", "hs_lastmodifieddate", "hs_object_id",
                                             "hs_pipeline", "hs_pipeline_stage", "hs_ticket_category",
                                             "hs_ticket_priority", "subject"))
    tickets.define("subject", "string", label="Ticket name")
    tickets.define("content", "string", label="Ticket description", field_type="textarea")
    tickets.define("hs_pipeline", "enumeration", options=("0",), label="Pipeline")
    tickets.define("hs_pipeline_stage", "enumeration", options=("1", "2", "3", "4"), label="Ticket status")
    tickets.define("hs_ticket_priority", "enumeration", options=PRIORITIES, label="Priority")
    tickets.define("hs_ticket_category", "enumeration", options=_CATEGORIES, label="Category")
    tickets.define("closed_date", "datetime", label="Close date")  # also set when the ticket enters a CLOSED stage
    tickets.define("hubspot_owner_id", "string", label="Ticket owner")
    notes = ObjectType("notes", "0-46", "NOTE",
                       default_properties=("hs_createdate", "hs_lastmodifieddate", "hs_object_id"))
    notes.define("hs_note_body", "string", label="Note body", field_type="html")
    notes.define("hs_timestamp", "datetime", label="Activity date")
    notes.define("hubspot_owner_id", "string", label="Activity assigned to")
    notes.define("hs_attachment_ids", "string", label="Attached file IDs")
    return tickets, notes


def add_system_properties(object_type: ObjectType) -> None:
    object_type.define("hs_object_id", "number", read_only=True)
    object_type.define("createdate", "datetime", read_only=True)
    if object_type.modified_property not in object_type.properties:
        object_type.define(object_type.modified_property, "datetime", read_only=True)


# --- values ------------------------------------------------------------------------------------------------

def hubspot_time(value: datetime) -> str:
    """HubSpot's timestamps: ``2024-05-01T12:34:56.789Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _number(raw: Any) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return str(int(raw)) if float(raw).is_integer() else repr(raw)
    try:
        float(str(raw))
    except ValueError:
        return None
    return str(raw).strip()


def _epoch_ms(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return None


def normalize(object_type: ObjectType, name: str, raw: Any) -> tuple[str | None, PropertyIssue | None]:
    """The stored string for ``raw`` (None: clear the value), or why HubSpot would refuse it."""
    prop = object_type.properties.get(name)
    if prop is None:
        return None, PropertyIssue(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
    if prop.read_only:
        return None, PropertyIssue(name, "READ_ONLY_VALUE", f'Property "{name}" is a read only property; '
                                                              "its value cannot be set.")
    if raw is None or raw == "":
        return None, None  # HubSpot clears a property given an empty value
    text = raw if isinstance(raw, str) else json.dumps(raw)
    if prop.type == "number":
        value = _number(raw)
        if value is None:
            return None, PropertyIssue(name, "INVALID_FLOAT", f"{text} is not a valid number")
        return value, None
    if prop.type == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            return None, PropertyIssue(name, "INVALID_BOOLEAN", f"{text} is not a valid boolean: true or false")
        return lowered, None
    if prop.type == "date":
        return _date(name, raw, text)
    if prop.type == "datetime":
        return _datetime(name, raw, text)
    if prop.type == "enumeration" and text not in prop.options:
        return None, PropertyIssue(name, "INVALID_OPTION", f"{text} was not one of the allowed options: "
                                                           f"[{', '.join(prop.options)}]")
    if object_type.name == "contacts" and name == "email":
        if not _EMAIL.match(text):
            return None, PropertyIssue(name, "INVALID_EMAIL", f"Email address {text} is invalid")
        return text.lower(), None  # HubSpot keeps addresses lower-cased: upserts by email ignore case
    return text, None


def _date(name: str, raw: Any, text: str) -> tuple[str | None, PropertyIssue | None]:
    ms = _epoch_ms(raw)
    if ms is not None:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        if ms % 86_400_000:
            clock = f"{moment.hour}:{moment.minute}:{moment.second}.{moment.microsecond // 1000}"
            return None, PropertyIssue(name, "INVALID_DATE", f"{ms} is at {clock} UTC, not midnight!")
        return moment.date().isoformat(), None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date().isoformat(), None
    except ValueError:
        return None, PropertyIssue(name, "INVALID_DATE", f"{text} is not a valid date")


def _datetime(name: str, raw: Any, text: str) -> tuple[str | None, PropertyIssue | None]:
    ms = _epoch_ms(raw)
    if ms is not None:
        return hubspot_time(datetime.fromtimestamp(ms / 1000, UTC)), None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None, PropertyIssue(name, "INVALID_DATETIME", f"{text} is not a valid datetime")
    return hubspot_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC)), None
