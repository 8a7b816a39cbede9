"""Salesforce's REST API for the sync destination: one session, logged in lazily and again when it expires,
over the destinations' pooled HTTP transport, with Salesforce's error answers classified for the engine.

``HttpTransport`` (pycurl) rather than ``requests``/simple-salesforce: the sync's senders share its pooled
keep-alive connections and GIL-free requests (what the other destinations measured); Salesforce's specifics
(the session header, its error codes) are this thin layer. The session id and instance URL come from a
``login`` callable (the shell's, through Airflow's ``SalesforceHook``), called on the first request only, so a
run with nothing to send makes no request at all.

* 401 ``INVALID_SESSION_ID``: log in again (once per expiry, whichever thread noticed it first) and repeat the
  request; refused again right after a fresh login: the run stops.
* 403 ``REQUEST_LIMIT_EXCEEDED``: the org's rolling 24-hour API allowance ("TotalRequests Limit exceeded")
  stops the run (nothing can succeed before it recovers; what was confirmed is kept); the limit on concurrent
  long-running requests is a rate limit (wait, then try again). Any other 403 (permissions) stops the run.
* 404 (no such object, field or job): the run stops. 5xx, timeouts, resets: transient (the engine retries).
  Other 4xx: the request was refused as a whole (the engine splits the batch).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationFailed, TransientError
from airflow_opsflow.sync.destinations.transport import TRANSIENT, Answer, HttpTarget, HttpTransport
from airflow_opsflow.sync.ratelimit import RateLimiter

DATA_PATH = re.compile(r"^/?services/data/v[0-9.]+/")  # the prefix of nextRecordsUrl and the like


@dataclass(frozen=True)
class Login:
    """What a login gives: the session id (access token), the instance and the API version.

    :param session_id: sent as ``Authorization: Bearer``.
    :param instance_url: ``https://host[:port]`` of the org.
    :param version: the REST API version (``59.0``).
    :param verify: TLS verification as the login's own client did it (True, False or a CA bundle path).
    """

    session_id: str
    instance_url: str
    version: str
    verify: bool | str = True


class SessionExpired(DestinationFailed):
    """401 ``INVALID_SESSION_ID`` (unhandled, it stops the run: no request can succeed without a session)."""


class _Transport(HttpTransport):
    """The destinations' transport with Salesforce's error answers."""

    def check(self, method: str, path: str, a: Answer) -> Answer:
        if 200 <= a.status < 300:
            return a
        text = errors_text(a)
        where = f"{self.what}: {method} {_path_only(path)} answered HTTP {a.status}: {text}"
        if a.status == 401:
            raise SessionExpired(where)
        if "REQUEST_LIMIT_EXCEEDED" in text:
            if "concurrent" in text.lower():  # long-running requests in flight: a rate limit, not the day's budget
                raise TransientError(where, rate_limited=True)
            usage = a.headers.get("Sforce-Limit-Info")
            raise DestinationFailed(f"{self.what}: the org's API request limit is used up ({text}"
                                    f"{'; ' + usage if usage else ''}). Check that other integrations leave it "
                                    "room; what Salesforce confirmed is kept and the rest is sent by a later run")
        if a.status == 403:
            raise DestinationFailed(f"{where}. Check that the connection's user has API access and may edit "
                                    "this object")
        if a.status == 404:
            raise DestinationFailed(where)
        if a.status == 429 or a.status in TRANSIENT:
            return super().check(method, path, a)
        raise BatchRejected(f"HTTP {a.status}: {text}", a.status)


class SalesforceApi:
    """Thread-safe requests to one org's REST API (paths below ``/services/data/vNN.N/``).

    :param login: logs in and returns a :class:`Login` (called lazily, and again when the session expires).
    :param max_connections: pooled keep-alive connections (the sync's concurrency).
    :param limiter: the request budget shared by every sender.
    :param what: names the destination in errors.
    :param timeout: seconds per request (a Collections request of 200 records may run triggers and flows).
    """

    def __init__(self, login: Callable[[], Login], max_connections: int = 4, limiter: RateLimiter | None = None,
                 what: str = "Salesforce", timeout: float = 120.0) -> None:
        self._login = login
        self.max_connections = max_connections
        self.limiter = limiter or RateLimiter()
        self.what = what
        self.timeout = timeout
        self.logins = 0
        self._lock = threading.Lock()
        self._session: tuple[_Transport, str, int] | None = None  # transport, session id, generation
        # A refused login is not tried again by the other senders: Salesforce locks a user out after a few
        self._refused: DestinationFailed | None = None
        self._closed = False

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: Mapping[str, str] | None = None, once: bool = False) -> Answer:
        """One request; 401 logs in again and repeats it once. ``once``: never re-sent by libcurl (job creates)."""
        transport, token, generation = self._current()
        try:
            return transport.request(method, path, body, {"Authorization": f"Bearer {token}", **(headers or {})},
                                     raw=raw, once=once)
        except SessionExpired:
            transport, token, _ = self._renew(generation)
        try:
            return transport.request(method, path, body, {"Authorization": f"Bearer {token}", **(headers or {})},
                                     raw=raw, once=once)
        except SessionExpired as e:
            raise DestinationFailed(f"{e} (right after logging in again). Check that the connection's user may "
                                    "use the API") from None

    def get(self, path: str, accept: str = "application/json") -> Answer:
        return self.request("GET", path, headers={"Accept": accept} if accept != "application/json" else None)

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record a SOQL query returns (following ``nextRecordsUrl``)."""
        answer = self.get("query?q=" + quote(soql, safe=""))
        records: list[dict[str, Any]] = []
        while True:
            page = answer.json() or {}
            records.extend(page.get("records") or [])
            following = page.get("nextRecordsUrl")
            if page.get("done", True) or not following:
                return records
            answer = self.get(DATA_PATH.sub("", str(following)))

    def _current(self) -> tuple[_Transport, str, int]:
        with self._lock:
            if self._session is None:
                self._session = self._log_in(None)
            return self._session

    def _renew(self, generation: int) -> tuple[_Transport, str, int]:
        with self._lock:
            if self._session is not None and self._session[2] != generation:
                return self._session  # another thread logged in again meanwhile
            self._session = self._log_in(self._session)
            return self._session

    def _log_in(self, old: tuple[_Transport, str, int] | None) -> tuple[_Transport, str, int]:
        if self._closed:
            raise TransientError(f"{self.what}: the connection is closed")
        if self._refused is not None:
            raise self._refused
        try:
            login = self._login()
        except OSError as e:  # requests' connection errors and timeouts are OSErrors
            raise TransientError(f"{self.what}: logging in failed: {type(e).__name__}: {_first(e)}") from None
        except Exception as e:
            self._refused = DestinationFailed(
                f"{self.what}: logging in failed: {type(e).__name__}: {_first(e)}. Check the connection's username, "
                "password and security token (or consumer key and secret) and its domain")
            raise self._refused from None
        self.logins += 1
        base = f"{login.instance_url.rstrip('/')}/services/data/v{login.version}"
        if old is not None and old[0].target.base_url == base and old[0].target.verify == login.verify:
            transport = old[0]
        else:
            if old is not None:
                old[0].close()
            transport = _Transport(HttpTarget(base, timeout=self.timeout, verify=login.verify),
                                   self.max_connections, self.limiter, what=self.what)
        return transport, login.session_id, (old[2] + 1 if old else 1)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._session is not None:
                self._session[0].close()


def errors_text(a: Answer) -> str:
    """Salesforce's error answer as ``CODE: message`` (its JSON list, an OAuth error, or the text)."""
    try:
        body = a.json()
    except ValueError:
        return a.snippet()
    if isinstance(body, list):
        parts = [f"{e.get('errorCode') or e.get('statusCode') or 'ERROR'}: {e.get('message', '')}".rstrip(": ")
                 for e in body if isinstance(e, dict)]
        return "; ".join(parts) or a.snippet()
    if isinstance(body, dict) and (body.get("error") or body.get("errorCode")):
        return f"{body.get('error') or body.get('errorCode')}: {body.get('error_description') or body.get('message')}"
    return a.snippet()


def record_errors(errors: Any) -> str:
    """A per-record result's ``errors`` as ``CODE: message (fields)``."""
    parts = []
    for e in errors or []:
        if isinstance(e, dict):
            fields = e.get("fields") or []
            parts.append(f"{e.get('statusCode') or e.get('errorCode') or 'ERROR'}: {e.get('message', '')}"
                         + (f" (fields {', '.join(map(str, fields))})" if fields else ""))
    return "; ".join(parts) or "rejected"


def soql_literal(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _path_only(path: str) -> str:
    return path if len(path) <= 120 else path[:117] + "..."


def _first(e: BaseException) -> str:
    return str(e).splitlines()[0][:300] if str(e) else ""
