"""The wire side of FakeSalesforce: TLS per connection, the request log, injected faults and request dispatch.

:class:`Wire` is mixed into :class:`~airflow_opsflow_testing.salesforce_server.FakeSalesforce`. A request goes:
fault (answered unprocessed, processed and its answer dropped, or processed and its answer cut off mid-body) → login
endpoints, or session check (401 ``INVALID_SESSION_ID``) → daily API counter (403 ``REQUEST_LIMIT_EXCEEDED``; each
data request counts and answers ``Sforce-Limit-Info: api-usage=used/max``) → the endpoint. Every request is recorded
without its credentials (login bodies are not kept).
"""

from __future__ import annotations

import io
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_opsflow_testing.local_http import LocalHandler, _Server
from airflow_opsflow_testing.salesforce_auth import LOGIN_PATH, Credentials, Sessions, login
from airflow_opsflow_testing.salesforce_endpoints import Call, DataApi, Reply
from airflow_opsflow_testing.salesforce_schema import NOT_FOUND, SalesforceError
from airflow_opsflow_testing.salesforce_store import SalesforceOrg

__all__ = ["LIMIT_EXCEEDED", "SESSION_EXPIRED", "RecordedRequest", "TlsHandler", "Wire"]

DATA_PREFIX = "/services/data/v"
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
_DEFAULT_FAULTS = {
    401: SESSION_EXPIRED, 403: LIMIT_EXCEEDED,
    500: [{"message": "An unexpected error occurred. Please include this ErrorId if you contact support: "
           "1234567890-12345 (-1234567890)", "errorCode": "UNKNOWN_EXCEPTION"}],
    503: [{"message": "Server is temporarily unavailable. Try again later.", "errorCode": "SERVER_UNAVAILABLE"}],
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived (without credentials) and how it was answered."""

    name: str  # the operation: "upsert", "query", "collection_upsert", "ingest_upload", "login", ...
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # parsed JSON, text (CSV, XML), or None
    status: int | None  # None when the answer was dropped
    error_code: str | None  # the first errorCode of an error answer
    at: float  # time.time() on arrival
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PATCH", "PUT", "DELETE") and self.name not in ("login", "oauth_token")


@dataclass
class _Fault:
    target: str | None  # operation name, path prefix ("/..."), or None: any request
    drop: bool
    remaining: int
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # processed, answered with its headers and half its body, then the connection closed


@dataclass
class _CutReply(Reply):
    """A reply whose connection drops halfway through its body (a reset while the client reads it)."""


class TlsHandler(LocalHandler):
    """TLS per connection (the handshake runs in the connection's thread), then the fake's reply."""

    def setup(self) -> None:
        assert isinstance(self.server, _Server)
        self._tls_failed = False
        try:
            self.request.settimeout(self.timeout)  # a client that never handshakes gives its thread back
            self.request = self.server.fake._tls.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust the CA, or plain HTTP
            self._tls_failed = True
            self.rfile, self.wfile = io.BytesIO(), io.BytesIO()
            return
        super().setup()

    def handle(self) -> None:
        if not self._tls_failed:
            super().handle()

    def do_GET(self) -> None:
        raw = self._read_body()
        assert isinstance(self.server, _Server)
        reply = self.server.fake._dispatch(self.command, self.path, self.headers, raw)
        if reply is None:
            self.close_connection = True  # processed, never answered: the client sees the connection drop
            return
        if reply.body is None:
            payload = b""
        elif isinstance(reply.body, str) and not reply.content_type.startswith("application/json"):
            payload = reply.body.encode()
        else:
            payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status != 204:
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if reply.status != 204:
                # a cut reply: Content-Length announces it all, the connection closes after half of it
                self.wfile.write(payload[:len(payload) // 2] if isinstance(reply, _CutReply) else payload)
            if isinstance(reply, _CutReply):
                self.wfile.flush()
                self.close_connection = True
        except OSError:
            self.close_connection = True

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


class Wire:
    """Request log, faults and dispatch; the fake provides the attributes below and calls :meth:`_init_wire`."""

    org: SalesforceOrg
    api: DataApi
    sessions: Sessions
    credentials: Credentials
    operations: list[str]

    if TYPE_CHECKING:
        @property
        def url(self) -> str: ...

    def _init_wire(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._latency = 0.0

    def _clear_wire(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()
        self._latency = 0.0

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        """A position in :attr:`requests`, for ``calls(since=...)``: what one run did."""
        with self._lock:
            return len(self._requests)

    def calls(self, name: str | None = None, *, method: str | None = None, path_prefix: str | None = None,
              since: int = 0) -> list[RecordedRequest]:
        """Recorded requests by operation name, HTTP method and/or path prefix, from ``since`` on."""
        return [r for r in self.requests[since:] if (name is None or r.name == name)
                and (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix))]

    def latency(self, seconds: float) -> None:
        """Hold every request ``seconds`` before handling it (0 turns it off)."""
        self._latency = max(0.0, seconds)

    def fail_next(self, status: int = 503, body: Any = None, *, target: str | None = None, times: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests (of ``target``: an operation name or a path prefix) with
        ``status`` and ``body`` without processing them. The default body is Salesforce's for the status
        (401 ``INVALID_SESSION_ID``, 403 ``REQUEST_LIMIT_EXCEEDED``, 500 ``UNKNOWN_EXCEPTION``, 503
        ``SERVER_UNAVAILABLE``)."""
        self._check_target(target)
        with self._lock:
            self._faults.append(_Fault(target, False, times, status, body, dict(headers or {})))

    def drop_response_next(self, target: str | None = None, times: int = 1) -> None:
        """Process the next ``times`` requests (of ``target``), then close the connection without answering."""
        self._check_target(target)
        with self._lock:
            self._faults.append(_Fault(target, True, times))

    def cut_response_next(self, target: str | None = None, times: int = 1) -> None:
        """Process the next ``times`` requests (of ``target``) and send the status, the headers (with the whole
        ``Content-Length``) and half the body, then close the connection: a connection dropped while the client
        reads the body (``requests`` raises ``ChunkedEncodingError``)."""
        self._check_target(target)
        with self._lock:
            self._faults.append(_Fault(target, False, times, cut=True))

    def _check_target(self, target: str | None) -> None:
        if target is not None and not target.startswith("/") and target not in self.operations:
            raise ValueError(f"unknown operation {target!r}: one of {sorted(self.operations)}, or a path prefix")

    def _take_fault(self, name: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.target is None or fault.target == name or (
                        fault.target.startswith("/") and path.startswith(fault.target)):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- request handling (the server's threads) ------------------------------------------------------

    def _dispatch(self, verb: str, raw_path: str, headers: Message, raw: bytes) -> Reply | None:
        if self._latency:
            time.sleep(self._latency)
        arrived = time.time()
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body = _parse_body(raw, headers)
        name, reply, fault = self._answer(verb, split.path, path, query, body, raw, headers)
        dropped = fault is not None and fault.drop
        error = None
        if reply.status >= 300 and isinstance(reply.body, list) and reply.body and isinstance(reply.body[0], dict):
            error = reply.body[0].get("errorCode")
        kept = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}
        recorded = RecordedRequest(name, verb, path, query, _loggable(body, name), None if dropped else reply.status,
                                   error, arrived, kept)
        with self._lock:
            self._requests.append(recorded)
        if fault is not None and fault.cut:
            return _CutReply(reply.status, reply.body, reply.headers, reply.content_type)
        return None if dropped else reply

    def _answer(self, verb: str, raw_path: str, path: str, query: dict[str, list[str]], body: Any, raw: bytes,
                headers: Message) -> tuple[str, Reply, _Fault | None]:
        """(operation name, reply, the fault taken): faults first, then login or session, limit, handler."""
        is_login = LOGIN_PATH.match(path) is not None
        version, _, rest = raw_path.removeprefix(DATA_PREFIX).partition("/")
        segments = [unquote(s) for s in ("/" + rest.rstrip("/") if rest.rstrip("/") else "").split("/")]
        data = path.startswith(DATA_PREFIX) and _is_version(version)
        name, match, handler = self.api.route(verb, "/".join(segments)) if data else ("unknown", None, None)
        if is_login:
            name = "oauth_token" if "/oauth2/" in path.lower() else "login"
        fault = self._take_fault(name, path)
        if fault is not None and not fault.drop and not fault.cut:
            return name, _fault_reply(fault), fault
        if is_login:
            reply = login(path, raw, headers, self.credentials, self.sessions, self.url, self.org.user_id)
            if verb != "POST" or reply is None:
                reply = Reply(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                     "message": f"HTTP Method '{verb}' not allowed. Allowed are POST"}])
            return name, reply, fault
        if not data:
            return name, Reply(404, [{"errorCode": "NOT_FOUND", "message": NOT_FOUND}]), fault
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not self.sessions.valid(token.strip()):
            return name, Reply(401, SESSION_EXPIRED), fault
        with self.org.lock:
            limits = self.api.limits
            if limits["used"] >= limits["max"]:
                return name, Reply(403, LIMIT_EXCEEDED, _usage(limits)), fault
            limits["used"] += 1
            usage = _usage(limits)
            if handler is None or match is None:
                if name == "unknown":
                    return name, Reply(404, [{"errorCode": "NOT_FOUND", "message": NOT_FOUND}], usage), fault
                allowed = ",".join(sorted({v for v, p, _, _ in self.api.routes if p.match("/".join(segments))}))
                return name, Reply(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": f"HTTP Method '{verb}' "
                                          f"not allowed. Allowed are {allowed}"}], usage), fault
            try:
                reply = handler(Call(match, query, body, raw, headers, version))
            except SalesforceError as e:
                reply = Reply(e.status, e.body())
        reply.headers.update(usage)
        return name, reply, fault

def _is_version(text: str) -> bool:
    major, dot, minor = text.partition(".")
    return bool(dot) and major.isdigit() and minor.isdigit()


def _usage(limits: dict[str, int]) -> dict[str, str]:
    return {"Sforce-Limit-Info": f"api-usage={limits['used']}/{limits['max']}"}


def _parse_body(raw: bytes, headers: Message) -> Any:
    if not raw:
        return None
    kind = headers.get("Content-Type", "")
    if "json" in kind or raw[:1] in (b"{", b"["):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", "replace")


def _loggable(body: Any, name: str) -> Any:
    if name in ("login", "oauth_token"):
        return None  # credentials stay out of the log
    return body


def _fault_reply(fault: _Fault) -> Reply:
    body = fault.body if fault.body is not None else _DEFAULT_FAULTS.get(fault.status)
    if body is None:
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Injected failure"
        body = [{"message": phrase, "errorCode": "UNKNOWN_EXCEPTION"}]
    content_type = "application/json;charset=UTF-8" if not isinstance(body, str) else "text/plain"
    return Reply(fault.status, body, dict(fault.headers), content_type)
