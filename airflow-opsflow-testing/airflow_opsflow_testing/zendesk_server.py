"""FakeZendesk: a local Zendesk Support API v2 (tickets, search, organizations, users, jobs, exports) for tests.

How the real clients reach it. zenpy builds every URL as ``{protocol}://{subdomain}.{domain}/api/v2/...``
with ``protocol = "https"`` on each of its API objects, unless the environment variables
``ZENPY_FORCE_SCHEME`` / ``ZENPY_FORCE_NETLOC`` override them (zenpy's ``BaseApi._build_url``). So:

* :meth:`FakeZendesk.client` returns a ``zenpy.Zenpy`` whose subdomain and domain join into ``127.0.0.1:<port>``
  and whose API objects use ``http``; its ``requests`` session mounts zenpy's own retrying adapter (3 retries
  of connection errors and 503/413, never 429) on ``http://`` as zenpy does on ``https://``, so it behaves as in
  production. No environment variable is needed::

      with FakeZendesk() as zendesk:
          zd = zendesk.client()                                   # email/token auth; "password", "oauth"
          audit = zd.tickets.create(Ticket(subject="payments: 3 checks failed", external_id="opsflow:abc",
                                           comment=Comment(body="details"), tags=["opsflow"]))
          assert zendesk.ticket(audit.ticket.id).tags == ["opsflow"]

* Airflow's ``ZendeskHook(zendesk_conn_id=...)`` (conn type ``zendesk``) splits the connection host into
  subdomain and domain and builds its own ``Zenpy``: :meth:`FakeZendesk.zendesk_connection` gives the
  connection (host ``127.0.0.1:<port>``, which the hook's split joins back) *and* ``ZENPY_FORCE_SCHEME=http``;
  set both (the ``zendesk_conn`` fixture does). One difference remains: the hook's session mounts zenpy's
  retrying adapter on ``https://`` only, so over plain http it does not retry connection errors or 503s.

Credentials accepted (401 ``{"error": "Couldn't authenticate you"}`` otherwise): Basic ``{email}/token:{token}``,
Basic ``{email}:{password}`` (unless ``password_access=False``; Zendesk is retiring it) and ``Bearer
{oauth_token}``. Rate limit: ``rate_limit`` requests per rolling ``rate_window`` seconds (Zendesk: 200-2,500 a
minute by plan; 700 here), then 429 with ``Retry-After`` and the plain-text body Zendesk sends; the incremental
exports have their own 10 a minute, the search export its own 100. Every answer carries ``X-Rate-Limit``/
``X-Rate-Limit-Remaining`` and ``ratelimit-*`` headers. Faults: :meth:`fail_next`, :meth:`drop_response_next`
(applied, then the connection closes unanswered), :meth:`delay_next` (applied, then answered late: a client
timeout sees no answer) and :meth:`latency` (:mod:`~.zendesk_traffic`). What is served and how:
:mod:`~.zendesk_endpoints`, :mod:`~.zendesk_tickets`, :mod:`~.zendesk_search`, :mod:`~.zendesk_people`,
:mod:`~.zendesk_jobs`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.message import Message
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_opsflow_testing.local_http import JsonReply, LocalHandler, LocalHTTPService, _Server
from airflow_opsflow_testing.zendesk_endpoints import Endpoints
from airflow_opsflow_testing.zendesk_jobs import JobQueue
from airflow_opsflow_testing.zendesk_people import Directory
from airflow_opsflow_testing.zendesk_schema import (
    FIELD_TYPES,
    Comment,
    CustomField,
    Organization,
    Ticket,
    User,
    ZendeskError,
)
from airflow_opsflow_testing.zendesk_store import ZendeskStore
from airflow_opsflow_testing.zendesk_tickets import TicketDesk
from airflow_opsflow_testing.zendesk_traffic import Fault, RecordedRequest, Traffic, fault_reply

if TYPE_CHECKING:
    from zenpy import Zenpy

__all__ = ["CustomField", "FakeZendesk", "Organization", "RecordedRequest", "Ticket", "User"]

DEFAULT_EMAIL = "opsflow-bot@example.com"
DEFAULT_TOKEN = "opsflow-fake-zendesk-api-token"
DEFAULT_PASSWORD = "opsflow-fake-password"
DEFAULT_OAUTH = "opsflow-fake-oauth-token"
UNAUTHENTICATED = "Couldn't authenticate you"
Auth = Literal["token", "token_extra", "password", "oauth"]


class _Handler(LocalHandler):
    """JSON answers, plain text when the body is a ``str`` (Zendesk's 429); ``None``: close unanswered."""

    def do_GET(self) -> None:
        raw = self._read_body()
        assert isinstance(self.server, _Server)
        reply = self.server.fake._dispatch(self.command, self.path, self.headers, raw)
        if reply is None:
            self.close_connection = True
            return
        text = isinstance(reply.body, str)
        payload = b"" if reply.body is None else (reply.body.encode() if text else json.dumps(reply.body).encode())
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up while we answered
            self.close_connection = True

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


class FakeZendesk(Endpoints, Traffic, LocalHTTPService):
    """A fake Zendesk account on ``http://127.0.0.1:<free port>``; a context manager, or ``start()``/``stop()``.

    The API user (``email``) is an admin, :attr:`agent`; every credential acts as it.
    """

    service_name = "fake-zendesk"
    handler_class = _Handler

    def __init__(self, *, email: str = DEFAULT_EMAIL, token: str = DEFAULT_TOKEN, password: str = DEFAULT_PASSWORD,
                 oauth_token: str = DEFAULT_OAUTH, password_access: bool = True, rate_limit: int = 700,
                 rate_window: float = 60.0, incremental_limit: int = 10, search_export_limit: int = 100,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.email, self.token, self.password, self.oauth_token = email, token, password, oauth_token
        self.password_access = password_access
        self._init_http(host, port)
        self.store = ZendeskStore(self._base_url)
        self.desk = TicketDesk(self.store)
        self.directory = Directory(self.store)
        self.jobs = JobQueue(self._base_url, lambda: self.store.now().strftime("%Y-%m-%d %H:%M:%S +0000"))
        self._expired = False
        self._init_traffic(rate_limit, rate_window, incremental_limit, search_export_limit)
        self._routes = self._route_table()
        self.operations = sorted({name for _, _, name, _ in self._routes})
        self.agent = self._seed_agent()

    def _base_url(self) -> str:
        return self.url if self._server is not None else f"http://{self.host}:{self.port}"

    def _seed_agent(self) -> User:
        now = self.store.now()
        agent = User(self.store.next_id(), "opsflow bot", now, now, email=self.email.lower(), role="admin",
                     verified=True)
        self.store.users[agent.id] = agent
        self.store.commit("user", agent, searchable_now=True)
        return agent

    # --- wiring -------------------------------------------------------------------------------------------

    @property
    def netloc(self) -> str:
        """``127.0.0.1:<port>`` of the started server."""
        return urlsplit(self.url).netloc

    def _split_host(self) -> tuple[str, str]:
        """(subdomain, domain) that zenpy joins back into :attr:`netloc` - the split ZendeskHook makes."""
        parts = self.netloc.split(".")
        return ".".join(parts[:-2]), ".".join(parts[-2:])

    def client(self, auth: Literal["token", "password", "oauth"] = "token", *, timeout: float = 10,
               **kwargs: Any) -> Zenpy:
        """A ``zenpy.Zenpy`` bound to this account over http (``auth``: "token", "password" or "oauth").

        ``kwargs`` pass through (``ratelimit_budget=`` caps zenpy's Retry-After waits, ``disable_cache=True``).
        """
        import requests
        from requests.adapters import HTTPAdapter
        from zenpy import Zenpy
        from zenpy.lib.api import BaseApi

        session = requests.Session()
        for prefix in ("https://", "http://"):  # zenpy's own retry policy, on the scheme the fake speaks
            session.mount(prefix, HTTPAdapter(**Zenpy.http_adapter_kwargs()))
        credentials: dict[str, Any] = {"email": self.email, "token": self.token}
        if auth == "password":
            credentials = {"email": self.email, "password": self.password}
        elif auth == "oauth":
            credentials = {"oauth_token": self.oauth_token}
        subdomain, domain = self._split_host()
        zd = Zenpy(subdomain=subdomain, domain=domain, session=session, timeout=timeout, **credentials, **kwargs)
        seen: set[int] = set()
        stack: list[Any] = list(vars(zd).values())
        while stack:  # every API object (nested ones too) builds its URLs with its own `protocol`
            api = stack.pop()
            if isinstance(api, BaseApi) and id(api) not in seen:
                seen.add(id(api))
                api.protocol = "http"
                stack.extend(vars(api).values())
        return zd

    def zendesk_connection(self, conn_id: str = "zendesk_default", auth: Auth = "token") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json, "ZENPY_FORCE_SCHEME": "http"}`` for ``ZendeskHook(zendesk_conn_id=...)``.

        ``auth``: "token" (``use_token`` + API token as password), "token_extra" (token in the extra),
        "oauth" (``oauth_token`` extra) or "password" (deprecated password auth).
        """
        conn: dict[str, Any] = {"conn_type": "zendesk", "host": self.netloc, "login": self.email}
        if auth == "token":
            conn.update(password=self.token, extra={"use_token": True})
        elif auth == "token_extra":
            conn["extra"] = {"token": self.token}
        elif auth == "oauth":
            conn = {"conn_type": "zendesk", "host": self.netloc, "extra": {"oauth_token": self.oauth_token}}
        else:
            conn["password"] = self.password
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn), "ZENPY_FORCE_SCHEME": "http"}

    # --- knobs --------------------------------------------------------------------------------------------

    def search_delay(self, seconds: float) -> None:
        """New and updated records reach search ``seconds`` later (edited ones match in their old state until
        then); ``search_delay(0)`` makes everything visible at once. Reads by id are always fresh."""
        self.store.set_search_delay(seconds)

    def job_pace(self, polls: int | None = 1, seconds: float | None = None, *, max_active: int | None = None,
                 retry_after: int | None = None) -> None:
        """Jobs move one step (queued -> working -> completed) every ``polls`` polls of their status and/or every
        ``seconds``; ``max_active`` jobs may be queued or working (30), one more gets 429 + ``retry_after``."""
        with self.jobs.lock:
            self.jobs.polls_per_step, self.jobs.seconds_per_step = polls, seconds
            if max_active is not None:
                self.jobs.max_active = max_active
            if retry_after is not None:
                self.jobs.retry_after = retry_after

    def run_jobs(self) -> None:
        """Complete every queued or working job now (their items applied)."""
        self.jobs.run_all()

    def advance(self, **delta: float) -> None:
        """Move the account's clock (``timedelta`` keywords: ``days=5``): timestamps, ``close_solved``, exports."""
        with self.store.lock:
            self.store.clock_offset += timedelta(**delta)

    def close_solved(self, days: float = 4) -> list[int]:
        """Close tickets solved at least ``days`` ago (Zendesk's default automation: 4); the ids closed."""
        return self.desk.close_solved(days)

    def expire_credentials(self, expired: bool = True) -> None:
        """Make every credential fail with 401 (a revoked token) until called with False."""
        self._expired = expired

    def define_field(self, kind: Literal["organization", "user"], key: str, type: str = "text", *,
                     title: str = "", options: Iterable[str] = ()) -> CustomField:
        """Add an ``organization_fields``/``user_fields`` custom field (text, integer, decimal, checkbox, date,
        dropdown with ``options``...); values written to it are checked, undefined keys ignored."""
        if type not in FIELD_TYPES:
            raise ValueError(f"type must be one of {FIELD_TYPES}")
        with self.store.lock:
            definition = CustomField(self.store.next_field_id(), key, type, title, list(options))
            self.store.fields[kind][key] = definition
            return copy.deepcopy(definition)

    # --- seeding (no request, searchable at once) ---------------------------------------------------------

    def add_ticket(self, subject: str = "Seeded ticket", *, status: str = "open", comment: str = "Seeded ticket",
                   tags: Iterable[str] = (), external_id: str | None = None, priority: str | None = None,
                   created: datetime | None = None, solved: datetime | None = None,
                   assignee_id: int | None = None, requester_id: int | None = None,
                   organization_id: int | None = None) -> Ticket:
        with self.store.lock:
            when = created or self.store.now()
            ticket = Ticket(self.store.next_ticket_id(), subject, status, requester_id or self.agent.id,
                            self.agent.id, when, solved or when, priority=priority, external_id=external_id,
                            tags=list(dict.fromkeys(tags)), assignee_id=assignee_id or (
                                self.agent.id if status in ("solved", "closed") else None),
                            organization_id=organization_id,
                            solved_at=(solved or when) if status in ("solved", "closed") else None)
            ticket.comments.append(Comment(self.store.next_id(), self.agent.id, comment, True, when,
                                           self.store.next_id()))
            self.store.tickets[ticket.id] = ticket
            self.store.commit("ticket", ticket, searchable_now=True)
            return copy.deepcopy(ticket)

    def add_organization(self, name: str, *, external_id: str | None = None, tags: Iterable[str] = (),
                         fields: dict[str, Any] | None = None) -> Organization:
        with self.store.lock:
            now = self.store.now()
            org = Organization(self.store.next_id(), name, now, now, external_id=external_id, tags=list(tags),
                               fields=dict(fields or {}))
            self.store.organizations[org.id] = org
            self.store.commit("organization", org, searchable_now=True)
            return copy.deepcopy(org)

    def add_user(self, name: str, email: str | None = None, *, role: str = "end-user",
                 external_id: str | None = None, organization_id: int | None = None,
                 fields: dict[str, Any] | None = None) -> User:
        with self.store.lock:
            now = self.store.now()
            user = User(self.store.next_id(), name, now, now, email=email and email.lower(),
                        external_id=external_id, role=role, organization_id=organization_id,
                        fields=dict(fields or {}))
            self.store.users[user.id] = user
            self.store.commit("user", user, searchable_now=True)
            return copy.deepcopy(user)

    # --- what happened (copies) ---------------------------------------------------------------------------

    @property
    def tickets(self) -> list[Ticket]:
        self.jobs.tick()  # jobs paced in seconds move on when looked at
        with self.store.lock:
            return [copy.deepcopy(t) for _, t in sorted(self.store.tickets.items())]

    def ticket(self, ticket_id: int) -> Ticket:
        self.jobs.tick()
        with self.store.lock:
            if ticket_id not in self.store.tickets:
                raise LookupError(f"no ticket {ticket_id} in the fake Zendesk")
            return copy.deepcopy(self.store.tickets[ticket_id])

    @property
    def organizations(self) -> list[Organization]:
        self.jobs.tick()
        with self.store.lock:
            return [copy.deepcopy(o) for _, o in sorted(self.store.organizations.items())]

    def organization(self, *, id: int | None = None, external_id: str | None = None) -> Organization | None:
        self.jobs.tick()
        with self.store.lock:
            found = (self.store.organizations.get(id) if id is not None
                     else self.directory.by_external_id("organization", external_id))
            return copy.deepcopy(found)

    @property
    def users(self) -> list[User]:
        self.jobs.tick()
        with self.store.lock:
            return [copy.deepcopy(u) for _, u in sorted(self.store.users.items())]

    def user(self, *, id: int | None = None, email: str | None = None, external_id: str | None = None) -> User | None:
        self.jobs.tick()
        with self.store.lock:
            data = {"id": id, "email": email, "external_id": external_id}
            return copy.deepcopy(self.directory.match("user", {k: v for k, v in data.items() if v is not None}))

    def job(self, job_id: str) -> dict[str, Any]:
        """A job's status as the API renders it, without counting as a poll."""
        self.jobs.tick()
        with self.jobs.lock:
            return self.jobs.render(self.jobs.jobs[job_id])

    def reset(self) -> None:
        """Forget records (the API user stays), jobs, requests, faults, latency, lag, clock shift and windows."""
        self.store.reset()
        self.store.set_search_delay(0)
        self.store.clock_offset = timedelta()
        with self.jobs.lock:
            self.jobs.jobs.clear()
        self._forget_traffic()
        self._expired = False
        self.agent = self._seed_agent()

    # --- request handling (called from the server's threads) ----------------------------------------------

    def _authenticate(self, headers: Message) -> User | None:
        scheme, _, credential = headers.get("Authorization", "").partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(credential.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, secret = "", ""
            if user.lower() == f"{self.email.lower()}/token":
                ok = hmac.compare_digest(secret.encode(), self.token.encode())
            elif user.lower() == self.email.lower() and self.password_access:
                ok = hmac.compare_digest(secret.encode(), self.password.encode())
        elif scheme.lower() == "bearer":
            ok = hmac.compare_digest(credential.strip().encode(), self.oauth_token.encode())
        return self.agent if ok and not self._expired else None

    def _dispatch(self, verb: str, raw_path: str, headers: Message, raw: bytes) -> JsonReply | None:
        if self._latency:
            time.sleep(self._latency)
        arrived = time.time()
        split = urlsplit(raw_path)
        path, query = unquote(split.path), parse_qs(split.query, keep_blank_values=True)
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        route = next(((m, name, handler) for v, pattern, name, handler in self._routes
                      if v == verb and (m := pattern.match(path))), None)
        name = route[1] if route else "unknown"
        fault: Fault | None = None
        rate_headers: dict[str, str] = {}
        actor = self._authenticate(headers)
        if actor is None:
            reply = JsonReply(401, {"error": UNAUTHENTICATED}, {"WWW-Authenticate": 'Basic realm="Web Password"'})
        else:
            limited, rate_headers = self._admit(name)
            fault = self._take_fault(name, path) if limited is None else None
            if limited is not None:
                reply = limited
            elif fault is not None and fault.kind == "fail":
                reply = fault_reply(fault)
            elif route is None:
                reply = JsonReply(404, {"error": "InvalidEndpoint", "description": "Not found"})
            elif bad_json:
                reply = JsonReply(400, {"error": "InvalidJSON", "description": "The request body is not valid JSON"})
            else:
                self.jobs.tick()
                try:
                    reply = route[2](route[0], query, body, actor)
                except ZendeskError as e:
                    reply = JsonReply(e.status, e.body(), dict(e.headers))
        reply.headers.update(rate_headers)
        reply.headers.setdefault("X-Zendesk-API-Version", "v2")
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        dropped = fault is not None and fault.kind == "drop"
        kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        status = None if dropped else reply.status
        self._record(RecordedRequest(name, verb, path, query, body, status, arrived, kept))
        return None if dropped else reply
