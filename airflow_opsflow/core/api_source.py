"""Records from CRM and support APIs, one page at a time: HubSpot objects, Salesforce SOQL, Zendesk exports.

A source yields pages (lists of flat dicts) and never holds more than one; the rest goes to the staging
database (:mod:`airflow_opsflow.core.staging`), which SQL then reads like any table. Only paging, flattening
and waiting are done here, on the plain calls of a client the Airflow shell builds from its connection
(:mod:`airflow_opsflow.hooks.api_clients`), so that this stays free of Airflow and of the client libraries.

A client raises :class:`ApiRetry` for answers worth waiting for (429, 5xx: ``Retry-After`` honoured, else
an exponential back-off) and :class:`ApiError` for the others (a refused query, wrong credentials).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

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

SALESFORCE_BULK_ABOVE = 10_000  # records: a larger result is read through a Bulk API 2.0 query job
BULK_PAGE = 10_000  # records a results read (maxRecords): the page held in memory
BULK_FIRST_POLL = 1.0  # seconds before the first status read; doubled after each, up to BULK_POLL_MAX
BULK_POLL_MAX = 30.0
BULK_TIMEOUT = 3600.0  # seconds of waiting for a query job to complete before it is aborted
_COMPOUND_TYPES = ("address", "location")  # Bulk API 2.0 query jobs cannot select these (REST can)
_NUMBER_TYPES = {"int": int, "long": int, "double": float, "currency": float, "percent": float}
_ZULU = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")


class BulkPage(NamedTuple):
    """One set of a Bulk API 2.0 query job's results."""

    csv: str  # the header row, then one row a record
    locator: str | None  # ``Sforce-Locator`` of the next set; None after the last ("null")
    records: int  # ``Sforce-NumberOfRecords``


class SalesforceClient(Protocol):
    """SOQL through the REST API (``query`` / ``queryMore``), as simple-salesforce offers it; Bulk API 2.0
    query jobs on the same session (``jobs/query``), and ``describe`` to type their CSV values."""

    def query(self, soql: str) -> Any: ...

    def query_more(self, next_records_url: str) -> Any: ...

    def describe(self, object_name: str) -> Any: ...

    def create_query_job(self, soql: str) -> Any: ...

    def query_job(self, job_id: str) -> Any: ...

    def query_job_results(self, job_id: str, locator: str | None, max_records: int) -> BulkPage: ...

    def abort_query_job(self, job_id: str) -> Any: ...


class SalesforceQuery(ApiSource):
    """A SOQL query's records, page after page: REST ``query``/``queryMore`` (``nextRecordsUrl``: 2,000 a
    page, or the org's batch size), or a Bulk API 2.0 query job for a large result.

    The first REST answer says how many records the query has (``totalSize``); above ``bulk_above`` its
    records are dropped and a query job reads them all instead: created (``POST jobs/query``), polled with
    a growing pause until ``JobComplete`` (``Failed``/``Aborted``: :class:`ApiError` with the job's
    ``errorMessage``; still running after ``bulk_timeout`` seconds of waiting: aborted, ApiError), then its
    CSV results read ``bulk_page`` records at a time by ``Sforce-Locator``. Salesforce counts a query job as
    one request however many records it returns (the REST query pays one a 2,000), and calls anything above
    2,000 records a candidate for Bulk API 2.0; a job's polls and queueing cost seconds, so it pays off on
    larger results. A retry after a lost answer to the job's creation makes a second job: harmless for a read.
    The REST pages read the records anyway, from the first answer on, when a selected field is compound
    (``address``, ``location``: query jobs cannot select them), or when Salesforce refuses to create the job
    (a warning names why).

    CSV values are text; each is typed as the REST JSON types it (numbers, booleans; dateTimes in the REST
    form ``...+0000``; empty is NULL), from the field types the object's ``describe`` gives (one request
    per object, parents of relationship columns included), so both ways stage the same rows.

    Relationship fields (``Owner.Name``) are flattened to dotted columns, as the CSV header names them;
    the ``attributes`` of each record are left out.

    :param client: the shell's client (:class:`SalesforceClient`).
    :param object_name: the queried object (``Account``): the staged table's name.
    :param fields: the plain field paths the query selects: the staged columns.
    :param bulk_above: read through a query job when the query has more records than this (0: whenever it
        has any); None: always REST. The caller says whether Bulk API 2.0 can run the query at all.
    """

    system = "Salesforce"

    def __init__(self, client: SalesforceClient, soql: str, object_name: str, fields: Sequence[str],
                 bulk_above: int | None = None, bulk_page: int = BULK_PAGE,
                 bulk_timeout: float = BULK_TIMEOUT) -> None:
        super().__init__()
        self.client = client
        self.soql = soql
        self.table = object_name
        self.columns = list(fields)
        self.key = next((f for f in fields if f.lower() == "id"), None)
        self._relations = {f.lower().rsplit(".", 1)[0] for f in fields if "." in f}
        self.bulk_above = bulk_above
        self.bulk_page = max(1, bulk_page)
        self.bulk_timeout = bulk_timeout
        self.bulk_job: str | None = None  # the query job's id, when the records came through Bulk API 2.0

    def pages(self) -> Iterator[Page]:
        answer = self._call("running the query", self.client.query, self.soql)
        total = answer.get("totalSize") if isinstance(answer, dict) else None
        if self.bulk_above is not None and isinstance(total, int) and total > self.bulk_above:
            types = self._field_types()
            compound = [c for c in self.columns if types.get(c.lower()) in _COMPOUND_TYPES]
            if compound:  # a query job would be refused: the REST pages read them, from the answer in hand
                log.info("Salesforce: %s has %d records (over %d), but %s %s compound (address or geolocation), "
                         "which Bulk API 2.0 query jobs cannot select: reading them through REST pages", self.table,
                         total, self.bulk_above, ", ".join(compound), "is" if len(compound) == 1 else "are")
            else:
                log.info("Salesforce: %s has %d records (over %d): reading them through a Bulk API 2.0 query job",
                         self.table, total, self.bulk_above)
                job_id = self._create_job()
                if job_id is not None:
                    yield from self._bulk(job_id, types)
                    return
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

    # -- Bulk API 2.0 ------------------------------------------------------------------------------

    def _create_job(self) -> str | None:
        """The new query job's id; None when Salesforce refuses to create it (a query Bulk API 2.0 cannot run:
        the REST pages read it instead). Rate limits and transient failures that outlast their retries, and an
        exhausted daily API limit, are errors: REST would meet them as well."""
        try:
            job = self._call("creating a Bulk API 2.0 query job", self.client.create_query_job, self.soql)
        except ApiError as e:
            if isinstance(e.__cause__, ApiRetry) or "REQUEST_LIMIT_EXCEEDED" in str(e):
                raise
            log.warning("Salesforce: the Bulk API 2.0 query job on %s was refused (%s): reading its records "
                        "through REST pages instead", self.table, e)
            return None
        job_id = job.get("id") if isinstance(job, dict) else None
        if not job_id:
            raise ApiError(f"Salesforce answered the creation of a query job without an id: {str(job)[:200]}")
        self.bulk_job = str(job_id)
        return self.bulk_job

    def _bulk(self, job_id: str, types: Mapping[str, str]) -> Iterator[Page]:
        self._wait(job_id)
        header: list[str] | None = None
        typed: list[tuple[str, Callable[[str], Any] | None, str | None]] = []
        locator: str | None = None
        while True:
            page = self._call("reading the query job's results", self.client.query_job_results, job_id, locator,
                              self.bulk_page)
            rows = csv.reader(io.StringIO(page.csv))
            first = next(rows, [])
            records: Page = []
            if header is None:
                header = first
                typed = [(name, _NUMBER_TYPES.get(types.get(name.lower(), "")), types.get(name.lower()))
                         for name in header]
            elif first and first != header:  # a set without the header row
                records.append(_bulk_record(typed, first))
            records.extend(_bulk_record(typed, row) for row in rows if row)
            yield records
            if page.locator is None:
                return
            locator = page.locator

    def _wait(self, job_id: str) -> None:
        waited, pause = 0.0, BULK_FIRST_POLL
        while True:
            pause = min(pause, max(0.0, self.bulk_timeout - waited))
            time.sleep(pause)
            waited += pause
            info = self._call("waiting for the query job", self.client.query_job, job_id)
            state = info.get("state") if isinstance(info, dict) else None
            if state == "JobComplete":
                return
            if state in ("Failed", "Aborted"):
                reason = info.get("errorMessage") or "no errorMessage"
                raise ApiError(f"Salesforce: the Bulk API 2.0 query job {job_id} on {self.table} ended {state}: "
                               f"{reason}")
            if waited >= self.bulk_timeout:
                try:
                    self._call("aborting the query job", self.client.abort_query_job, job_id)
                except ApiError as e:  # it stops on its own in the end; the timeout is what to report
                    log.warning("Salesforce: aborting query job %s failed: %s", job_id, e)
                raise ApiError(f"Salesforce: the Bulk API 2.0 query job {job_id} on {self.table} was still "
                               f"{state} after {waited:.0f} s of waiting; it was aborted")
            pause = min(pause * 2, BULK_POLL_MAX)

    def _field_types(self) -> dict[str, str]:
        """Each selected path's Salesforce type (lower-case path -> ``int``, ``boolean``...), from the describe
        of the object and of the parents its relationship columns reach (each described once)."""
        described: dict[str, dict[str, Mapping[str, Any]]] = {}

        def fields_of(obj: str) -> dict[str, Mapping[str, Any]]:
            if obj.lower() not in described:
                answer = self._call(f"describing {obj}", self.client.describe, obj)
                fields = answer.get("fields") if isinstance(answer, dict) else None
                described[obj.lower()] = {str(f.get("name")).lower(): f for f in fields or []
                                          if isinstance(f, dict)}
            return described[obj.lower()]

        out: dict[str, str] = {}
        for path in self.columns:
            *relations, name = path.lower().split(".")
            objects = [self.table]
            for relation in relations:  # a polymorphic lookup may reach several objects: the first that knows
                lookup = next((f for obj in objects for f in fields_of(obj).values()
                               if str(f.get("relationshipName") or "").lower() == relation), None)
                objects = [str(o) for o in (lookup or {}).get("referenceTo") or []]
            for obj in objects:
                found = fields_of(obj).get(name)
                if found is not None:
                    out[path.lower()] = str(found.get("type") or "")
                    break
        return out


def _bulk_record(typed: list[tuple[str, Callable[[str], Any] | None, str | None]], row: list[str]) -> Record:
    """A CSV row as the REST JSON would give it: empty is NULL, numbers and booleans typed, dateTimes in the
    REST form (``2024-05-01T12:00:00.000+0000``; the CSV writes ``...Z``), other values as text."""
    out: Record = {}
    for (name, number, kind), text in zip(typed, row, strict=False):
        value: Any = None
        if text != "":
            value = text
            if number is not None:
                with contextlib.suppress(ValueError):
                    value = number(text)
            elif kind == "boolean":
                value = text.lower() == "true"
            elif kind == "datetime" and (m := _ZULU.fullmatch(text)):
                value = f"{m[1]}+0000"
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
