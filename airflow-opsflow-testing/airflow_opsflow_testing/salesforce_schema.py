"""The schema of FakeSalesforce: objects, typed fields, record ids, errors and the describe documents.

Standard objects: Account, Contact, Case (restricted ``Status``/``Priority`` picklists, ``IsClosed`` derived from
the status's closed flag, the unique external id ``Opsflow_Fingerprint__c``) and CaseComment; tests add custom
objects and fields. Address and geolocation fields are compound (type ``address``/``location``, read-only): their
value is derived from their component fields, and Bulk API query jobs refuse to select them. Ids are real
18-character Salesforce ids (key prefix + the case-safe suffix), and the 15-character form is accepted wherever an
id is, as on Salesforce.

Error texts are Salesforce's (REST API developer guide, and its answers as quoted in client libraries' tests):
``REQUIRED_FIELD_MISSING`` "Required fields are missing: [LastName]", ``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``
"Status: bad value for restricted picklist field: X", ``DUPLICATE_VALUE`` "duplicate value found: F duplicates
value on record with id: ...", ``NOT_FOUND`` "The requested resource does not exist", ...
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

JsonDict = dict[str, Any]

NOT_FOUND = "The requested resource does not exist"
TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "email", "phone", "url", "id",
                        "reference", "combobox"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
COMPOUND_TYPES = frozenset({"address", "location"})  # read-only, derived from their component fields
TYPES = TEXT_TYPES | NUMBER_TYPES | COMPOUND_TYPES | {"boolean", "date", "datetime"}
SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int", "date": "xsd:date",
              "datetime": "xsd:dateTime", "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
              "address": "urn:address", "location": "urn:location"}
_ADDRESS_PARTS = {"city": "City", "country": "Country", "geocodeAccuracy": "GeocodeAccuracy", "latitude": "Latitude",
                  "longitude": "Longitude", "postalCode": "PostalCode", "state": "State", "street": "Street"}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class SalesforceError(Exception):
    """An error as Salesforce reports it; ``record`` errors (validation of one record) also carry ``fields``."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = (), *,
                 record: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.fields, self.record = status, code, message, list(fields), record

    def body(self) -> list[JsonDict]:
        """The REST answer: ``[{"message", "errorCode"(, "fields")}]``."""
        error: JsonDict = {"message": self.message, "errorCode": self.code}
        if self.record:
            error["fields"] = self.fields
        return [error]

    def result(self) -> JsonDict:
        """One entry of a per-record result's ``errors`` (sObject Collections)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def bulk(self) -> str:
        """The ``sf__Error`` column of Bulk API 2.0 failed results."""
        where = f"{','.join(self.fields)} --" if self.fields else "--"
        return f"{self.code}:{self.message}:{where}"


def record_error(code: str, message: str, fields: Sequence[str] = ()) -> SalesforceError:
    return SalesforceError(400, code, message, fields, record=True)


def not_found(message: str = NOT_FOUND, code: str = "NOT_FOUND") -> SalesforceError:
    return SalesforceError(404, code, message)


def bad_request(code: str, message: str) -> SalesforceError:
    return SalesforceError(400, code, message)


# --- ids ---------------------------------------------------------------------------------------------------

def _suffix(id15: str) -> str:
    out = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]) if ch.isupper())
        out += _SUFFIX[bits]
    return out


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of the ``number``-th record with key prefix ``prefix``."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _B62[rest] + digits
    id15 = f"{prefix}5g0{digits.rjust(9, '0')}"
    return id15 + _suffix(id15)


def normalize_id(value: Any) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when ``value`` is not an id."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not value.isalnum() or not value.isascii():
        return None
    id15 = value[:15]
    full = id15 + _suffix(id15)
    return full if len(value) == 15 or value[15:].upper() == full[15:] else None


def sf_datetime(value: datetime) -> str:
    """Salesforce's JSON form of a datetime: ``2024-05-01T12:00:00.000+0000`` (UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime | None:
    """A dateTime as Salesforce accepts it (``Z``, ``+hh:mm``, ``+hhmm``, optional millis); aware UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit():
        value = value[:-2] + ":" + value[-2:]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC) if "T" in value else None


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if len(text.strip()) == 10 else None
    except ValueError:
        return None


# --- objects and fields -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PicklistValue:
    value: str
    label: str | None = None
    default: bool = False
    active: bool = True
    closed: bool = False  # Case Status only: the status closes the case (IsClosed)

    def render(self) -> JsonDict:
        return {"active": self.active, "defaultValue": self.default, "label": self.label or self.value,
                "validFor": None, "value": self.value}


@dataclass
class SfField:
    name: str
    type: str = "string"
    label: str | None = None
    required: bool = False  # nillable=False and nothing fills it on create
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    picklist: list[PicklistValue] | None = None
    restricted: bool = False
    createable: bool = True
    updateable: bool = True
    reference_to: tuple[str, ...] = ()
    length: int = 255
    default: Any = None  # filled on create when absent
    calculated: bool = False
    name_field: bool = False
    custom: bool = False

    @property
    def display(self) -> str:
        return self.label or self.name

    def picklist_value(self, value: str) -> PicklistValue | None:
        return next((p for p in self.picklist or [] if p.value == value and p.active), None)

    @property
    def relationship_name(self) -> str | None:
        """A lookup's relationship name, as SOQL paths use it: ``AccountId`` -> ``Account``, ``Parent__c`` ->
        ``Parent__r``; None for other fields."""
        if self.type != "reference":
            return None
        return self.name[:-3] + "__r" if self.name.endswith("__c") else self.name.removesuffix("Id")

    def render(self) -> JsonDict:
        text = self.type in TEXT_TYPES and self.type not in ("id", "reference")
        length = self.length if text else (18 if self.type in ("id", "reference") else 0)
        relationship = self.relationship_name
        defaulted = self.default is not None or self.name in ("Id", "OwnerId", "IsDeleted", "Name") or self.calculated
        return {
            "aggregatable": self.type not in ("textarea", "boolean"), "autoNumber": self.name == "CaseNumber",
            "byteLength": length * 3, "calculated": self.calculated, "caseSensitive": self.case_sensitive,
            "createable": self.createable, "custom": self.custom, "defaultValue": self.default,
            "defaultedOnCreate": defaulted, "dependentPicklist": False, "digits": 9 if self.type == "int" else 0,
            "externalId": self.external_id, "filterable": self.type != "textarea", "groupable": self.type != "textarea",
            "idLookup": self.type == "id" or self.external_id or (self.name == "Email"), "label": self.display,
            "length": length, "name": self.name, "nameField": self.name_field,
            "nillable": not (self.required or self.type in ("boolean", "id") or (self.restricted and defaulted)),
            "picklistValues": [p.render() for p in self.picklist or []],
            "precision": 18 if self.type in ("double", "currency", "percent") else 0, "referenceTo":
            list(self.reference_to), "relationshipName": relationship,
            "restrictedPicklist": self.restricted, "scale": 2 if self.type in ("double", "currency", "percent") else 0,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"), "sortable": self.type != "textarea",
            "type": self.type, "unique": self.unique, "updateable": self.updateable,
        }


@dataclass
class SfObject:
    name: str
    key_prefix: str
    label: str | None = None
    custom: bool = False
    fields: dict[str, SfField] = field(default_factory=dict)  # lower-case name -> field

    def add(self, *fields: SfField) -> SfObject:
        for f in fields:
            self.fields[f.name.lower()] = f
        return self

    def field(self, name: str) -> SfField | None:
        return self.fields.get(name.lower())

    def external_ids(self) -> list[SfField]:
        return [f for f in self.fields.values() if f.external_id]

    def urls(self, version: str) -> JsonDict:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def summary(self, version: str) -> JsonDict:
        return {"activateable": False, "createable": True, "custom": self.custom, "customSetting": False,
                "deletable": True, "deprecatedAndHidden": False, "feedEnabled": False, "keyPrefix": self.key_prefix,
                "label": self.label or self.name, "labelPlural": (self.label or self.name) + "s", "layoutable": True,
                "mergeable": False, "mruEnabled": True, "name": self.name, "queryable": True, "replicateable": True,
                "retrieveable": True, "searchable": True, "triggerable": True, "undeletable": True,
                "updateable": True, "urls": self.urls(version)}

    def describe(self, version: str) -> JsonDict:
        return {**self.summary(version), "childRelationships": [], "compactLayoutable": True,
                "fields": [f.render() for f in self.fields.values()], "recordTypeInfos": [],
                "supportedScopes": [{"label": "All", "name": "everything"}]}


def _picklist(*values: str | PicklistValue, default: str | None = None) -> list[PicklistValue]:
    out = [v if isinstance(v, PicklistValue) else PicklistValue(v) for v in values]
    return [PicklistValue(p.value, p.label, p.value == default, p.active, p.closed) if default else p for p in out]


def picklist_values(values: Iterable[str | PicklistValue], default: str | None = None) -> list[PicklistValue]:
    """Picklist values from strings or :class:`PicklistValue` (``default`` marks one as the default)."""
    return _picklist(*values, default=default)


def _system(owner: bool = True) -> list[SfField]:
    ro: dict[str, Any] = {"createable": False, "updateable": False}
    out = [SfField("Id", "id", "Record ID", **ro), SfField("IsDeleted", "boolean", "Deleted", **ro),
           SfField("CreatedDate", "datetime", "Created Date", **ro),
           SfField("CreatedById", "reference", "Created By ID", reference_to=("User",), **ro),
           SfField("LastModifiedDate", "datetime", "Last Modified Date", **ro),
           SfField("LastModifiedById", "reference", "Last Modified By ID", reference_to=("User",), **ro),
           SfField("SystemModstamp", "datetime", "System Modstamp", **ro)]
    if owner:
        out.append(SfField("OwnerId", "reference", "Owner ID", reference_to=("User",)))
    return out


def standard_objects() -> list[SfObject]:
    """Account, Contact, Case and CaseComment as a fresh org has them (plus Case's ``Opsflow_Fingerprint__c``)."""
    ro: dict[str, Any] = {"createable": False, "updateable": False}
    account = SfObject("Account", "001").add(
        *_system(), SfField("Name", "string", "Account Name", required=True, name_field=True),
        SfField("Type", "picklist", "Account Type", picklist=_picklist(
            "Prospect", "Customer - Direct", "Customer - Channel", "Other")),
        SfField("Industry", "picklist", picklist=_picklist("Agriculture", "Banking", "Retail", "Technology", "Other")),
        SfField("Website", "url"), SfField("Phone", "phone", "Account Phone", length=40),
        SfField("BillingCity", "string", "Billing City", length=40),
        SfField("BillingAddress", "address", "Billing Address", **ro),
        SfField("NumberOfEmployees", "int", "Employees"), SfField("AnnualRevenue", "currency", "Annual Revenue"),
        SfField("Description", "textarea", "Account Description", length=32000))
    contact = SfObject("Contact", "003").add(
        *_system(), SfField("FirstName", "string", "First Name", length=40),
        SfField("LastName", "string", "Last Name", required=True, length=80),
        SfField("Name", "string", "Full Name", name_field=True, length=121, **ro),
        SfField("AccountId", "reference", "Account ID", reference_to=("Account",)),
        SfField("Email", "email"), SfField("Phone", "phone", "Business Phone", length=40),
        SfField("Title", "string", length=128), SfField("Description", "textarea", "Contact Description", length=32000))
    case = SfObject("Case", "500").add(
        *_system(), SfField("CaseNumber", "string", "Case Number", name_field=True, length=30, **ro),
        SfField("Subject", "string"), SfField("Description", "textarea", length=32000),
        SfField("Status", "picklist", restricted=True, default="New", picklist=_picklist(
            "New", "Working", "Escalated", PicklistValue("Closed", closed=True), default="New")),
        SfField("Priority", "picklist", restricted=True, default="Medium",
                picklist=_picklist("High", "Medium", "Low", default="Medium")),
        SfField("Origin", "picklist", "Case Origin", picklist=_picklist("Phone", "Email", "Web")),
        SfField("Type", "picklist", "Case Type", picklist=_picklist("Problem", "Feature Request", "Question")),
        SfField("IsClosed", "boolean", "Closed", calculated=True, **ro),
        SfField("ClosedDate", "datetime", "Closed Date", **ro),
        SfField("AccountId", "reference", "Account ID", reference_to=("Account",)),
        SfField("ContactId", "reference", "Contact ID", reference_to=("Contact",)),
        SfField("Opsflow_Fingerprint__c", "string", "Opsflow Fingerprint", external_id=True, unique=True,
                custom=True))
    comment = SfObject("CaseComment", "00a").add(
        *_system(owner=False), SfField("ParentId", "reference", "Parent Case ID", required=True, updateable=False,
                                       reference_to=("Case",)),
        SfField("CommentBody", "textarea", "Body", length=4000), SfField("IsPublished", "boolean", "Published",
                                                                        default=False))
    return [account, contact, case, comment]


def compound_parts(f: SfField) -> dict[str, str]:
    """A compound field's JSON keys and the component fields they come from: a standard address
    (``BillingAddress``: ``BillingCity``...), a custom address (``Site__c``: ``Site__City__s``...) or a geolocation
    (``Where__c``: ``Where__Latitude__s``, ``Where__Longitude__s``)."""
    parts = _ADDRESS_PARTS if f.type == "address" else {"latitude": "Latitude", "longitude": "Longitude"}
    if f.name.endswith("__c"):
        return {key: f"{f.name.removesuffix('__c')}__{part}__s" for key, part in parts.items()}
    return {key: f.name.removesuffix("Address") + part for key, part in parts.items()}


def compound_value(f: SfField, fields: dict[str, Any]) -> JsonDict | None:
    """A compound field's value as REST answers it: an object of its components, null when all are empty."""
    value = {key: fields.get(name) for key, name in compound_parts(f).items()}
    return value if any(v is not None for v in value.values()) else None


def custom_object(name: str, key_prefix: str, label: str | None = None) -> SfObject:
    """A custom object with its system fields and a text ``Name`` (the record id when not given)."""
    return SfObject(name, key_prefix, label or name.removesuffix("__c").replace("_", " "), custom=True).add(
        *_system(), SfField("Name", "string", f"{label or name.removesuffix('__c')} Name", name_field=True, length=80))
