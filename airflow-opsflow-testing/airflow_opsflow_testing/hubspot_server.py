"""FakeHubSpot: a local HubSpot CRM API (objects, tickets, associations, search; private-app token, limits) for tests.

The official ``hubspot-api-client`` works against it unchanged (``fake.client()`` is one with ``host`` set), and
so does anything built on the ``opsflow_hubspot`` connection ``fake.hubspot_connection()`` describes::

    with FakeHubSpot(rate_limit=10, rate_window=1.0) as hubspot:
        hubspot.define_property("contacts", "external_id", "string", unique=True)
        api = hubspot.client()
        api.crm.objects.batch_api.upsert("contacts", {"inputs": [
            {"idProperty": "external_id", "id": "C-1", "properties": {"email": "ann@example.com"}}]})
        assert hubspot.object_by("contacts", "external_id", "C-1").properties["email"] == "ann@example.com"
        assert len(hubspot.creates("contacts")) == 1

Served under ``/crm/v3/objects/{type}`` (and the dated ``/crm/objects/2026-03/{type}``): list (``limit``/
``after``/``properties``/``associations``), create (with ``associations``), get/PATCH/DELETE one
(``?idProperty=``), ``batch/{create,read,update,upsert,archive}`` (at most 100 inputs, duplicate ids refused
with 400; creates answer 201) and ``search`` (:mod:`~.hubspot_search`: filters, sorts, paging, lag, its own
rate limit). ``type`` is contacts/companies/deals/tickets/notes, their ids 0-1/0-2/0-3/0-5/0-46, or a type
added with :meth:`FakeHubSpot.define_object_type`; properties are typed and validated (:mod:`~.hubspot_schema`),
batch errors reported as :mod:`~.hubspot_store` describes. Also served: ticket pipelines
(:mod:`~.hubspot_pipelines`), the properties API (:mod:`~.hubspot_properties`) and associations v4
(:mod:`~.hubspot_associations`); every endpoint's name is listed in :mod:`~.hubspot_routes`. Tickets::

    hubspot.define_pipeline("9", "Escalations", [("91", "Triage", "OPEN"), ("92", "Done", "CLOSED")])
    hubspot.search_lag(2.0)  # searches miss a ticket for two seconds after its create
    ticket = api.crm.tickets.basic_api.create({"properties": {"subject": "Disk full", "hs_pipeline": "9",
                                                              "hs_pipeline_stage": "91"}})
    api.crm.objects.notes.basic_api.create({"properties": {"hs_note_body": "seen again",
                                                           "hs_timestamp": "2024-05-01T12:00:00Z"},
        "associations": [{"to": {"id": ticket.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                               "associationTypeId": 228}]}]})
    assert [n.properties["hs_note_body"] for n in hubspot.associated("tickets", ticket.id, "notes")] == [...]

Wire details and where they come from: the 401 body (``INVALID_AUTHENTICATION``), the 429 body
(``You have reached your ten_secondly_rolling limit.``, ``errorType`` RATE_LIMIT, ``policyName``
TEN_SECONDLY_ROLLING), the ``X-HubSpot-RateLimit-*`` headers and the 190 requests per 10 s of a private app are
HubSpot's documented or observed answers (developer docs, changelog, client issue reports); so are the 207
shapes (``numErrors``, per-input ``{status, category, message, context}``), ``OBJECT_NOT_FOUND`` "Could not get
some CONTACT objects...", "Duplicate IDs found in batch input: [..]. IDs must be unique" and the
``Property values were not valid: [...]`` message. HubSpot documents no ``Retry-After`` on its burst 429s (clients
back off by ``X-HubSpot-RateLimit-Interval-Milliseconds``), so none is sent unless ``retry_after=True`` or a
:meth:`FakeHubSpot.fail_next` asks for one. Faults: :meth:`FakeHubSpot.fail_next`,
:meth:`FakeHubSpot.drop_response_next` (written, then the connection closes unanswered) and
:meth:`FakeHubSpot.latency`.
"""

from __future__ import annotations

import copy
import hmac
import json
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_opsflow_testing.hubspot_associations import TYPES as ASSOCIATION_TYPES
from airflow_opsflow_testing.hubspot_associations import Associations
from airflow_opsflow_testing.hubspot_routes import Call, Handler, route
from airflow_opsflow_testing.hubspot_schema import HubSpotError, JsonDict, ObjectType, validation_error
from airflow_opsflow_testing.hubspot_search import RateWindow, retry_after, secondly_limited
from airflow_opsflow_testing.hubspot_store import HubSpotCrm, HubSpotObject, WriteRecord
from airflow_opsflow_testing.local_http import JsonHandler, JsonReply, LocalHTTPService

if TYPE_CHECKING:
    from hubspot import Client

__all__ = ["DEFAULT_TOKEN", "FakeHubSpot", "HubSpotObject", "RecordedRequest", "WriteRecord"]

DEFAULT_TOKEN = "pat-na1-0f5b7c2e-opsflow-fake-private-app"
APP_ID = 3141592
AUTH_MISSING = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived (without Authorization) and how it was answered."""

    endpoint: str  # "batch/upsert", "get", "list", "create", "update", "archive", or "unknown"
    object_type: str | None
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, raw bytes if not JSON, None if empty
    status: int | None  # None when the answer was dropped
    at: float  # time.time() on arrival
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    drop: bool
    remaining: int
    endpoint: str | None
    status: int = 503
    retry_after: int | None = None


class _Handler(JsonHandler):
    content_type = "application/json;charset=utf-8"


class FakeHubSpot(LocalHTTPService):
    """A fake HubSpot account on ``http://127.0.0.1:<free port>``; a context manager, or ``start()``/``stop()``.

    :param token: the private app token accepted as ``Authorization: Bearer <token>``.
    :param rate_limit: requests allowed per ``rate_window`` seconds, rolling (HubSpot: 190 per 10 s for a
        private app of a Professional/Enterprise account); small values make 429 storms quick to reach.
    :param daily_limit: requests per day before ``policyName: DAILY`` 429s.
    :param retry_after: send ``Retry-After`` (seconds until the window frees a slot) on rate-limit 429s.
    :param search_rate_limit: search requests allowed per second (HubSpot: five per account), then 429 SECONDLY.
    :param search_lag: seconds before a write shows in search results (HubSpot's index is eventually consistent).
    """

    service_name = "fake-hubspot"
    handler_class = _Handler

    def __init__(self, token: str = DEFAULT_TOKEN, *, rate_limit: int = 190, rate_window: float = 10.0,
                 daily_limit: int = 1_000_000, retry_after: bool = False, search_rate_limit: int = 5,
                 search_lag: float = 0.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self._init_http(host, port)
        self.crm = HubSpotCrm()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._latency = 0.0
        self._window: deque[float] = deque()
        self._daily = 0
        self.retry_after = retry_after
        self.set_rate_limit(rate_limit, rate_window, daily_limit)
        self._search_window = RateWindow(search_rate_limit, 1.0)
        self.search_lag(search_lag)

    # --- configuration and Airflow wiring -------------------------------------------------------------

    def set_rate_limit(self, max_requests: int, window_seconds: float = 10.0, daily_limit: int | None = None) -> None:
        """At most ``max_requests`` per rolling ``window_seconds`` (and ``daily_limit`` in all), then 429."""
        if max_requests < 1 or window_seconds <= 0:
            raise ValueError("the rate limit needs max_requests >= 1 and window_seconds > 0")
        with self._lock:
            self.rate_limit, self.rate_window = max_requests, window_seconds
            if daily_limit is not None:
                self.daily_limit = daily_limit
            self._window.clear()

    def set_search_rate_limit(self, max_requests: int = 5, window_seconds: float = 1.0) -> None:
        """At most ``max_requests`` searches per rolling ``window_seconds``, then 429 ``SECONDLY``."""
        if max_requests < 1 or window_seconds <= 0:
            raise ValueError("the search rate limit needs max_requests >= 1 and window_seconds > 0")
        with self._lock:
            self._search_window = RateWindow(max_requests, window_seconds)

    def search_lag(self, seconds: float) -> None:
        """Writes from now on show in search only ``seconds`` after they happen (0: at once)."""
        with self.crm.lock:
            self.crm.search_index.lag = max(0.0, seconds)

    def flush_search_index(self) -> None:
        """Let search see every record as it is now, whatever the lag."""
        with self.crm.lock:
            self.crm.search_index.flush()

    def define_pipeline(self, pipeline_id: str | None, label: str, stages: Iterable[tuple[str | None, str, str]],
                        object_type: str = "tickets", display_order: int | None = None) -> str:
        """Add (or replace) a ticket pipeline; ``stages`` are ``(id or None, label, "OPEN"|"CLOSED")``; its id."""
        with self.crm.lock:
            return self.crm.pipelines.define(self._type(object_type).name, pipeline_id, label, stages,
                                             display_order).id

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int | None = None) -> None:
        """Associate two existing records (the pair's unlabeled type unless ``type_id``), as HubSpot would."""
        a, b = self._type(from_type), self._type(to_type)
        with self.crm.lock:
            if self.crm.find(a, from_id) is None or self.crm.find(b, to_id) is None:
                raise ValueError(f"no live {a.name} {from_id} or {b.name} {to_id}")
            try:
                kind = (Associations.unlabeled(a.name, b.name) if type_id is None
                        else Associations.kind(type_id, a.name, b.name))
            except HubSpotError as e:
                raise ValueError(e.message) from None
            self.crm.associations.add(kind, from_id, to_id)

    def associations(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        """The live ``to_type`` records associated with a record: ``{id: {association type ids}}``, id order."""
        a, b = self._type(from_type), self._type(to_type)
        with self.crm.lock:
            return self.crm.associations.of(self.crm, a.name, from_id, b.name)

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[HubSpotObject]:
        """The live ``to_type`` records associated with a record (a ticket's notes...), in id order; copies."""
        b = self._type(to_type)
        with self.crm.lock:
            return [copy.deepcopy(self.crm.objects[b.name][i]) for i in self.associations(from_type, from_id, to_type)]

    @staticmethod
    def association_label(type_id: int) -> str | None:
        """The label of a HubSpot-defined association type ("Primary"), None for unlabeled ones."""
        return ASSOCIATION_TYPES[type_id].label

    def define_object_type(self, name: str, type_id: str | None = None) -> None:
        """Add a custom object type (id ``2-<n>`` unless given) with only HubSpot's system properties."""
        self.crm.define_type(name, type_id)

    def define_property(self, object_type: str, name: str, type: str = "string", unique: bool = False,
                        options: Iterable[str] | None = None) -> None:
        """Define (or redefine) a property; a ``unique`` one may serve as ``idProperty``, as on HubSpot."""
        with self.crm.lock:
            t = self._type(object_type)
            t.define(name, type, unique=unique, options=options, hubspot_defined=False)
            self.crm.reindex(t)  # records written before the property became unique

    def latency(self, seconds: float) -> None:
        """Hold every request ``seconds`` before handling it (0 turns it off)."""
        self._latency = max(0.0, seconds)

    def hubspot_connection(self, conn_id: str = "hubspot_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for an ``opsflow_hubspot`` connection: host = base URL, password = token."""
        conn = {"conn_type": "opsflow_hubspot", "host": self.url, "password": self.token}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def client(self, **kwargs: Any) -> Client:
        """A ``hubspot.Client`` for this account (``retry=urllib3.Retry(...)`` and the like pass through)."""
        from hubspot import Client

        return Client.create(access_token=self.token, host=self.url, **kwargs)

    def _type(self, name: str) -> ObjectType:
        try:
            return self.crm.resolve(name)
        except HubSpotError:
            raise ValueError(f"no object type {name!r}: one of {sorted(self.crm.types)}") from None

    # --- what happened --------------------------------------------------------------------------------

    def objects(self, object_type: str, *, archived: bool = False) -> list[HubSpotObject]:
        """The records of a type (archived ones with ``archived=True``), in creation order; copies."""
        t = self._type(object_type)
        with self.crm.lock:
            return [copy.deepcopy(o) for o in self.crm.objects[t.name].values() if o.archived == archived]

    def object_by(self, object_type: str, prop: str, value: str) -> HubSpotObject | None:
        """The live record whose ``prop`` equals ``value`` (contact emails compare case-insensitively)."""
        t = self._type(object_type)
        fold = (t.name, prop) == ("contacts", "email")
        wanted = value.lower() if fold else value
        with self.crm.lock:
            for obj in self.crm.objects[t.name].values():
                have = obj.id if prop == "hs_object_id" else obj.properties.get(prop)
                if not obj.archived and have is not None and (have.lower() if fold else have) == wanted:
                    return copy.deepcopy(obj)
        return None

    def writes(self, object_type: str | None = None) -> list[WriteRecord]:
        """Every applied create/update/archive, in order."""
        name = None if object_type is None else self._type(object_type).name
        with self.crm.lock:
            return [w for w in self.crm.writes if name is None or w.object_type == name]

    def creates(self, object_type: str) -> list[WriteRecord]:
        """The records created, in order: a re-sent upsert that created twice shows here twice."""
        return [w for w in self.writes(object_type) if w.op == "create"]

    def create_counts(self, object_type: str, prop: str) -> Counter[str]:
        """How many records were created per value of ``prop`` (``max(...) == 1``: no duplicate create)."""
        return Counter(str(w.properties.get(prop)) for w in self.creates(object_type))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def calls(self, endpoint: str | None = None, object_type: str | None = None) -> list[RecordedRequest]:
        """Recorded requests of one endpoint ("batch/upsert", "get"...) and/or object type."""
        return [r for r in self.requests if (endpoint is None or r.endpoint == endpoint)
                and (object_type is None or r.object_type == object_type)]

    def reset(self) -> None:
        """Forget records, associations, the search index, writes, requests, faults, latency and the rate windows
        (types, properties, pipelines, the search lag and the limits stay)."""
        self.crm.reset()
        self._latency = 0.0
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._window.clear()
            self._search_window = RateWindow(self._search_window.limit, self._search_window.window)
            self._daily = 0

    # --- faults ---------------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, retry_after: int | None = None, *,
                  endpoint: str | None = None) -> None:
        """Refuse the next ``n`` requests (of ``endpoint`` if given) with ``status``, unprocessed.

        A 429 carries HubSpot's rate-limit body; ``Retry-After: retry_after`` is sent unless None.
        """
        with self._lock:
            self._faults.append(_Fault(False, n, endpoint, status, retry_after))

    def drop_response_next(self, n: int = 1, *, endpoint: str | None = None) -> None:
        """Process the next ``n`` requests (the write happens), then close the connection without answering."""
        with self._lock:
            self._faults.append(_Fault(True, n, endpoint))

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (None, endpoint):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- request handling (called from the server's threads) --------------------------------------------

    def _admit(self) -> tuple[JsonReply | None, dict[str, str]]:
        """Count the request against the rolling window and the day: a 429 when over, and the headers."""
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0] <= now - self.rate_window:
                self._window.popleft()
            policy = "DAILY" if self._daily >= self.daily_limit else (
                "TEN_SECONDLY_ROLLING" if len(self._window) >= self.rate_limit else None)
            if policy is None:
                self._window.append(now)
                self._daily += 1
            wait = self._window[0] + self.rate_window - now if self._window else 0.0
            headers = {"X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                       "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily)),
                       "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.rate_window * 1000)),
                       "X-HubSpot-RateLimit-Max": str(self.rate_limit),
                       "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_limit - len(self._window)))}
        if policy is None:
            return None, headers
        retry = {"Retry-After": str(max(1, math.ceil(wait)))} if self.retry_after and policy != "DAILY" else {}
        return JsonReply(429, _rate_limited(policy), retry), headers

    def _admit_search(self) -> JsonReply | None:
        """The search endpoints' own limit: a 429 ``SECONDLY`` when over."""
        with self._lock:
            wait = self._search_window.admit()
        if wait is None:
            return None
        return JsonReply(429, secondly_limited(), {"Retry-After": retry_after(wait)} if self.retry_after else {})

    def _dispatch(self, verb: str, raw_path: str, headers: Message, raw: bytes) -> JsonReply | None:
        if self._latency:
            time.sleep(self._latency)
        arrived = time.time()
        split = urlsplit(raw_path)
        path, query = unquote(split.path), parse_qs(split.query, keep_blank_values=True)
        endpoint, type_name, handler, parts = route(verb, path)
        body: Any = None
        bad_json: ValueError | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                body, bad_json = raw, e
        fault: _Fault | None = None
        rate_headers: dict[str, str] = {}
        auth = headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), self.token.encode()):
            reply: JsonReply = _error(HubSpotError(401, "INVALID_AUTHENTICATION", AUTH_MISSING))
        else:
            limited, rate_headers = self._admit()
            if limited is None and endpoint == "search":
                limited = self._admit_search()
            fault = self._take_fault(endpoint) if limited is None else None
            if limited is not None:
                reply = limited
            elif fault is not None and not fault.drop:
                reply = _fault_reply(fault)
            elif bad_json is not None:
                reply = _error(_json_error(bad_json))
            elif handler is None:
                reply = _error(HubSpotError(404 if endpoint == "unknown" else 405, "OBJECT_NOT_FOUND"
                                            if endpoint == "unknown" else "VALIDATION_ERROR",
                                            f"Unable to route {verb} {path}"))
            else:
                reply = self._call(handler, Call(parts, query, body))
        reply.headers.update(rate_headers)
        reply.headers.setdefault("X-HubSpot-Correlation-Id", str(uuid.uuid4()))
        dropped = fault is not None and fault.drop
        kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        recorded = RecordedRequest(endpoint, type_name, verb, path, query, body, None if dropped else reply.status,
                                   arrived, kept)
        with self._lock:
            self._requests.append(recorded)
        return None if dropped else reply

    def _call(self, handler: Handler, call: Call) -> JsonReply:
        try:
            with self.crm.lock:
                status, answer = handler(self.crm, call)
        except HubSpotError as e:
            return _error(e)
        return JsonReply(status, answer)


def _error(e: HubSpotError) -> JsonReply:
    return JsonReply(e.status, e.body())


def _json_error(e: ValueError) -> HubSpotError:
    where = f" on line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
    msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
    return validation_error(f"Invalid input JSON{where}: {msg}")


def _rate_limited(policy: str) -> JsonDict:
    limit = "ten_secondly_rolling" if policy == "TEN_SECONDLY_ROLLING" else "daily"
    return {"status": "error", "message": f"You have reached your {limit} limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy,
            "groupName": f"publicapi:private_app-api-calls-{limit.replace('_', '-')}:{APP_ID}"}


def _fault_reply(fault: _Fault) -> JsonReply:
    headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.status == 429:
        return JsonReply(429, _rate_limited("TEN_SECONDLY_ROLLING"), headers)
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Injected failure"
    return JsonReply(fault.status, {"status": "error", "message": phrase, "correlationId": str(uuid.uuid4())}, headers)
