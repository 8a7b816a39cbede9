"""RecordingHTTPServer: a generic REST/webhook endpoint that records every call, for "call an API per row" tests.

Any method on any path is accepted and recorded (method, path, query, headers, JSON body or raw bytes, time);
by default it answers ``200 {"ok": true}``. On top of that, a prefix can behave as a keyed records API
(:mod:`~airflow_opsflow_testing.recording_store`) so a test checks the destination against the source::

    with RecordingHTTPServer() as api:
        api.keyed("/v1/customers", key_field="id", delete_path="/v1/customers/delete")
        api.reject_when(lambda r: r.get("email") == "bad", status=422, message="invalid email")
        requests.post(api.url + "/v1/customers", json=[{"id": 1, "email": "a@x"}, {"id": 2, "email": "b@x"}])
        assert sorted(api.state("/v1/customers")) == ["1", "2"]
        assert max(api.inserts("/v1/customers").values()) == 1          # nothing inserted twice

``Idempotency-Key`` works as Stripe's: the first request that executes is stored (status, body) and a repeat
with the same key is answered from the store without being applied (``Idempotent-Replayed: true``; recorded
with ``replay=True``); the same key with another method/path/body gets 400, and while the first is still running
409. Requests refused before executing (auth, rate limit, injected faults, :meth:`reject_when` rules) store
nothing, so a retry executes. Faults: :meth:`fail_next`, :meth:`rate_limit` (429 with ``Retry-After`` and
``X-RateLimit-Limit``/``-Remaining``/``-Reset``, the reset an epoch second as GitHub sends it),
:meth:`latency`, :meth:`drop_response_next` (applied, then closed unanswered) and :meth:`hang_next` (held, then
applied and answered: a client that timed out meanwhile never learns it was written).
"""

from __future__ import annotations

import base64
import copy
import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_opsflow_testing.local_http import JsonHandler, JsonReply, LocalHTTPService
from airflow_opsflow_testing.recording_store import KeyedCollection, RecordsError, records_of

__all__ = ["RecordedHTTPRequest", "RecordingHTTPServer"]

_WRITES = ("POST", "PUT", "PATCH")
_PENDING = object()  # an idempotency key whose first request is still executing


@dataclass(frozen=True)
class RecordedHTTPRequest:
    """One request as it arrived and what became of it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # parsed JSON; the raw bytes when not JSON (b"" when empty)
    at: float  # time.time() on arrival
    status: int | None  # None when the answer was dropped
    outcome: str  # "applied", "replayed", "rejected", "fault", "rate_limited", "unauthorized", "conflict"
    replay: bool = False  # answered from the Idempotency-Key store, not applied again


@dataclass
class _Fault:
    kind: str  # "fail" | "drop" | "hang"
    remaining: int
    path_prefix: str | None
    status: int = 503
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Rule:
    predicate: Callable[[Any], bool]
    status: int
    message: str
    path_prefix: str | None


class RecordingHTTPServer(LocalHTTPService):
    """A recording HTTP endpoint on ``http://127.0.0.1:<free port>``; a context manager, or ``start()``/``stop()``."""

    service_name = "recording-http"
    handler_class = JsonHandler

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._init_http(host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedHTTPRequest] = []
        self._collections: list[KeyedCollection] = []
        self._canned: list[tuple[str, JsonReply]] = []
        self._rules: list[_Rule] = []
        self._faults: list[_Fault] = []
        self._idempotent: dict[str, Any] = {}  # key -> _PENDING or (fingerprint, JsonReply)
        self._auth: tuple[str, str] | None = None
        self._limit: tuple[int, float] | None = None
        self._window: deque[float] = deque()
        self._latency = 0.0

    # --- behaviour --------------------------------------------------------------------------------------

    def keyed(self, path_prefix: str, key_field: str = "id", *, delete_path: str | None = None) -> None:
        """Serve ``path_prefix`` as a records API keyed by ``key_field`` (see :mod:`~.recording_store`)."""
        with self._lock:
            self._collections.append(KeyedCollection(path_prefix.rstrip("/"), key_field, delete_path))

    def respond(self, path_prefix: str, status: int = 200, body: Any = None,
                headers: Mapping[str, str] | None = None) -> None:
        """Answer requests under ``path_prefix`` (outside keyed prefixes) with ``status`` and ``body``."""
        with self._lock:
            self._canned.insert(0, (path_prefix, JsonReply(status, body, dict(headers or {}))))

    def reject_when(self, predicate: Callable[[Any], bool], status: int = 422, message: str = "record rejected",
                    *, path_prefix: str | None = None) -> None:
        """Refuse a whole write whose body holds any record matching ``predicate`` with ``status``.

        The answer does not say which record matched: a client must split the batch to isolate it.
        """
        with self._lock:
            self._rules.append(_Rule(predicate, status, message, path_prefix))

    def require_auth(self, header_value: str | None, header: str = "Authorization") -> None:
        """Answer 401 unless ``header`` equals ``header_value`` exactly (None: no check)."""
        with self._lock:
            self._auth = None if header_value is None else (header, header_value)

    @staticmethod
    def basic(login: str, password: str) -> str:
        """The ``Authorization`` value of HTTP Basic auth, as requests (and HttpHook) send it."""
        return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()

    def rate_limit(self, max_requests: int | None, per_seconds: float = 1.0) -> None:
        """Allow ``max_requests`` per rolling ``per_seconds``, then 429 with ``Retry-After`` (None: no limit)."""
        if max_requests is not None and (max_requests < 1 or per_seconds <= 0):
            raise ValueError("rate_limit needs max_requests >= 1 and per_seconds > 0")
        with self._lock:
            self._limit = None if max_requests is None else (max_requests, per_seconds)
            self._window.clear()

    def latency(self, seconds: float) -> None:
        """Hold every request ``seconds`` before handling it (0 turns it off)."""
        self._latency = max(0.0, seconds)

    def fail_next(self, n: int = 1, status: int = 503, retry_after: int | None = None,
                  headers: Mapping[str, str] | None = None, *, path_prefix: str | None = None) -> None:
        """Refuse the next ``n`` requests (under ``path_prefix``) with ``status``, unapplied."""
        self._add_fault(_Fault("fail", n, path_prefix, status, retry_after, dict(headers or {})))

    def drop_response_next(self, n: int = 1, *, path_prefix: str | None = None) -> None:
        """Apply the next ``n`` requests, then close the connection without answering."""
        self._add_fault(_Fault("drop", n, path_prefix))

    def hang_next(self, seconds: float, n: int = 1, *, path_prefix: str | None = None) -> None:
        """Hold the next ``n`` requests ``seconds`` (past a client's timeout), then apply and answer them."""
        self._add_fault(_Fault("hang", n, path_prefix, seconds=seconds))

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def http_connection(self, conn_id: str = "http_default", *, login: str | None = None,
                        password: str | None = None, headers: Mapping[str, str] | None = None,
                        timeout: float | None = None) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for an ``http`` connection (HttpHook) to this server.

        HttpHook builds ``<schema>://<host>:<port>``, sends login/password as Basic auth and takes the
        extra's keys as headers, except its own options (``timeout``, ``verify``...).
        """
        if self._server is None:
            raise RuntimeError("RecordingHTTPServer is not started")
        extra: dict[str, Any] = dict(headers or {})
        if timeout is not None:
            extra["timeout"] = timeout
        conn: dict[str, Any] = {"conn_type": "http", "host": self.host, "port": self.port, "schema": "http",
                                "login": login, "password": password, "extra": extra}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({k: v for k, v in conn.items() if v is not None})}

    # --- what happened --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedHTTPRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedHTTPRequest]:
        return [r for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method.upper())]

    def bodies(self, path_prefix: str = "/", method: str | None = None) -> list[Any]:
        """The bodies received (parsed JSON, or bytes), in arrival order."""
        return [r.body for r in self.requests_to(path_prefix, method)]

    def _collection(self, path_prefix: str) -> KeyedCollection:
        prefix = path_prefix.rstrip("/")
        found = next((c for c in self._collections if c.prefix == prefix), None)
        if found is None:
            raise ValueError(f"{path_prefix!r} is not keyed: call keyed() first")
        return found

    def state(self, path_prefix: str) -> dict[str, Any]:
        """The records under a keyed prefix, key -> record (copies)."""
        with self._lock:
            return copy.deepcopy(self._collection(path_prefix).records)

    def inserts(self, path_prefix: str) -> Counter[str]:
        """How often each key was inserted (first write, or again after a delete): > 1 is a duplicate insert."""
        with self._lock:
            return Counter(self._collection(path_prefix).inserts)

    def updates(self, path_prefix: str) -> Counter[str]:
        with self._lock:
            return Counter(self._collection(path_prefix).updates)

    def deletes(self, path_prefix: str) -> Counter[str]:
        with self._lock:
            return Counter(self._collection(path_prefix).deletes)

    def reset(self) -> None:
        """Forget requests, records, counters, idempotency keys, faults, rules and latency.

        Keyed prefixes, canned answers, auth and the rate limit setting stay.
        """
        with self._lock:
            self._requests.clear()
            for c in self._collections:
                c.clear()
            self._idempotent.clear()
            self._faults.clear()
            self._rules.clear()
            self._window.clear()
        self._latency = 0.0

    # --- request handling (called from the server's threads) --------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_prefix is None or path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _admit(self) -> tuple[JsonReply | None, dict[str, str]]:
        if self._limit is None:
            return None, {}
        limit, per = self._limit
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0] <= now - per:
                self._window.popleft()
            allowed = len(self._window) < limit
            if allowed:
                self._window.append(now)
            wait = self._window[0] + per - now if self._window else 0.0
            remaining = limit - len(self._window)
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(math.ceil(time.time() + wait))}
        if allowed:
            return None, headers
        return JsonReply(429, {"error": "rate limit exceeded"}, {"Retry-After": str(max(1, math.ceil(wait)))}), headers

    def _dispatch(self, verb: str, raw_path: str, headers: Message, raw: bytes) -> JsonReply | None:
        if self._latency:
            time.sleep(self._latency)
        arrived = time.time()
        split = urlsplit(raw_path)
        path, query = unquote(split.path), parse_qs(split.query, keep_blank_values=True)
        body: Any = raw
        if raw[:1] in (b"{", b"[") or headers.get_content_type() == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        key = headers.get("Idempotency-Key")
        replay, outcome, fault = False, "applied", None
        rate_headers: dict[str, str] = {}
        auth = self._auth
        limited = None
        if auth is None or headers.get(auth[0]) == auth[1]:
            limited, rate_headers = self._admit()  # refused callers spend no quota
        if auth is not None and headers.get(auth[0]) != auth[1]:
            scheme = auth[1].split(" ", 1)[0] if " " in auth[1] else "Bearer"
            reply, outcome = JsonReply(401, {"error": "unauthorized"}, {"WWW-Authenticate": scheme}), "unauthorized"
        elif limited is not None:
            reply, outcome = limited, "rate_limited"
        elif (fault := self._take_fault(path)) is not None and fault.kind == "fail":
            reply, outcome = _fault_reply(fault), "fault"
        else:
            reply, outcome, replay = self._execute(verb, path, body, raw, key, fault)
        reply.headers.update(rate_headers)
        dropped = fault is not None and fault.kind == "drop"
        kept = dict(headers.items())
        recorded = RecordedHTTPRequest(verb, path, query, kept, body, arrived, None if dropped else reply.status,
                                       outcome, replay)
        with self._lock:
            self._requests.append(recorded)
        return None if dropped else reply

    def _execute(self, verb: str, path: str, body: Any, raw: bytes, key: str | None,
                 fault: _Fault | None) -> tuple[JsonReply, str, bool]:
        fingerprint = (verb, path, raw)
        if key is not None:
            with self._lock:
                stored = self._idempotent.get(key)
                if stored is None:
                    self._idempotent[key] = _PENDING
            if stored is _PENDING:
                return JsonReply(409, {"error": "There is currently another in-progress request using this "
                                             "Idempotency-Key; try again later."}), "conflict", False
            if stored is not None:
                if stored[0] != fingerprint:
                    return JsonReply(400, {"error": "Keys for idempotent requests can only be used with the same "
                                                 "parameters they were first used with."}), "conflict", False
                first: JsonReply = stored[1]
                return JsonReply(first.status, first.body, {**first.headers, "Idempotent-Replayed": "true"}), \
                    "replayed", True
        rejected = self._rejected(verb, path, body)
        if rejected is not None:
            if key is not None:
                with self._lock:
                    del self._idempotent[key]  # refused before executing: a retry may execute
            return rejected, "rejected", False
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
        with self._lock:
            reply = self._apply(verb, path, body)
            if key is not None:
                self._idempotent[key] = (fingerprint, reply)
        return reply, "applied", False

    def _rejected(self, verb: str, path: str, body: Any) -> JsonReply | None:
        if verb not in _WRITES:
            return None
        records = records_of(body) or []
        with self._lock:
            rules = [r for r in self._rules if r.path_prefix is None or path.startswith(r.path_prefix)]
        for rule in rules:
            if any(_matches(rule.predicate, record) for record in records):
                return JsonReply(rule.status, {"error": rule.message})
        return None

    def _apply(self, verb: str, path: str, body: Any) -> JsonReply:
        """The answer of an executing request; the caller holds the lock."""
        collection = next((c for c in self._collections if c.owns(path)), None)
        if collection is not None:
            try:
                status, answer = collection.handle(verb, path, body)
            except RecordsError as e:
                return JsonReply(e.status, {"error": e.message})
            return JsonReply(status, answer)
        canned = next((r for prefix, r in self._canned if path.startswith(prefix)), None)
        if canned is not None:
            return JsonReply(canned.status, copy.deepcopy(canned.body), dict(canned.headers))
        return JsonReply(200, {"ok": True})


def _matches(predicate: Callable[[Any], bool], record: Any) -> bool:
    try:
        return bool(predicate(record))
    except Exception:  # a rule written for dicts meets a string, a missing key...: no match
        return False


def _fault_reply(fault: _Fault) -> JsonReply:
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Injected failure"
    return JsonReply(fault.status, {"error": phrase}, headers)
