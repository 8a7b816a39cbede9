"""API sides of checks: HubSpot objects, a Salesforce SOQL query, a Zendesk incremental export.

Each is validated when the spec is parsed (the error names the field) and becomes a streamed source of
:mod:`airflow_opsflow.core.api_source` on the client the Airflow shell opens for its connection; the
records are staged in SQLite (:mod:`airflow_opsflow.core.staging`) and read back like a table.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_opsflow.checks.values import Int
from airflow_opsflow.core.api_source import (
    SALESFORCE_BULK_ABOVE,
    ApiSource,
    HubSpotObjects,
    SalesforceQuery,
    ZendeskExport,
)

_HUBSPOT_OBJECT = re.compile(r"(?:[a-z][a-z0-9_]*|[0-9]+-[0-9]+)")
_HUBSPOT_PROPERTY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
HUBSPOT_OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
                     "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
HUBSPOT_MAX_FILTERS = 9  # HubSpot takes 10 a group; one is kept for paging past its 10,000-result window
_SF_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_SF_PATH = re.compile(rf"{_SF_NAME}(?:\.{_SF_NAME})*")
_SOQL = re.compile(rf"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>{_SF_NAME})(?P<rest>(?:\s.*)?)", re.I | re.S)
_SOQL_STRING = re.compile(r"'(?:[^'\\]|\\.)*'", re.S)
DEFAULT_CONN = {"hubspot": "hubspot_default", "salesforce": "salesforce_default", "zendesk": "zendesk_default"}


class HubSpotFilter(BaseModel):
    """One HubSpot search filter, in HubSpot's own words: ``{propertyName, operator, value}``
    (``values`` for IN/NOT_IN, ``value`` and ``highValue`` for BETWEEN, nothing for HAS_PROPERTY)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    propertyName: str
    operator: Literal["EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
                      "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"]
    value: str | int | float | bool | None = None
    values: list[str | int | float] | None = None
    highValue: str | int | float | None = None

    @field_validator("propertyName")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _HUBSPOT_PROPERTY.fullmatch(v):
            raise ValueError(f"{v!r} is not a HubSpot property name (letters, digits and underscores)")
        return v

    @field_validator("operator", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _operands(self) -> HubSpotFilter:
        op = self.operator
        if op in ("IN", "NOT_IN"):
            if not self.values or self.value is not None:
                raise ValueError(f"{op} takes a non-empty 'values' list (and no 'value')")
        elif op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            if self.value is not None or self.values is not None:
                raise ValueError(f"{op} takes no value")
        elif self.value is None or self.values is not None:
            raise ValueError(f"{op} takes a 'value'" + (" and a 'highValue'" if op == "BETWEEN" else ""))
        if (op == "BETWEEN") != (self.highValue is not None):
            raise ValueError("'highValue' goes with BETWEEN, and BETWEEN needs it")
        return self

    def to_api(self) -> dict[str, Any]:
        return {k: (str(v).lower() if isinstance(v, bool) else v)
                for k, v in self.model_dump(exclude_none=True).items()}


class HubSpotSource(BaseModel):
    """HubSpot CRM objects: ``{object: companies, properties: [domain, tier], filters: [...]}``.

    :param object: the object type: ``companies``, ``contacts``, ``deals``, ``tickets``..., or a custom
        object's type id (``2-1234``). The staged table has this name (custom ids: ``t_2_1234``).
    :param properties: the properties to read (columns beside ``id``, the record id); values are HubSpot's
        text, typed from what comes (``"120"`` everywhere makes an integer column).
    :param filters: search filters, all of which a record matches (HubSpot's search API, up to 9); without
        them every record is listed.
    :param page_size: records a request (list: at most 100, the default; search: at most 200, the default).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    object: str
    properties: list[str] = Field(min_length=1)
    filters: list[HubSpotFilter] = Field(default_factory=list, max_length=HUBSPOT_MAX_FILTERS)
    page_size: Int | None = Field(default=None, ge=1, le=200)

    @field_validator("object")
    @classmethod
    def _object(cls, v: str) -> str:
        if not _HUBSPOT_OBJECT.fullmatch(v):
            raise ValueError(f"{v!r} is not a HubSpot object type: use companies, contacts, deals, tickets... "
                             "(lower case) or a custom object's type id such as 2-1234")
        return v

    @field_validator("properties", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("properties")
    @classmethod
    def _properties(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _HUBSPOT_PROPERTY.fullmatch(name):
                raise ValueError(f"{name!r} is not a HubSpot property name (letters, digits and underscores)")
            if name.lower() == "id":
                raise ValueError("'id' (the record id) is always read: leave it out of properties")
        twice = sorted({n for n in v if v.count(n) > 1})
        if twice:
            raise ValueError(f"properties named twice: {', '.join(twice)}")
        return v

    @model_validator(mode="after")
    def _page(self) -> HubSpotSource:
        if not self.filters and self.page_size is not None and self.page_size > 100:
            raise ValueError("page_size: HubSpot lists at most 100 records a page (search, with filters: 200)")
        return self

    def describe(self) -> str:
        return f"HubSpot {self.object}"

    def source(self, request: Any) -> ApiSource:
        return HubSpotObjects(request, self.object, self.properties, [f.to_api() for f in self.filters],
                              self.page_size)


class SalesforceSource(BaseModel):
    """A Salesforce SOQL query: ``{soql: "SELECT Id, Tier__c FROM Account WHERE Type = 'Customer'"}``.

    :param soql: one ``SELECT ... FROM Object`` (filters, order and limit as SOQL allows; no relationship
        subquery in the field list: query the child object instead). The staged table is named after the
        object; its columns are the selected fields (``Owner.Name`` stays dotted), typed from the values.
    :param bulk_above: records above which the query is read through a Bulk API 2.0 query job instead of
        REST pages (default 10,000; ``0``: whenever it has records; ``never``, or null: REST only). The
        first REST answer's ``totalSize`` decides, with no extra request. A job costs one request however
        large the result (REST: one a 2,000 records) but a few polls and seconds of queueing: Salesforce
        calls anything above 2,000 records a candidate, the default waits until the job clearly pays off.
        Bulk API 2.0 cannot run ``GROUP BY``, ``OFFSET``, ``TYPEOF`` or functions in the field list:
        such queries stay on REST (naming ``bulk_above`` for one is an error). Either way the staged rows
        are the same (CSV values are typed as the REST JSON types them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    soql: str
    bulk_above: Int | None = Field(default=SALESFORCE_BULK_ABOVE, ge=0)

    @field_validator("soql")
    @classmethod
    def _soql(cls, v: str) -> str:
        soql_parts(v)
        return v.strip()

    @field_validator("bulk_above", mode="before")
    @classmethod
    def _never(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("never", "none", "null"):
            return None
        return v

    @model_validator(mode="after")
    def _bulk(self) -> SalesforceSource:
        if "bulk_above" in self.model_fields_set and self.bulk_above is not None:
            refused = bulk_refusal(self.soql)
            if refused:
                raise ValueError(f"bulk_above: Bulk API 2.0 cannot run this query ({refused}); leave bulk_above "
                                 "out or set it to never")
        return self

    def describe(self) -> str:
        return f"Salesforce {soql_parts(self.soql)[0]}"

    def source(self, client: Any) -> ApiSource:
        name, fields = soql_parts(self.soql)
        bulk_above = self.bulk_above if bulk_refusal(self.soql) is None else None
        return SalesforceQuery(client, self.soql, name, fields, bulk_above=bulk_above)


def bulk_refusal(soql: str) -> str | None:
    """Why Bulk API 2.0 cannot run a query (its documented limits), or None when it can."""
    blank = _SOQL_STRING.sub("''", soql)
    m = _SOQL.fullmatch(blank)
    if m is None:
        return "not a plain SELECT"
    clause = re.search(r"\b(GROUP\s+BY|OFFSET|TYPEOF)\b", blank, re.I)
    if clause:
        return f"{' '.join(clause[1].upper().split())} is not supported"
    function = next((item for item in _top_level_items(m["fields"]) if not _SF_PATH.fullmatch(item)), None)
    if function is not None:
        return f"{function!r} in the field list: only plain fields and relationship fields are supported"
    return None


def soql_parts(soql: str) -> tuple[str, list[str]]:
    """The object a SOQL query reads and its plain selected fields; ValueError names what is wrong."""
    blank = _SOQL_STRING.sub("''", soql)  # string literals out of the way of the checks below
    if ";" in blank:
        raise ValueError("SOQL is one SELECT statement, without ';'")
    m = _SOQL.fullmatch(blank)
    if m is None:
        raise ValueError(f"SOQL must be one 'SELECT field, ... FROM Object ...' query, got {soql[:80]!r}")  # noqa: S608
    fields_text = m["fields"]
    if re.search(r"\bselect\b", fields_text, re.I):
        raise ValueError("a relationship subquery (SELECT ... inside the field list) returns nested records that "
                         "cannot be staged as columns: query the child object instead")
    items = _top_level_items(fields_text)
    if any(not item for item in items):
        raise ValueError(f"SOQL field list {fields_text.strip()[:80]!r} has an empty item")
    if len(items) == 1 and re.fullmatch(r"count\(\s*\)", items[0], re.I):
        raise ValueError("SELECT COUNT() returns no records: select the fields to compare")
    for item in items:
        aliased = re.fullmatch(rf"({_SF_PATH.pattern})\s+(?:AS\s+)?({_SF_NAME})", item, re.I)
        if aliased:
            raise ValueError(f"SOQL has no column aliases outside aggregate queries ({item!r}): Salesforce refuses "
                             f"them. Name the other side's columns after {aliased[1]!r} (alias them in its 'sql'), "
                             "or compare differently named columns with right_column")
    fields = [item for item in items if _SF_PATH.fullmatch(item)]
    return m["object"], fields


def _top_level_items(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in the SOQL field list {text.strip()[:80]!r}")
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    if depth:
        raise ValueError(f"unbalanced parentheses in the SOQL field list {text.strip()[:80]!r}")
    items.append(current.strip())
    return items


class ZendeskSource(BaseModel):
    """A Zendesk incremental export: ``{export: tickets, start_time: 2024-01-01}``.

    :param export: ``tickets``, ``users`` (by cursor) or ``organizations`` (by time); the staged table has
        this name. Deleted tickets and organizations are left out; nested objects are dotted columns
        (``organization_fields.tier``, ``via.channel``), lists JSON text.
    :param start_time: records changed since then: epoch seconds, a date or an ISO timestamp (default: all).
    :param page_size: records a request (at most 1,000, the default).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    export: Literal["tickets", "users", "organizations"]
    start_time: Int = Field(default=0, ge=0)
    page_size: Int | None = Field(default=None, ge=1, le=1000)

    @field_validator("start_time", mode="before")
    @classmethod
    def _epoch(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip().isdigit():
            try:
                v = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"expected epoch seconds, a date or an ISO timestamp, got {v!r}") from None
        if isinstance(v, date) and not isinstance(v, datetime):
            v = datetime(v.year, v.month, v.day, tzinfo=UTC)
        if isinstance(v, datetime):
            return int((v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp())
        return v

    def describe(self) -> str:
        return f"Zendesk {self.export}"

    def source(self, get: Any) -> ApiSource:
        return ZendeskExport(get, self.export, self.start_time, self.page_size)


ApiSpec = HubSpotSource | SalesforceSource | ZendeskSource


def with_system_connection(data: Any) -> Any:
    """A spec dict naming one API and no ``conn_id`` reads through that system's default connection (as the
    hooks do): ``hubspot_default``, ``salesforce_default`` or ``zendesk_default``."""
    if isinstance(data, dict) and not data.get("conn_id"):
        systems = [name for name in DEFAULT_CONN if data.get(name) is not None]
        if len(systems) == 1:
            return {**data, "conn_id": DEFAULT_CONN[systems[0]]}
    return data
