"""SalesforceCase: one Salesforce Case per incident, found again rather than duplicated, closed with it.

The lifecycle is :class:`~airflow_opsflow.incidents.tickets.TicketRoute`'s; this module speaks Salesforce's
REST API through Airflow's official Salesforce provider (``SalesforceHook``, ``simple-salesforce``): a Case
carries the incident's marker in an external-id field (``Opsflow_Fingerprint__c`` by default; create it once
as a unique, case-sensitive External ID text field on Case), found with SOQL (which reads the database, so
unlike Jira's or Zendesk's search it does not lag), commented with ``CaseComment``, closed and reopened by
``Status`` (``IsClosed`` follows the status). The statuses and priorities the route sets are checked against
the org's Case picklists (one describe) before the first Case a dispatch files or reopens. An expired session
logs in again once; an exhausted daily API limit (``REQUEST_LIMIT_EXCEEDED``) fails the delivery with that
said, and it stays pending for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow_opsflow.core.text import cut
from airflow_opsflow.core.timestamps import parse_time
from airflow_opsflow.incidents import ticket_render
from airflow_opsflow.incidents.tickets import Ticket, TicketBackend, TicketRoute, ref_key

if TYPE_CHECKING:
    from simple_salesforce import Salesforce
    from simple_salesforce.api import SFType

    from airflow_opsflow.incidents.alert import Alert

T = TypeVar("T")
COMMENT_MAX = 4000  # CaseComment.CommentBody
DESCRIPTION_MAX = 32_000  # Case.Description
FIELDS = ("Id", "CaseNumber", "Status", "IsClosed", "ClosedDate", "Subject")
SOQL_IN = 200  # markers or Ids per SOQL IN list (the query's URL stays far under Salesforce's 16,384 characters)
ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"  # the 18-character Id's checksum alphabet


def case_marker(fingerprint: str) -> str:
    return f"opsflow-{fingerprint[:24]}"


class SalesforceCase(TicketRoute):
    """Open, update and close a Salesforce Case per incident.

    :param conn_id: a ``salesforce`` connection (Airflow's Salesforce provider; the user needs Create/Edit
        on Case and CaseComment and read access to the marker field).
    :param fingerprint_field: the Case external-id field holding the incident's marker.
    :param open_status: ``Status`` of a new or reopened Case (default ``New``).
    :param closed_status: ``Status`` that closes a Case (default ``Closed``).
    :param priorities: severity -> ``Priority`` (default error: High, warn: Medium).
    :param fields: more Case fields for the create (``{"Origin": "Web", "OwnerId": "005..."}``).
    :param record_type_id: the Case record type, if the org uses several.

    Templated (Jinja, from params, Variables...): ``conn_id``, ``open_status``, ``closed_status``,
    ``priorities``, ``fields`` (their values), ``record_type_id``.

    Other parameters: see :class:`~airflow_opsflow.incidents.tickets.TicketRoute` and
    :class:`~airflow_opsflow.incidents.route.AlertRoute`.
    """

    kind = "salesforce"
    template_fields: tuple[str, ...] = ("conn_id", "open_status", "closed_status", "priorities", "fields",
                                        "record_type_id")

    def __init__(self, *, conn_id: str = "salesforce_default", fingerprint_field: str = "Opsflow_Fingerprint__c",
                 open_status: str = "New", closed_status: str = "Closed", priorities: dict[str, str] | None = None,
                 fields: dict[str, Any] | None = None, record_type_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not fingerprint_field.replace("_", "").isalnum():
            raise ValueError(f"fingerprint_field must be a field API name, got {fingerprint_field!r}")
        self.conn_id = conn_id
        self.fingerprint_field = fingerprint_field
        self.open_status = open_status
        self.closed_status = closed_status
        self.priorities = priorities or {"error": "High", "warn": "Medium"}
        self.fields = dict(fields or {})
        self.record_type_id = record_type_id

    def where(self) -> str:
        return f"{self.conn_id}/Case"

    def backend(self) -> SalesforceCaseBackend:
        return SalesforceCaseBackend(self)


class SalesforceCaseBackend(TicketBackend):
    """Salesforce for :class:`SalesforceCase` (one logged-in client per dispatch)."""

    def __init__(self, route: SalesforceCase) -> None:
        self.route = route
        self._client: Salesforce | None = None
        self._checked = False

    def search(self, fingerprints: list[str], known_ids: list[str], single: bool) -> dict[str, Ticket | None]:
        markers = {case_marker(fp): fp for fp in fingerprints}
        found: dict[str, list[Ticket]] = {fp: [] for fp in fingerprints}
        field = self.route.fingerprint_field
        names = sorted(markers)
        for start in range(0, len(names), SOQL_IN):
            chunk = ", ".join(_soql(m) for m in names[start:start + SOQL_IN])
            soql = (f"SELECT {', '.join(FIELDS)}, {field} FROM Case WHERE {field} IN ({chunk}) "
                    "ORDER BY LastModifiedDate DESC")
            for record in self._query(soql):
                fp = markers.get(str(record.get(field) or ""))
                if fp is not None:
                    found[fp].append(self._ticket(record, fp))
        return {fp: self._choose(tickets) for fp, tickets in found.items()}

    def read(self, ref: Mapping[str, Any], fingerprint: str) -> Ticket | None:
        from simple_salesforce.exceptions import SalesforceResourceNotFound

        case_id = str(ref.get("id") or "")
        if not case_id:
            return None
        try:
            record = self._call(lambda sf: _sobject(sf, "Case").get(case_id))
        except SalesforceResourceNotFound:  # deleted
            return None
        return self._ticket(record, fingerprint)

    def read_many(self, refs: list[Mapping[str, Any]]) -> dict[str, Ticket | None]:
        """One SOQL ``Id IN (...)`` query per ``SOQL_IN`` Cases (it reads the database, as a read by Id does;
        deleted Cases are not returned). A value that cannot be a Salesforce Id names no Case: left out of
        the query, which Salesforce would refuse whole (``invalid ID field``)."""
        by_id: dict[str, list[str]] = {}  # 15-character Id (case-sensitive) -> the refs naming it
        sent: dict[str, str] = {}  # 15-character Id -> the Id as first given (15 or 18 characters)
        out: dict[str, Ticket | None] = {}
        for ref in refs:
            out[ref_key(ref)] = None
            case_id = str(ref.get("id") or "")
            if _is_id(case_id):
                by_id.setdefault(case_id[:15], []).append(ref_key(ref))
                sent.setdefault(case_id[:15], case_id)
        ids = list(sent.values())
        for start in range(0, len(ids), SOQL_IN):
            chunk = ", ".join(_soql(i) for i in ids[start:start + SOQL_IN])
            for record in self._query(f"SELECT {', '.join(FIELDS)} FROM Case WHERE Id IN ({chunk})"):
                ticket = self._ticket(record, "")
                for key in by_id.get(ticket.id[:15], []):
                    out[key] = ticket
        return out

    def create(self, fingerprint: str, alert: Alert) -> Ticket:
        self._check_picklists()
        r = self.route
        text, _ = ticket_render.body(alert, r.sample_columns, r.mask_columns, r.sample_rows)
        data: dict[str, Any] = {"Subject": ticket_render.summary(alert), "Description": cut(text, DESCRIPTION_MAX),
                                "Status": r.open_status, r.fingerprint_field: case_marker(fingerprint), **r.fields}
        if alert.severity in r.priorities:
            data["Priority"] = r.priorities[alert.severity]
        if r.record_type_id:
            data["RecordTypeId"] = r.record_type_id
        created = self._call(lambda sf: _sobject(sf, "Case").create(data))
        record = self._call(lambda sf: _sobject(sf, "Case").get(created["id"]))
        return self._ticket(record, fingerprint)

    def comment(self, ticket: Ticket, alert: Alert) -> None:
        r = self.route
        text, _ = ticket_render.body(alert, r.sample_columns, r.mask_columns, r.sample_rows)
        body = {"ParentId": ticket.id, "CommentBody": cut(text, COMMENT_MAX)}
        self._call(lambda sf: _sobject(sf, "CaseComment").create(body))

    def close(self, ticket: Ticket, alert: Alert) -> None:
        self.comment(ticket, alert)
        self._call(lambda sf: _sobject(sf, "Case").update(ticket.id, {"Status": self.route.closed_status}))

    def reopen(self, ticket: Ticket) -> None:
        self._check_picklists()
        self._call(lambda sf: _sobject(sf, "Case").update(ticket.id, {"Status": self.route.open_status}))

    def _check_picklists(self) -> None:
        """Before the first Case this dispatch files or reopens: ``open_status``, ``closed_status`` and the
        priorities are values of the org's Case picklists (one describe). Otherwise a Case would be filed
        that can never be closed, found only when its incident resolves."""
        if self._checked:
            return
        r = self.route
        described = self._call(lambda sf: _sobject(sf, "Case").describe())
        fields = {str(f.get("name")): f for f in described.get("fields") or [] if isinstance(f, dict)}
        wanted = [("Status", "open_status", r.open_status), ("Status", "closed_status", r.closed_status),
                  *(("Priority", f"priorities[{k!r}]", v) for k, v in r.priorities.items())]
        problems = []
        for field, setting, value in wanted:
            values = [str(v.get("value")) for v in (fields.get(field) or {}).get("picklistValues") or []
                      if isinstance(v, dict) and v.get("active", True)]
            if values and value not in values:
                problems.append(f"{setting} {value!r} is not an active {field} of Case (the org has: "
                                f"{', '.join(values)})")
        if problems:
            raise ValueError(f"Salesforce ({r.conn_id}): route {r.name!r} cannot file Cases: {'; '.join(problems)}")
        self._checked = True

    # -- Salesforce specifics ------------------------------------------------------------------------------

    def _query(self, soql: str) -> list[dict[str, Any]]:
        result: dict[str, Any] = self._call(lambda sf: sf.query_all(soql))
        return list(result.get("records") or [])

    def _ticket(self, record: Mapping[str, Any], fingerprint: str) -> Ticket:
        case_id = str(record["Id"])
        base = str(getattr(self._client, "base_url", "")).split("/services/")[0] or ""
        return Ticket(id=case_id, key=f"Case {record.get('CaseNumber') or case_id}",
                      url=f"{base}/lightning/r/Case/{case_id}/view", closed=bool(record.get("IsClosed")),
                      closed_at=parse_time(record.get("ClosedDate")),
                      ours=record.get(self.route.fingerprint_field) == case_marker(fingerprint), raw=record)

    def _choose(self, tickets: list[Ticket]) -> Ticket | None:
        """Open first (the most recently modified), else closed within the reopen window."""
        open_ = [t for t in tickets if not t.closed]
        if open_:
            return open_[0]
        window = self.route.reopen_window_days
        recent = [t for t in tickets if window > 0 and t.closed_at is not None
                  and (datetime.now(UTC) - t.closed_at).days < window]
        return recent[0] if recent else None

    def _sf(self, fresh: bool = False) -> Salesforce:
        if self._client is None or fresh:
            from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

            self._client = SalesforceHook(salesforce_conn_id=self.route.conn_id).get_conn()
        return self._client

    def _call(self, action: Callable[[Salesforce], T]) -> T:
        """One API call; an expired session logs in again once, Salesforce's errors are named."""
        from simple_salesforce.exceptions import (
            SalesforceError,
            SalesforceExpiredSession,
            SalesforceMalformedRequest,
            SalesforceResourceNotFound,
        )

        try:
            try:
                return action(self._sf())
            except SalesforceExpiredSession:  # sessions time out (2 h by default): log in again, once
                return action(self._sf(fresh=True))
        except SalesforceMalformedRequest as e:  # a picklist value, a missing field...: the request is wrong
            raise ValueError(f"Salesforce ({self.route.conn_id}) refused the Case request: {_errors(e)}") from None
        except SalesforceError as e:
            if "REQUEST_LIMIT_EXCEEDED" in str(e.content):
                raise RuntimeError(f"Salesforce ({self.route.conn_id}): the org's daily API request limit is used "
                                   "up (REQUEST_LIMIT_EXCEEDED); the Case updates stay pending for a later run"
                                   ) from None
            if isinstance(e, SalesforceResourceNotFound):  # the caller's to judge (a deleted Case)
                raise
            raise RuntimeError(f"Salesforce ({self.route.conn_id}): HTTP {e.status}: {_errors(e)}") from None


def _sobject(sf: Salesforce, name: str) -> SFType:
    """``sf.Case``, typed (simple-salesforce's attribute access also serves its bulk handlers)."""
    return cast("SFType", getattr(sf, name))


def _errors(e: Any) -> str:
    content = getattr(e, "content", None)
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if isinstance(content, list):
        return "; ".join(f"{c.get('errorCode')}: {c.get('message')}"
                         + (f" (fields {', '.join(c['fields'])})" if c.get("fields") else "")
                         for c in content if isinstance(c, dict))
    return str(content or e)[:500]


def _soql(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_id(value: str) -> bool:
    """A 15-character Id, or an 18-character one whose last three characters are its checksum (Salesforce
    refuses any other value where an Id is compared)."""
    if len(value) not in (15, 18) or not (value.isascii() and value.isalnum()):
        return False
    suffix = "".join(ID_SUFFIX[sum(1 << i for i, c in enumerate(value[k:k + 5]) if c.isupper())] for k in (0, 5, 10))
    return len(value) == 15 or value[15:].upper() == suffix
