"""FakeSalesforce: a local Salesforce org (REST, sObject Collections, SOQL, Bulk API 2.0, SOAP/OAuth login) over TLS.

simple-salesforce, and Airflow's ``SalesforceHook`` on top of it, work against it unchanged::

    with FakeSalesforce() as org:
        sf = org.client()                                   # simple_salesforce.Salesforce, logged in by SOAP
        sf.Case.upsert("Opsflow_Fingerprint__c/fp-1", {"Subject": "payments: 3 checks failed"})   # 201
        sf.Case.upsert("Opsflow_Fingerprint__c/fp-1", {"Status": "Closed"})                       # 200
        assert org.record_by("Case", "Opsflow_Fingerprint__c", "fp-1")["IsClosed"] is True

How a client reaches it: simple-salesforce writes every URL as ``https://{instance}`` and every login as
``https://{domain}.salesforce.com/services/...``, with no way to choose plain HTTP. So the fake serves HTTPS with
a throwaway CA (:mod:`~airflow_opsflow_testing.salesforce_tls`) that clients trust through a requests session
(``verify=``, with ``trust_env`` off: :meth:`FakeSalesforce.session`) or ``REQUESTS_CA_BUNDLE`` (the fixtures set
it to the usual bundle plus that CA: ``SalesforceHook`` builds its own session), and it reads a
``domain`` of ``127.0.0.1:<port>/login`` (:attr:`FakeSalesforce.domain`): the login then goes to
``https://127.0.0.1:<port>/login.salesforce.com/services/Soap/u/59.0``, which the fake serves, and its
``serverUrl``/``instance_url`` point the client at the fake for everything else. The direct form
``Salesforce(instance_url=fake.url, session_id=fake.issue_session())`` needs no login at all.
:meth:`FakeSalesforce.salesforce_connection` gives the ``salesforce`` Airflow connection (username, password,
security token, domain) that ``SalesforceHook(salesforce_conn_id=...)`` uses as is.

Knobs: :meth:`~FakeSalesforce.expire_sessions` (401 ``INVALID_SESSION_ID``: password clients log in again,
session-id clients raise ``SalesforceExpiredSession``), :meth:`~FakeSalesforce.set_api_limit` (403
``REQUEST_LIMIT_EXCEEDED`` once the daily counter is used up), :meth:`~FakeSalesforce.set_query_batch_size`,
:meth:`~FakeSalesforce.bulk_progress`; faults: :meth:`~FakeSalesforce.fail_next` (any status and body,
unprocessed) and :meth:`~FakeSalesforce.drop_response_next` (processed, then the connection closes unanswered).

Modules: :mod:`~.salesforce_schema` (objects, fields, ids, errors), :mod:`~.salesforce_store` (records and save
rules), :mod:`~.salesforce_soql`, :mod:`~.salesforce_endpoints` (REST and Collections), :mod:`~.salesforce_bulk`,
:mod:`~.salesforce_auth` (SOAP and OAuth logins), :mod:`~.salesforce_wire` (TLS, request log, faults, dispatch).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_opsflow_testing.local_http import LocalHTTPService
from airflow_opsflow_testing.salesforce_auth import Credentials, Sessions
from airflow_opsflow_testing.salesforce_bulk import BulkApi, BulkProgress
from airflow_opsflow_testing.salesforce_endpoints import DataApi
from airflow_opsflow_testing.salesforce_schema import (
    COMPOUND_TYPES,
    TYPES,
    PicklistValue,
    SfField,
    SfObject,
    compound_parts,
    compound_value,
    picklist_values,
)
from airflow_opsflow_testing.salesforce_store import SalesforceOrg, WriteRecord
from airflow_opsflow_testing.salesforce_tls import local_certificate
from airflow_opsflow_testing.salesforce_wire import RecordedRequest, TlsHandler, Wire

if TYPE_CHECKING:
    import requests
    from simple_salesforce import Salesforce

__all__ = ["DEFAULT_API_VERSION", "FakeSalesforce", "PicklistValue", "RecordedRequest", "WriteRecord"]

DEFAULT_API_VERSION = "59.0"  # simple-salesforce's default
AUDIT_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")  # seeding may set these


class FakeSalesforce(Wire, LocalHTTPService):
    """A fake Salesforce org on ``https://127.0.0.1:<free port>``; a context manager, or ``start()``/``stop()``.

    :param version: the API version :meth:`client` and :meth:`salesforce_connection` ask for (any
        ``vNN.N`` is served; upserts that update answer 200 from 46.0 on, 204 before, as Salesforce does).
    :param api_limit: the daily API request allowance (``DailyApiRequests``); see :meth:`set_api_limit`.
    :param clock: what "now" is for audit fields, ``ClosedDate`` and SOQL date literals (default: UTC wall clock).
    :param credentials: the username, password, security token and connected app key/secret accepted.
    """

    service_name = "fake-salesforce"
    handler_class = TlsHandler

    def __init__(self, *, version: str = DEFAULT_API_VERSION, api_limit: int = 15_000, host: str = "127.0.0.1",
                 port: int = 0, clock: Callable[[], datetime] | None = None,
                 credentials: Credentials | None = None) -> None:
        self.version = version
        self.credentials = credentials or Credentials()
        self._init_http(host, port)
        self.certificate = local_certificate()
        self._tls = self.certificate.server_context()
        self.org = SalesforceOrg(clock)
        self.bulk = BulkApi(self.org)
        self.api = DataApi(self.org, self.bulk)
        self.api.limits["max"] = api_limit
        self.sessions = Sessions(self.org.org_id)
        self.operations = [*self.api.operations, "login", "oauth_token"]
        self._init_wire()

    # --- addresses and clients ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>``: the instance URL."""
        return "https" + super().url.removeprefix("http")

    @property
    def domain(self) -> str:
        """The simple-salesforce ``domain`` whose login URL lands on this fake (``127.0.0.1:<port>/login``)."""
        return f"{super().url.removeprefix('http://')}/login"

    @property
    def ca_bundle(self) -> str:
        """A CA bundle trusting this fake and every public CA (for ``REQUESTS_CA_BUNDLE`` or ``verify=``)."""
        return str(self.certificate.bundle)

    def issue_session(self) -> str:
        """A valid session id (access token), as a login would return."""
        return self.sessions.issue()

    def session(self) -> requests.Session:
        """A ``requests.Session`` that trusts this fake's certificate."""
        import requests

        s = requests.Session()
        s.verify = self.ca_bundle
        s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides verify (and proxies apply)
        return s

    def client(self, auth: str = "password", **kwargs: Any) -> Salesforce:
        """A ``simple_salesforce.Salesforce`` bound to this fake.

        :param auth: ``"password"`` (SOAP login with the security token; logs in again when the session
            expires), ``"oauth_password"`` (OAuth username-password flow), ``"client_credentials"`` or
            ``"session"`` (``instance_url`` + a session id: no login, so an expired session raises).
        """
        from simple_salesforce import Salesforce

        c = self.credentials
        options: dict[str, Any] = {"version": self.version, "session": self.session(), **kwargs}
        if auth == "password":
            return Salesforce(username=c.username, password=c.password, security_token=c.security_token,
                              domain=self.domain, **options)
        if auth == "oauth_password":
            return Salesforce(username=c.username, password=c.password + c.security_token,
                              consumer_key=c.consumer_key, consumer_secret=c.consumer_secret, domain=self.domain,
                              **options)
        if auth == "client_credentials":
            return Salesforce(consumer_key=c.consumer_key, consumer_secret=c.consumer_secret, domain=self.domain,
                              **options)
        if auth == "session":
            return Salesforce(instance_url=self.url, session_id=self.issue_session(), **options)
        raise ValueError(f"auth must be password, oauth_password, client_credentials or session, not {auth!r}")

    def salesforce_connection(self, conn_id: str = "salesforce_default", auth: str = "password") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for a ``salesforce`` connection ``SalesforceHook`` uses as is.

        ``auth="password"``: login, password, extras ``security_token`` and ``domain``;
        ``"client_credentials"``: extras ``consumer_key``, ``consumer_secret`` and ``domain``;
        ``"session"``: extra ``instance_url`` only (pass ``session_id=fake.issue_session()`` to the hook).
        The hook's requests must trust :attr:`ca_bundle` (the ``salesforce_conn`` fixture sets
        ``REQUESTS_CA_BUNDLE``).
        """
        c = self.credentials
        extra: dict[str, Any] = {"version": self.version}
        conn: dict[str, Any] = {"conn_type": "salesforce"}
        if auth == "password":
            conn.update(login=c.username, password=c.password)
            extra.update(security_token=c.security_token, domain=self.domain)
        elif auth == "client_credentials":
            extra.update(consumer_key=c.consumer_key, consumer_secret=c.consumer_secret, domain=self.domain)
        elif auth == "session":
            extra.update(instance_url=self.url)
        else:
            raise ValueError(f"auth must be password, client_credentials or session, not {auth!r}")
        conn["extra"] = extra
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    # --- schema ---------------------------------------------------------------------------------------

    def define_object(self, name: str, *, label: str | None = None) -> SfObject:
        """Add a custom object (``Name__c`` style API name) with its system fields and a text ``Name``."""
        if not name.endswith("__c"):
            raise ValueError(f"a custom object's API name ends with __c: {name!r}")
        return self.org.define_object(name, label)

    def define_field(self, object_name: str, name: str, type: str = "string", *, label: str | None = None,
                     external_id: bool = False, unique: bool = False, case_sensitive: bool = False,
                     required: bool = False, picklist: Iterable[str | PicklistValue] | None = None,
                     restricted: bool = False, default: Any = None, length: int = 255,
                     reference_to: Iterable[str] = ()) -> SfField:
        """Add a custom field (``Name__c``) or redefine an existing field (e.g. Case ``Status`` values).

        ``picklist`` values may be :class:`PicklistValue` (``closed=True`` closes a Case); ``default`` also
        marks the default picklist value. An ``address`` or ``location`` (geolocation) field is compound:
        read-only, its value derived from its component fields, added with it (``Where__Latitude__s``...).
        """
        obj = self._object(object_name)
        existing = obj.field(name)
        if existing is None and not name.endswith("__c"):
            raise ValueError(f"a custom field's API name ends with __c: {name!r}")
        if type not in TYPES:
            raise ValueError(f"type must be one of {sorted(TYPES)}, not {type!r}")
        values = picklist_values(picklist, default) if picklist is not None else None
        compound = type in COMPOUND_TYPES
        f = SfField(existing.name if existing else name, type, label, required=required, external_id=external_id,
                    unique=unique, case_sensitive=case_sensitive, picklist=values, restricted=restricted,
                    default=default, length=length, reference_to=tuple(reference_to),
                    custom=existing.custom if existing else True,
                    createable=existing.createable if existing else not compound,
                    updateable=existing.updateable if existing else not compound)
        with self.org.lock:
            if compound and existing is None:  # its components first (Where__Latitude__s...), as Salesforce adds
                obj.add(*(SfField(part, "double" if key in ("latitude", "longitude") else "string", custom=True)
                          for key, part in compound_parts(f).items()))
            obj.add(f)
            for record in self.org.records[obj.name].values():
                record.fields.setdefault(f.name, False if type == "boolean" else None)
                if compound:
                    record.fields[f.name] = compound_value(f, record.fields)
            self.org.forget_index()
        return f

    def _object(self, name: str) -> SfObject:
        obj = self.org.object(name)
        if obj is None:
            raise ValueError(f"no object {name!r}: one of {sorted(o.name for o in self.org.objects.values())}")
        return obj

    # --- seeding and what happened --------------------------------------------------------------------

    def add_record(self, object_name: str, **values: Any) -> dict[str, Any]:
        """Create a record without a request, validated like any save and not logged in :meth:`writes`.

        ``CreatedDate``/``LastModifiedDate``/``SystemModstamp`` may be given (a datetime or its ISO text), to
        seed history for incremental SOQL sources.
        """
        obj = self._object(object_name)
        audit = {k: values.pop(k) for k in list(values) if k in AUDIT_FIELDS}
        with self.org.lock:
            record = self.org.create(obj, values, via="seed")
            self.org.writes.pop()
            for name, value in audit.items():
                text = value.isoformat() if isinstance(value, datetime) else str(value)
                record.fields[name] = self.org.coerce(obj.fields[name.lower()], text)
            return dict(record.fields)

    def records(self, object_name: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        """The live records of an object (deleted ones too with ``deleted=True``), in creation order; copies."""
        obj = self._object(object_name)
        with self.org.lock:
            return [dict(r.fields) for r in self.org.live(obj, deleted=deleted)]

    def record(self, record_id: str) -> dict[str, Any]:
        with self.org.lock:
            found = self.org.find(record_id)
            if found is None:
                raise LookupError(f"no record {record_id!r} in the fake Salesforce")
            return dict(found.fields)

    def record_by(self, object_name: str, field_name: str, value: Any) -> dict[str, Any] | None:
        """The live record whose ``field_name`` equals ``value`` (external ids compare case-insensitively)."""
        obj = self._object(object_name)
        f = obj.field(field_name)
        if f is None:
            raise ValueError(f"{obj.name} has no field {field_name!r}")
        with self.org.lock:
            found = self.org.matches(obj, f, value)
            return dict(found[0].fields) if found else None

    def writes(self, object_name: str | None = None, op: str | None = None) -> list[WriteRecord]:
        """Every applied create/update/delete through the API, in order (rolled-back ones are gone)."""
        with self.org.lock:
            return [w for w in self.org.writes if (object_name is None or w.object == object_name)
                    and (op is None or w.op == op)]

    def creates(self, object_name: str) -> list[WriteRecord]:
        """The records created: a create re-sent after a lost answer shows here twice."""
        return self.writes(object_name, "create")

    def reset(self) -> None:
        """Forget records, writes, jobs, requests, faults and latency; the API counter restarts (schema stays)."""
        with self.org.lock:
            self.org.reset()
            self.bulk.jobs.clear()
            self.bulk.fail_next.clear()
            self.api.limits["used"] = 0
        self._clear_wire()

    # --- knobs and faults -----------------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Invalidate every session id issued so far: the next request answers 401 ``INVALID_SESSION_ID``."""
        self.sessions.expire()

    def set_api_limit(self, max_requests: int, used: int = 0) -> None:
        """The daily API allowance and how much of it is used; at ``used >= max_requests`` every data API
        request answers 403 ``REQUEST_LIMIT_EXCEEDED`` (logins still work, as on Salesforce)."""
        with self.org.lock:
            self.api.limits.update(max=max_requests, used=used)

    @property
    def api_usage(self) -> tuple[int, int]:
        """(used, max) of the daily API counter, as ``Sforce-Limit-Info: api-usage=used/max`` reports it."""
        return self.api.limits["used"], self.api.limits["max"]

    def set_query_batch_size(self, size: int) -> None:
        """Page SOQL results by at most ``size`` records (Salesforce: 2000, or ``batchSize`` 200-2000)."""
        if size < 1:
            raise ValueError("the batch size is at least 1")
        self.api.query_batch_size = size

    def bulk_progress(self, polls: int = 1, seconds: float = 0.0) -> None:
        """Bulk jobs stay ``InProgress`` for ``polls`` status reads and ``seconds`` after upload (default 1, 0)."""
        with self.org.lock:
            self.bulk.progress = BulkProgress(max(0, polls), max(0.0, seconds))

    def fail_next_bulk_job(self, message: str = "InternalServerError : Failed to process the job") -> None:
        """The next bulk job to finish processing ends ``Failed`` with ``errorMessage`` ``message``, nothing
        written (its rows are all in ``unprocessedrecords``)."""
        with self.org.lock:
            self.bulk.fail_next.append(message)

    # --- inspection of the org's state (no request) ---------------------------------------------------

    def describe(self, object_name: str) -> dict[str, Any]:
        """The describe document of an object, as ``GET /sobjects/{obj}/describe`` answers it."""
        return copy.deepcopy(self._object(object_name).describe(self.version))

    def now(self) -> datetime:
        return self.org.now()

