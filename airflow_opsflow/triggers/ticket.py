"""Triggers of TicketSensor: wait in the triggerer until tickets are closed (or in another status category).

* :class:`TicketStatusTrigger` (Jira): the ``jira`` library is synchronous, so the trigger talks to Jira's
  REST API itself with the ``httpx.AsyncClient`` of JiraTicketHook (one reading of the connection for both).
* :class:`TicketRouteTrigger` (any other ticket route: HubSpot, Salesforce, Zendesk...): the route's backend
  reads the tickets (``TicketBackend.read_many``, batched) in a worker thread, as the sensor's poke does.

The pure helpers (ticket references, JQL, status categories, Jira's error answers) are shared with
TicketSensor's poke.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_opsflow.core.retry_after import parse_retry_after

if TYPE_CHECKING:
    import httpx

    from airflow_opsflow.incidents.tickets import TicketBackend, TicketRoute

ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
UNKNOWN_KEY = re.compile(r"An issue with key '([^']+)' does not exist")
# Jira's category keys; the names its UI shows are accepted too.
STATUS_CATEGORIES = {"done": "done", "new": "new", "to do": "new", "indeterminate": "indeterminate",
                     "in progress": "indeterminate", "not done": "not done"}
RETRY_AFTER_MAX = 3600.0  # a longer ask is read as an hour: the poll's deadline decides from there
PAGE = 100  # results asked per search page; Jira may cap it lower, the search pages on either way
TICKET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # ids go into API paths: no "/", "?", ".."
SYSTEMS = {"jira": "Jira", "hubspot": "HubSpot", "salesforce": "Salesforce", "zendesk": "Zendesk"}
OPEN_OR_CLOSED = ("done", "not done")  # what a ticket read through a route's backend can tell (Ticket.closed)
FAILED_POLLS = 3  # consecutive polls of a route's backend that may fail (network, 5xx, 429) before giving up


class TicketStatus(NamedTuple):
    """A ticket's status: ``name`` as the workflow calls it ("In Review"), ``category`` its category key
    (``new``, ``indeterminate`` or ``done``)."""

    name: str
    category: str


class TicketLookupError(Exception):
    """The system cannot tell the tickets' status: bad credentials, unknown tickets, unreachable, ...
    ``unknown``: the tickets it does not know (the only case a retry cannot fix)."""

    def __init__(self, message: str, unknown: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.unknown = list(unknown)


class RetryLater(Exception):
    """Jira asked to slow down (429) or is briefly unavailable (503): poll again after ``seconds``."""

    def __init__(self, message: str, seconds: float | None) -> None:
        super().__init__(message)
        self.seconds = seconds


class TicketRef(NamedTuple):
    """A ticket to wait for: ``id`` reads it back (Jira: its key), ``key`` names it until it is read."""

    id: str
    key: str


def system_name(system: str) -> str:
    """``zendesk`` -> ``Zendesk``."""
    return SYSTEMS.get(system, system)


def ticket_keys(value: Any) -> list[str]:
    """Jira issue keys from a list of keys, a comma- or space-separated string, or the tickets a task pushed
    (``[{"key", "url", "system", "id"}]``); also that list rendered into a string by a template. Upper-cased,
    de-duplicated; tickets of another system are left out.

    Keys are validated because they go into JQL."""
    return [ref.key for ref in parse_tickets(value)[0]]


def parse_tickets(value: Any, system: str = "jira") -> tuple[list[TicketRef], list[str]]:
    """(the tickets of ``system``, those of other systems left out) from ``value``: ticket references as a
    list, a comma- or space-separated string, the tickets a task pushed (``[{"key", "url", "system", "id"}]``),
    or that list rendered into a string by a template. Jira's are issue keys, upper-cased; other systems'
    plain values are ticket ids (Zendesk's ``123``, a Case's ``500...``), dicts give their ``id``.

    Raises ValueError for a malformed reference, and when every ticket belongs to another system (the
    sensor was given the wrong route: waiting for nothing would succeed at once)."""
    items = _items(value)
    refs: dict[str, TicketRef] = {}
    others: list[str] = []
    for item in items:
        if isinstance(item, Mapping):
            belongs = item.get("system") or _legacy_system(item)
            if belongs and belongs != system:
                others.append(f"{item.get('key') or item.get('id')} ({system_name(str(belongs))})")
                continue
        ref = _jira_ref(item) if system == "jira" else _ref(item, system)
        refs.setdefault(ref.id, ref)
    if others and not refs:
        raise ValueError(f"no {system_name(system)} tickets among {', '.join(others)}: give the sensor "
                         "ticket=<the route that opened them>")
    return list(refs.values()), others


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None", "[]"):  # a template that rendered nothing (no tickets pushed)
            return []
        if text.startswith(("[", "{")):  # JSON, or a Python repr from ``{{ params.tickets }}``/``xcom_pull``
            try:
                value = json.loads(text)
            except ValueError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    raise ValueError(f"cannot read tickets from {text[:200]!r}") from None
        else:
            return [k for k in re.split(r"[,\s]+", text) if k]
    if value is None:
        return []
    if isinstance(value, (Mapping, int)):
        return [value]
    if not isinstance(value, (list, tuple, set)):
        raise ValueError(f"tickets must be keys or [{{'key': ...}}] dicts, not {type(value).__name__}")
    return list(value)


def _legacy_system(item: Mapping[str, Any]) -> str | None:
    """The system of an entry pushed before entries named it: Jira's had ``/browse/KEY`` URLs."""
    return "jira" if "/browse/" in str(item.get("url") or "") else None


def _jira_ref(item: Any) -> TicketRef:
    raw = item.get("key") if isinstance(item, Mapping) else item
    key = raw.strip().upper() if isinstance(raw, str) else ""
    if not ISSUE_KEY.fullmatch(key):
        raise ValueError(f"not a Jira issue key: {item!r}")
    return TicketRef(key, key)


def _ref(item: Any, system: str) -> TicketRef:
    raw = item.get("id") if isinstance(item, Mapping) else item
    ticket_id = str(raw).strip().lstrip("#") if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not TICKET_ID.fullmatch(ticket_id):
        what = "no ticket id in" if isinstance(item, Mapping) and raw is None else "not a ticket id:"
        raise ValueError(f"{what} {item!r} ({system_name(system)} tickets are waited for by id)")
    key = str(item.get("key") or ticket_id) if isinstance(item, Mapping) else ticket_id
    return TicketRef(ticket_id, key)


def status_category(value: str) -> str:
    """``done``, ``new``, ``indeterminate`` or ``not done`` (also ``To Do``/``In Progress``, any case)."""
    category = STATUS_CATEGORIES.get(re.sub(r"[\s_-]+", " ", str(value).strip().lower()))
    if category is None:
        raise ValueError(f"status_category must be done, new, indeterminate or 'not done', not {value!r}")
    return category


def key_jql(keys: Iterable[str]) -> str:
    return f"key in ({', '.join(keys)})"


def pending(statuses: Mapping[str, TicketStatus], category: str) -> list[str]:
    """The tickets not (yet) in ``category``."""
    if category == "not done":
        return [k for k, s in statuses.items() if s.category == "done"]
    return [k for k, s in statuses.items() if s.category != category]


def after_poll(statuses: Mapping[str, TicketStatus], waiting: list[str], why: str, category: str,
               deadline: float | None, wait: float, polls: int) -> tuple[TriggerEvent | None, float]:
    """What a poll decided: the final event (every ticket there, or the deadline passed), else the wait
    before the next poll (cut to the deadline, for one last poll then)."""
    tickets = {k: s.name for k, s in statuses.items()}
    if not why and not waiting:
        return TriggerEvent({"status": "success", "tickets": tickets, "polls": polls}), 0.0
    if deadline is not None:
        left = deadline - time.time()
        if left <= 0:
            return TriggerEvent({"status": "timeout", "tickets": tickets, "pending": waiting, "polls": polls}), 0.0
        wait = min(wait, left)
    return None, wait


def describe(statuses: Mapping[str, TicketStatus], keys: Iterable[str]) -> str:
    return ", ".join(f"{k} ({statuses[k].name})" for k in keys)


def status_of(issue: Mapping[str, Any]) -> tuple[str, TicketStatus]:
    """(key, status) of one issue as Jira's REST API returns it with ``fields=status``."""
    status = issue["fields"]["status"]
    return str(issue["key"]).upper(), TicketStatus(str(status["name"]), str(status["statusCategory"]["key"]))


def jira_error(status: int, messages: Iterable[str], conn_id: str) -> TicketLookupError:
    """What a failed Jira answer means, worded for the task log."""
    messages = [m for m in messages if m]
    if status == 401:
        return TicketLookupError(
            f"Jira refused the credentials of connection {conn_id!r} (HTTP 401): the API token (Cloud) or "
            "personal access token (Server/Data Center) is wrong or expired")
    unknown = [k.upper() for m in messages for k in UNKNOWN_KEY.findall(m)]
    if status in (400, 404) and unknown:  # a strict JQL search refuses unknown keys, naming them
        return unknown_tickets(unknown)
    return TicketLookupError(f"Jira answered HTTP {status}: {'; '.join(messages) or 'no details'}")


def unknown_tickets(keys: list[str]) -> TicketLookupError:
    return TicketLookupError(f"no such Jira ticket(s): {', '.join(keys)} (or the connection's user may not see "
                             "them)", keys)


class TicketStatusTrigger(BaseTrigger):
    """Fire once every ticket is in ``status_category``; fire an error event when Jira cannot tell.

    Polls ``POST /rest/api/2/search/jql`` (Cloud) or ``/rest/api/2/search`` (Server/Data Center) with one
    ``key in (...)`` query for all tickets, on an ``httpx.AsyncClient``: the triggerer's event loop, shared
    with every other deferred task, never waits on Jira. Rate limits (429) and 503s are waited out as
    ``Retry-After`` says.

    :param jira_conn_id: an ``opsflow_jira`` connection (see JiraTicketHook).
    :param tickets: the issue keys.
    :param status_category: ``done``, ``new``, ``indeterminate`` or ``not done``.
    :param poll_interval: seconds between polls.
    :param deadline: a Unix time after which the trigger stops waiting and fires a ``timeout`` event
        (the sensor's own timeout, kept here so it holds wherever the trigger runs).
    """

    def __init__(
        self,
        jira_conn_id: str,
        tickets: list[str],
        status_category: str = "done",
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.jira_conn_id = jira_conn_id
        self.tickets = list(tickets)
        self.status_category = status_category
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "jira_conn_id": self.jira_conn_id,
                "tickets": self.tickets,
                "status_category": self.status_category,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_opsflow.hooks.jira import JiraConnectionError, JiraTicketHook

        if not self.tickets:
            yield TriggerEvent({"status": "success", "tickets": {}, "polls": 0})
            return
        hook = JiraTicketHook(self.jira_conn_id)
        try:
            settings = await hook.aget_settings()
            # Building the client loads CA certificates from disk: off the event loop.
            client = await asyncio.to_thread(hook.get_async_client, settings)
        except Exception as e:
            message = str(e) if isinstance(e, JiraConnectionError) else f"connection {self.jira_conn_id!r}: {e}"
            yield TriggerEvent({"status": "error", "message": message, "polls": 0})
            return
        async with client:
            async for event in self._wait(client, settings.url, settings.cloud):
                yield event

    async def _wait(self, client: httpx.AsyncClient, base: str, cloud: bool | None) -> AsyncIterator[TriggerEvent]:
        polls = 0
        statuses: dict[str, TicketStatus] = {}
        while True:
            polls += 1
            wait, why = self.poll_interval, ""
            try:
                if cloud is None:
                    info = await self._call(client, base, "GET", "/rest/api/2/serverInfo")
                    cloud = info.get("deploymentType") == "Cloud"
                statuses = await self._poll(client, base, cloud)
            except RetryLater as e:
                wait, why = (self.poll_interval if e.seconds is None else e.seconds), str(e)
            except TicketLookupError as e:
                yield TriggerEvent({"status": "error", "message": str(e), "unknown": e.unknown, "polls": polls})
                return
            waiting = pending(statuses, self.status_category) if statuses else self.tickets
            event, wait = after_poll(statuses, waiting, why, self.status_category, self.deadline, wait, polls)
            if event is not None:
                yield event
                return
            self.log.info("%s; next poll in %.1f s", why or f"waiting for {describe(statuses, waiting)} to be "
                          f"{self.status_category}", wait)
            await asyncio.sleep(wait)

    async def _poll(self, client: httpx.AsyncClient, base: str, cloud: bool) -> dict[str, TicketStatus]:
        """Every ticket's status: one search for all (paged), then a direct read of any ticket it missed."""
        unknown: list[str] = []
        searched = list(self.tickets)
        while True:
            try:
                found = await self._search(client, base, cloud, searched) if searched else {}
                break
            except TicketLookupError as e:
                named = [k for k in e.unknown if k in searched]
                if not named:
                    raise
                # Strict JQL refuses unknown keys, maybe one at a time: search again without them, to name all.
                unknown += named
                searched = [k for k in searched if k not in named]
        # Cloud's search lags behind writes (a ticket created a moment ago), and a moved ticket comes back
        # under its new key: read those one by one, which is fresh and follows moves.
        for key in (k for k in searched if k not in found):
            issue = await self._call(client, base, "GET", f"/rest/api/2/issue/{key}", params={"fields": "status"},
                                     missing_ok=True)
            if issue is None:
                unknown.append(key)
            else:
                found[key] = status_of(issue)[1]
        if unknown:
            raise unknown_tickets([k for k in self.tickets if k in unknown])
        return {k: found[k] for k in self.tickets}

    async def _search(self, client: httpx.AsyncClient, base: str, cloud: bool,
                      keys: list[str]) -> dict[str, TicketStatus]:
        body: dict[str, Any] = {"jql": key_jql(keys), "fields": ["status"], "maxResults": PAGE}
        path = "/rest/api/2/search/jql" if cloud else "/rest/api/2/search"
        found: dict[str, TicketStatus] = {}
        while True:
            page = await self._call(client, base, "POST", path, body)
            issues = page.get("issues") or []
            found.update(status_of(issue) for issue in issues)
            start = body.get("startAt", 0) + len(issues)
            if cloud and not page.get("isLast", True) and page.get("nextPageToken"):
                body = {**body, "nextPageToken": page["nextPageToken"]}
            elif not cloud and issues and start < page.get("total", 0):
                body = {**body, "startAt": start}
            else:
                return found

    async def _call(self, client: httpx.AsyncClient, base: str, method: str, path: str,
                    body: dict[str, Any] | None = None, params: dict[str, str] | None = None,
                    missing_ok: bool = False) -> Any:
        import httpx

        try:
            response = await client.request(method, path, json=body, params=params)
        except httpx.TimeoutException as e:
            raise RetryLater(f"Jira at {base} did not answer in time ({type(e).__name__})", None) from None
        except httpx.HTTPError as e:
            raise TicketLookupError(f"cannot reach Jira at {base} (connection {self.jira_conn_id!r}): "
                                    f"{type(e).__name__}: {e}") from None
        if response.status_code in (429, 503):
            raise RetryLater(f"Jira answered HTTP {response.status_code}",
                             parse_retry_after(response.headers.get("Retry-After"), maximum=RETRY_AFTER_MAX))
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise jira_error(response.status_code, _messages(response), self.jira_conn_id)
        try:
            return response.json()
        except ValueError:
            raise TicketLookupError(f"Jira at {base} answered {method} {path} with no JSON (HTTP "
                                    f"{response.status_code}): is the connection's host the Jira URL?") from None


def _messages(response: httpx.Response) -> list[str]:
    """Jira's ``errorMessages`` and ``errors`` values, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return [response.text[:200]]
    if not isinstance(body, dict):
        return [str(body)[:200]]
    errors = body.get("errors")
    return [*map(str, body.get("errorMessages") or []),
            *(map(str, errors.values()) if isinstance(errors, dict) else [])]


# --- any ticket route: read through its backend ------------------------------------------------------------


def read_statuses(backend: TicketBackend, refs: Iterable[TicketRef], system: str) -> dict[str, TicketStatus]:
    """Every ticket's state read through a route's backend (``read_many``: by id, consistent, a fixed few
    requests whatever the number of tickets where the system reads a batch at once), by the ticket's key:
    ``closed`` (category ``done``) or ``open``. Blocking: the trigger runs it in a worker thread."""
    refs = list(refs)
    read = backend.read_many([{"id": ref.id, "key": ref.key} for ref in refs])
    found: dict[str, TicketStatus] = {}
    unknown: list[str] = []
    for ref in refs:
        ticket = read.get(ref.key)
        if ticket is None:
            unknown.append(ref.key)
        else:
            found[ticket.key] = TicketStatus("closed", "done") if ticket.closed else TicketStatus("open", "open")
    if unknown:
        raise TicketLookupError(f"no such {system_name(system)} ticket(s): {', '.join(unknown)} (or the "
                                "connection's user may not see them)", unknown)
    return found


def route_spec(route: TicketRoute) -> tuple[str, dict[str, Any]]:
    """(class path, keyword arguments) that rebuild ``route`` in the triggerer: each ``__init__`` parameter of
    its class and bases whose value the route keeps under that name (``name`` as ``_name``). Values JSON
    cannot hold are left out: reading a ticket needs the connection and lookup settings, not those."""
    kwargs: dict[str, Any] = {}
    for klass in type(route).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in kwargs:
                continue
            attr = "_name" if p.name == "name" else p.name
            if not hasattr(route, attr):
                continue
            try:
                kwargs[p.name] = json.loads(json.dumps(getattr(route, attr)))  # tuples -> lists, as stored
            except (TypeError, ValueError):
                continue
    cls = type(route)
    return f"{cls.__module__}.{cls.__qualname__}", kwargs


class TicketRouteTrigger(BaseTrigger):
    """Fire once every ticket is closed (``done``) or open (``not done``), reading them through a ticket
    route's backend (HubSpot, Salesforce, Zendesk, or any :class:`~airflow_opsflow.incidents.tickets.TicketRoute`);
    fire an error event when the system cannot tell.

    The backends' clients are synchronous, so each poll runs in a worker thread (``asyncio.to_thread``): the
    triggerer's event loop, shared with every other deferred task, never waits on the system. A poll that
    fails (network, 5xx, a 429) is tried again at the next one (after ``retry_after`` when the error says),
    up to ``FAILED_POLLS`` in a row; an unknown ticket or a refused request (ValueError) fires at once.

    :param route: the route's class path (importable where the triggerer runs: opsflow's own are).
    :param route_kwargs: its keyword arguments (:func:`route_spec`).
    :param tickets: ``[{"id", "key"}]``.
    :param status_category: ``done`` or ``not done``.
    :param poll_interval: seconds between polls.
    :param deadline: a Unix time after which the trigger stops waiting and fires a ``timeout`` event.
    """

    def __init__(
        self,
        route: str,
        route_kwargs: dict[str, Any],
        tickets: list[dict[str, str]],
        status_category: str = "done",
        poll_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.route = route
        self.route_kwargs = dict(route_kwargs)
        self.tickets = [{"id": str(t["id"]), "key": str(t["key"])} for t in tickets]
        self.status_category = status_category
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "route": self.route,
                "route_kwargs": self.route_kwargs,
                "tickets": self.tickets,
                "status_category": self.status_category,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    def _open(self) -> tuple[TicketBackend, str]:
        """The route's backend (opening it reads the connection: blocking) and its system."""
        import importlib

        from airflow_opsflow.incidents.tickets import TicketRoute

        module, _, name = self.route.rpartition(".")
        cls = getattr(importlib.import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, TicketRoute)):
            raise TypeError(f"{self.route} is not a ticket route")
        route = cls(**self.route_kwargs)
        return route.backend(), route.kind

    async def run(self) -> AsyncIterator[TriggerEvent]:
        refs = [TicketRef(t["id"], t["key"]) for t in self.tickets]
        if not refs:
            yield TriggerEvent({"status": "success", "tickets": {}, "polls": 0})
            return
        try:
            backend, system = await asyncio.to_thread(self._open)
        except Exception as e:
            yield TriggerEvent({"status": "error", "message": f"{self.route}: {type(e).__name__}: {e}", "polls": 0})
            return
        polls = failures = 0
        statuses: dict[str, TicketStatus] = {}
        while True:
            polls += 1
            wait, why = self.poll_interval, ""
            try:
                statuses = await asyncio.to_thread(read_statuses, backend, refs, system)
                failures = 0
            except TicketLookupError as e:
                yield TriggerEvent({"status": "error", "message": str(e), "unknown": e.unknown, "polls": polls})
                return
            except Exception as e:
                failures += 1
                message = f"cannot read the {system_name(system)} tickets: {type(e).__name__}: {e}"
                if isinstance(e, ValueError) or failures > FAILED_POLLS:  # refused, or failing for good
                    yield TriggerEvent({"status": "error", "message": message, "polls": polls})
                    return
                wait = float(getattr(e, "retry_after", None) or self.poll_interval)
                why = f"{message} ({failures} of {FAILED_POLLS} failed polls in a row allowed)"
            waiting = pending(statuses, self.status_category) if statuses else [r.key for r in refs]
            event, wait = after_poll(statuses, waiting, why, self.status_category, self.deadline, wait, polls)
            if event is not None:
                yield event
                return
            self.log.info("%s; next poll in %.1f s", why or f"waiting for {describe(statuses, waiting)} to be "
                          f"{self.status_category}", wait)
            await asyncio.sleep(wait)
