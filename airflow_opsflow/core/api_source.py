"""Records from CRM and support APIs, one page at a time: HubSpot objects, Salesforce SOQL, Zendesk exports.

A source yields pages (lists of flat dicts) and never holds more than one; the rest goes to the staging
database (:mod:`airflow_opsflow.core.staging`), which SQL then reads like any table. Only paging, flattening
and waiting are done here, on the plain calls of a client the Airflow shell builds from its connection
(:mod:`airflow_opsflow.hooks.api_clients`), so that this stays free of Airflow and of the client libraries.

A client raises :class:`ApiRetry` for answers worth waiting for (429, 5xx: ``Retry-After`` honoured, else
an exponential back-off) and :class:`ApiError` for the others (a refused query, wrong credentials).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Record = dict[str, Any]
Page = list[Record]

RATE_LIMITED_TRIES = 12  # 429s are expected while paging a big export: waited out, not failed attempts
TRANSIENT_TRIES = 5
MAX_WAIT = 600.0  # seconds: Zendesk asks for at most a minute, HubSpot sends no Retry-After at all
DEFAULT_PAGE = {"hubspot_list": 100, "hubspot_search": 200, "zendesk": 1000}
HUBSPOT_SEARCH_WINDOW = 10_000  # search pages no further than this: past it, search again after the last id


class ApiError(RuntimeError):
    """The API refused or failed for good (the message names the system and its error)."""


class ApiRetry(Exception):
    """An answer worth waiting for: a rate limit (429) or a transient failure (5xx, a dropped connection).

    :param retry_after: seconds the server asked to wait (``Retry-After``), None when it did not say.
    :param rate_limited: a 429: waiting is expected, it is not a failed attempt.
    """

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


HubSpotRequest = Callable[[str, str, Any], Any]  # (method, path with query, JSON body or None) -> JSON answer
ZendeskGet = Callable[[str, Mapping[str, Any]], Any]  # (path under the account, query parameters) -> JSON answer


class SalesforceClient(Protocol):
    """SOQL through the REST API (``query`` / ``queryMore``), as simple-salesforce offers it."""

    def query(self, soql: str) -> Any: ...

    def query_more(self, next_records_url: str) -> Any: ...


class ApiSource:
    """A stream of pages from one API; subclasses say what to request and how to flatten records.

    :attr table: the staged table's name (``companies``, ``Account``, ``tickets``).
    :attr columns: the columns known before the first record (a query's fields): an empty answer still
        stages a table with them.
    :attr key: the record id: a record that comes again (exports repeat records updated while they run)
        replaces the earlier one.
    :attr exclude: ``(column, SQL condition on {col})``: rows the staged table leaves out (deleted records
        the export still lists).
    """

    system = ""
    table = ""
    key: str | None = None
    exclude: tuple[str, str] | None = None
    # The JSON carries each value's type (Salesforce, Zendesk): text stays text, even "187". HubSpot's
    # properties all come as text, so their columns are typed from what the text reads as.
    typed_values = True

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.requests = 0
        self.waits: list[float] = []

    def describe(self) -> str:
        return f"{self.system} {self.table}"

    def pages(self) -> Iterator[Page]:
        raise NotImplementedError

    def _call(self, what: str, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)``: one request, retried while the API asks to wait (``Retry-After``) or fails
        transiently (rate limits and failures have their own budgets)."""
        from tenacity import RetryCallState, Retrying, retry_if_exception

        tries = {True: 0, False: 0}  # rate limited -> failed attempts of that kind

        def counted(e: BaseException) -> bool:  # tenacity asks this first, then the wait, then the stop
            if isinstance(e, ApiRetry):
                tries[e.rate_limited] += 1
                return True
            return False

        def error(state: RetryCallState) -> ApiRetry:
            e = state.outcome.exception() if state.outcome is not None else None
            assert isinstance(e, ApiRetry)
            return e

        def wait(state: RetryCallState) -> float:
            e = error(state)
            pause = min(e.retry_after if e.retry_after is not None else float(2 ** (tries[e.rate_limited] - 1)),
                        MAX_WAIT)
            log.info("%s: %s: %s; waiting %.1f s", self.system, what, e, pause)
            self.waits.append(pause)
            return pause

        def stop(state: RetryCallState) -> bool:
            return tries[True] >= RATE_LIMITED_TRIES or tries[False] >= TRANSIENT_TRIES

        def give_up(state: RetryCallState) -> T:
            e = error(state)
            raise ApiError(f"{self.system}: {what} still failed after {sum(tries.values())} tries: {e}") from e

        def attempt() -> T:
            self.requests += 1
            return call(*args)

        result: T = Retrying(retry=retry_if_exception(counted), wait=wait, stop=stop, retry_error_callback=give_up,
                             sleep=time.sleep)(attempt)
        return result


def _page_size(given: int | None, default: int, maximum: int) -> int:
    return max(1, min(given or default, maximum))


# -- HubSpot ---------------------------------------------------------------------------------------


class HubSpotObjects(ApiSource):
    """CRM objects (``companies``, ``contacts``, a custom type...): listed, or searched when there are filters.

    Records are ``{"id": ..., property: value...}``; HubSpot answers every property as text, an unset one
    as ``""`` or null (both staged as NULL). The list pages by HubSpot's ``after`` cursor (at most 100 a
    page); search (at most 200 a page) sorts by ``hs_object_id`` and, when it reaches HubSpot's 10,000-result
    window, searches again from the last id it has.

    :param request: ``(method, path, body) -> answer``: the shell's HTTP call on the HubSpot connection.
    :param filters: search filters (HubSpot's ``{"propertyName", "operator", "value"...}``), AND-ed.
    """

    typed_values = False

    system = "HubSpot"
    key = "id"

    def __init__(self, request: HubSpotRequest, object_type: str, properties: Sequence[str],
                 filters: Sequence[Mapping[str, Any]] = (), page_size: int | None = None) -> None:
        super().__init__()
        self.request = request
        self.table = object_type
        self.properties = list(properties)
        self.filters = [dict(f) for f in filters]
        search = bool(self.filters)
        self.page_size = _page_size(page_size, DEFAULT_PAGE["hubspot_search" if search else "hubspot_list"],
                                    200 if search else 100)
        self.columns = ["id", *self.properties]

    def pages(self) -> Iterator[Page]:
        return self._search() if self.filters else self._list()

    def _record(self, raw: Mapping[str, Any]) -> Record:
        values = raw.get("properties") or {}
        out: Record = {"id": raw.get("id")}
        for name in self.properties:
            value = values.get(name)
            out[name] = None if value == "" else value
        return out

    def _list(self) -> Iterator[Page]:
        from urllib.parse import quote, urlencode

        after: str | None = None
        base = f"/crm/v3/objects/{quote(self.table, safe='')}"
        while True:
            query = {"limit": self.page_size, "properties": ",".join(self.properties),
                     **({"after": after} if after else {})}
            path = f"{base}?{urlencode(query)}"
            answer = self._call(f"listing {self.table}", self.request, "GET", path, None)
            yield [self._record(r) for r in _list_of(answer, "results", self.system)]
            after = _next_after(answer)
            if not after:
                return

    def _search(self) -> Iterator[Page]:
        from urllib.parse import quote

        path = f"/crm/v3/objects/{quote(self.table, safe='')}/search"
        after, last_id = 0, None
        while True:
            filters = list(self.filters)
            if last_id is not None:
                filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": last_id})
            body = {"filterGroups": [{"filters": filters}], "properties": self.properties, "limit": self.page_size,
                    "after": str(after), "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]}
            answer = self._call(f"searching {self.table}", self.request, "POST", path, body)
            results = _list_of(answer, "results", self.system)
            yield [self._record(r) for r in results]
            following = _next_after(answer)
            if not following or not results:
                return
            if int(following) + self.page_size > HUBSPOT_SEARCH_WINDOW:
                after, last_id = 0, str(results[-1].get("id"))
            else:
                after = int(following)


def _next_after(answer: Any) -> str | None:
    paging = answer.get("paging") if isinstance(answer, dict) else None
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None


def _list_of(answer: Any, name: str, system: str) -> list[Mapping[str, Any]]:
    items = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise ApiError(f"{system} answered without a '{name}' list: {str(answer)[:200]}")
    return [i for i in items if isinstance(i, dict)]


# -- Salesforce ------------------------------------------------------------------------------------


class SalesforceQuery(ApiSource):
    """A SOQL query's records, page after page (``nextRecordsUrl``: 2,000 a page, or the org's batch size).

    Relationship fields (``Owner.Name``) are flattened to dotted columns; the ``attributes`` of each record
    are left out. (Bulk API 2.0 query jobs are not used: the REST query pages just as well, at one request
    per 2,000 records.)

    :param client: ``query(soql)`` and ``query_more(next_records_url)``, from the shell.
    :param object_name: the queried object (``Account``): the staged table's name.
    :param fields: the plain field paths the query selects: the staged columns.
    """

    system = "Salesforce"

    def __init__(self, client: SalesforceClient, soql: str, object_name: str, fields: Sequence[str]) -> None:
        super().__init__()
        self.client = client
        self.soql = soql
        self.table = object_name
        self.columns = list(fields)
        self.key = next((f for f in fields if f.lower() == "id"), None)
        self._relations = {f.lower().rsplit(".", 1)[0] for f in fields if "." in f}

    def pages(self) -> Iterator[Page]:
        answer = self._call("running the query", self.client.query, self.soql)
        while True:
            yield [self._record(r) for r in _list_of(answer, "records", self.system)]
            url = answer.get("nextRecordsUrl") if not answer.get("done", True) else None
            if not url:
                return
            answer = self._call("reading the next page", self.client.query_more, str(url))

    def _record(self, raw: Mapping[str, Any]) -> Record:
        out: Record = {}
        for name, value in flatten(raw, skip=("attributes",)).items():
            if value is None and name.lower() in self._relations:
                continue  # a null lookup: its selected fields (Owner.Name...) stay NULL
            out[name] = value
        return out


# -- Zendesk ---------------------------------------------------------------------------------------

ZENDESK_EXPORTS = ("tickets", "users", "organizations")
# Documented fields of each export, staged even when the export is empty.
_ZENDESK_COLUMNS = {
    "tickets": ["id", "external_id", "subject", "status", "priority", "type", "requester_id", "submitter_id",
                "assignee_id", "organization_id", "group_id", "tags", "created_at", "updated_at"],
    "users": ["id", "name", "email", "external_id", "role", "organization_id", "active", "tags", "created_at",
              "updated_at"],
    "organizations": ["id", "name", "external_id", "domain_names", "group_id", "tags", "created_at", "updated_at"],
}


class ZendeskExport(ApiSource):
    """A Zendesk incremental export: tickets and users by cursor, organizations by time.

    Every record changed since ``start_time`` (epoch seconds; 0: all of them), in the order of their last
    change. An export lists a record again when it changes while the export runs (the staging keeps the
    latest); deleted tickets (status ``deleted``) and organizations (``deleted_at``) are left out of the
    staged table. Nested objects are flattened to dotted columns (``organization_fields.tier``,
    ``via.channel``), lists staged as JSON text.

    :param get: ``(path, params) -> answer``: the shell's GET on the Zendesk account.
    :param page_size: records a request (Zendesk: at most 1,000).
    """

    system = "Zendesk"
    key = "id"

    def __init__(self, get: ZendeskGet, export: str, start_time: int = 0, page_size: int | None = None) -> None:
        super().__init__()
        if export not in ZENDESK_EXPORTS:
            raise ValueError(f"unknown Zendesk export {export!r}: one of {', '.join(ZENDESK_EXPORTS)}")
        self.get = get
        self.table = export
        self.start_time = int(start_time)
        self.page_size = _page_size(page_size, DEFAULT_PAGE["zendesk"], 1000)
        self.columns = list(_ZENDESK_COLUMNS[export])
        self.exclude = ("status", "{col} IS NOT 'deleted'") if export == "tickets" else (
            ("deleted_at", "{col} IS NULL") if export == "organizations" else None)

    def pages(self) -> Iterator[Page]:
        return self._by_time() if self.table == "organizations" else self._by_cursor()

    def _by_cursor(self) -> Iterator[Page]:
        path = f"/api/v2/incremental/{self.table}/cursor.json"
        params: dict[str, Any] = {"start_time": self.start_time, "per_page": self.page_size}
        while True:
            answer = self._call(f"exporting {self.table}", self.get, path, params)
            yield [flatten(r) for r in _list_of(answer, self.table, self.system)]
            if answer.get("end_of_stream", True):
                return
            cursor = answer.get("after_cursor")
            if not cursor:
                raise ApiError(f"Zendesk: the {self.table} export answered neither end_of_stream nor an after_cursor")
            params = {"cursor": cursor, "per_page": self.page_size}

    def _by_time(self) -> Iterator[Page]:
        path = f"/api/v2/incremental/{self.table}.json"
        start = self.start_time
        while True:
            query = {"start_time": start, "per_page": self.page_size}
            answer = self._call(f"exporting {self.table}", self.get, path, query)
            yield [flatten(r) for r in _list_of(answer, self.table, self.system)]
            if answer.get("end_of_stream", True):
                return
            end = int(answer.get("end_time") or 0)
            if end <= start:  # the next page would be this one again
                raise ApiError(f"Zendesk: more than {self.page_size} {self.table} were changed in the same second "
                               f"({start}): the time-based export cannot page past them; raise page_size "
                               "(at most 1000)")
            start = end  # that second again: its records come twice, the staging keeps one of each


# -- records ---------------------------------------------------------------------------------------


def flatten(record: Mapping[str, Any], prefix: str = "", skip: tuple[str, ...] = ()) -> Record:
    """Nested objects to dotted columns (``via.channel``); lists as JSON text; ``skip`` names left out."""
    out: Record = {}
    for name, value in record.items():
        if name in skip:
            continue
        column = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{column}.", skip))
        elif isinstance(value, (list, tuple)):
            out[column] = json.dumps(value, default=str, separators=(",", ":"))
        else:
            out[column] = value
    return out
