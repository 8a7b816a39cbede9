"""The endpoints of :class:`~airflow_opsflow_testing.zendesk_server.FakeZendesk`: parameters in, records, JSON out.

Paths are served under ``/api/v2`` with or without ``.json``. Lists page as Zendesk does: cursor pagination
when ``page[size]`` (at most 100) or ``page[after]``/``page[before]`` is given (``meta.has_more``,
``meta.after_cursor``, ``links.next``), offset pagination otherwise (``page``, ``per_page``, ``next_page``,
``count``). Search pages by offset and stops at 1,000 results (422 ``invalid``, which zenpy turns into the end
of its results); the Search Export API (``search/export``) pages by cursor instead, without that limit (see
:meth:`Endpoints._search_export`). ``tickets/update_many`` and the organization/user bulk writes are jobs
(:mod:`~.zendesk_jobs`). Incremental exports: tickets and users by cursor (``start_time`` or ``cursor``, ``per_page`` up
to 1,000, ``after_cursor``/``after_url``/``end_of_stream``; the cursor stays usable to poll for later changes),
organizations by time (``start_time``, ``end_time``, ``next_page``, ``end_of_stream``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from airflow_opsflow_testing.local_http import JsonReply
from airflow_opsflow_testing.zendesk_jobs import JobQueue
from airflow_opsflow_testing.zendesk_people import Directory
from airflow_opsflow_testing.zendesk_schema import MAX_MANY, JsonDict, User, ZendeskError, bad_request
from airflow_opsflow_testing.zendesk_search import SORTS, parse, search, sort
from airflow_opsflow_testing.zendesk_store import ZendeskStore
from airflow_opsflow_testing.zendesk_tickets import TicketDesk

API = "/api/v2"
MAX_PAGE = 100
MAX_EXPORT_PAGE = 1000
SEARCH_LIMIT = 1000
SEARCH_TOO_FAR = "Invalid search: Requested response size was greater than Search Response Limits"
EXPORT_TYPES = ("ticket", "organization", "user", "group")
CURSOR_LIFETIME = 3600  # seconds: an export cursor expires after an hour
Query = dict[str, list[str]]
Handler = Callable[[re.Match[str], Query, Any, User], JsonReply]
Route = tuple[str, re.Pattern[str], str, Handler]
People = Literal["organization", "user"]


def _arg(q: Query, name: str, default: str | None = None) -> str | None:
    return q[name][-1] if q.get(name) else default


def _int(q: Query, name: str, default: int, upper: int | None = None) -> int:
    raw = _arg(q, name)
    try:
        value = default if raw is None or raw == "" else int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    return max(1, min(value, upper)) if upper is not None else value


def _ids(q: Query, name: str) -> list[str]:
    values = [v.strip() for raw in q.get(name, []) for v in raw.split(",") if v.strip()]
    if len(values) > MAX_MANY:
        raise ZendeskError(400, "TooManyValues", f"{name}: at most {MAX_MANY} values are allowed")
    return values


def _cursor(payload: JsonDict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _uncursor(token: str) -> JsonDict:
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(value, dict):
            return value
    except ValueError:
        pass
    raise bad_request("The cursor is invalid", "InvalidPaginationParameter")


def _records_body(body: Any, kind: People) -> list[Any]:
    plural = f"{kind}s"
    items = body.get(plural) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise bad_request(f"Parameter {plural} is required", "ParameterMissing")
    if len(items) > MAX_MANY:
        raise ZendeskError(400, "TooManyValues", f"{plural}: at most {MAX_MANY} records per request")
    return items


class Endpoints:
    """Mixed into FakeZendesk, which provides ``store``, ``desk``, ``directory``, ``jobs`` and ``url``."""

    store: ZendeskStore
    desk: TicketDesk
    directory: Directory
    jobs: JobQueue

    if TYPE_CHECKING:
        @property
        def url(self) -> str: ...

    def _route_table(self) -> list[Route]:
        """Every endpoint; the operation names are what ``fail_next``/``calls(name=...)`` take."""
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "/tickets", "list_tickets", self._list_tickets),
            ("POST", "/tickets", "create_ticket", self._create_ticket),
            ("GET", "/tickets/show_many", "show_many_tickets", self._show_many_tickets),
            ("PUT", "/tickets/update_many", "update_many_tickets", self._update_many_tickets),
            ("GET", r"/tickets/(?P<id>\d+)", "show_ticket", self._show_ticket),
            ("PUT", r"/tickets/(?P<id>\d+)", "update_ticket", self._update_ticket),
            ("GET", r"/tickets/(?P<id>\d+)/comments", "ticket_comments", self._comments),
            ("GET", "/search", "search", self._search), ("GET", "/search/count", "search_count", self._search),
            ("GET", "/search/export", "search_export", self._search_export),
            ("GET", "/users/me", "me", lambda m, q, b, actor: JsonReply(200, {"user": actor.render(self.url)})),
            ("GET", "/job_statuses", "list_job_statuses", self._list_jobs),
            ("GET", r"/job_statuses/(?P<id>[0-9a-f]+)", "job_status",
             lambda m, q, b, a: JsonReply(200, {"job_status": self.jobs.show(m["id"])})),
            ("GET", "/incremental/tickets/cursor", "incremental_tickets", self._export_cursor),
            ("GET", "/incremental/users/cursor", "incremental_users", self._export_cursor),
            ("GET", "/incremental/organizations", "incremental_organizations", self._export_organizations),
        ]
        for kind in ("organization", "user"):
            table += self._people_routes(kind)
        return [(verb, re.compile(rf"{API}{path}(?:\.json)?$"), name, handler) for verb, path, name, handler in table]

    def _people_routes(self, kind: People) -> list[tuple[str, str, str, Handler]]:
        base, one = f"/{kind}s", rf"/{kind}s/(?P<id>\d+)"
        routes: list[tuple[str, str, str, Handler]] = [
            ("GET", base, f"list_{kind}s", lambda m, q, b, a: self._page(self._all(kind), f"{kind}s", q, m[0])),
            ("POST", base, f"create_{kind}", lambda m, q, b, a: self._write_one(kind, b, "create")),
            ("GET", f"{base}/show_many", f"show_many_{kind}s", lambda m, q, b, a: self._show_many(kind, q)),
            ("POST", f"{base}/create_or_update", f"create_or_update_{kind}",
             lambda m, q, b, a: self._write_one(kind, b, "upsert")),
            ("POST", f"{base}/create_many", f"create_many_{kind}s", lambda m, q, b, a: self._bulk(kind, b, "create")),
            ("PUT", f"{base}/update_many", f"update_many_{kind}s", lambda m, q, b, a: self._update_many(kind, q, b)),
            ("GET", one, f"show_{kind}", lambda m, q, b, a: self._show(kind, m["id"])),
            ("PUT", one, f"update_{kind}", lambda m, q, b, a: self._write_one(kind, b, "update", m["id"])),
            ("GET", f"/{kind}_fields", f"{kind}_fields", lambda m, q, b, a: self._fields(kind)),
        ]
        if kind == "user":  # Zendesk has no create_or_update_many for organizations
            routes.append(("POST", f"{base}/create_or_update_many", "create_or_update_many_users",
                           lambda m, q, b, a: self._bulk(kind, b, "upsert")))
        routes.append(("DELETE", f"{base}/destroy_many", f"destroy_many_{kind}s",
                       lambda m, q, b, a: self._destroy_many(kind, q)))
        return routes

    def _destroy_many(self, kind: People, query: Query) -> JsonReply:
        """``DELETE {organizations,users}/destroy_many?ids=|external_ids=``: a job, as on Zendesk; organizations
        are deleted, users soft-deleted (inactive)."""
        refs = [(name, v) for name in ("ids", "external_ids") for raw in query.get(name, [])
                for v in raw.split(",") if v]

        def item(index: int, name: str, value: str) -> Callable[[], JsonDict]:
            def apply() -> JsonDict:
                with self.store.lock:
                    table = self.directory.table(kind)
                    found = (table.get(int(value)) if value.isdigit() else None) if name == "ids" \
                        else self.directory.by_external_id(kind, value)
                    if found is None:
                        return {"index": index, "status": "Failed", "success": False, "error": "RecordNotFound",
                                "details": "Not found"}
                    if kind == "user":
                        found.active = False
                    else:
                        del table[found.id]
                    return {"id": found.id, "index": index, "action": "delete", "status": "Deleted",
                            "success": True}
            return apply

        job = self.jobs.submit(f"bulk_delete_{kind}s", [item(i, n, v) for i, (n, v) in enumerate(refs)])
        return JsonReply(200, {"job_status": job})

    # --- tickets ------------------------------------------------------------------------------------------

    def _list_tickets(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        external_id = _arg(q, "external_id")
        with self.store.lock:
            tickets = [t.render(self.url) for _, t in sorted(self.store.tickets.items())
                       if external_id is None or t.external_id == external_id]
        return self._page(tickets, "tickets", q, m[0])

    def _create_ticket(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        ticket, audit = self.desk.create(body, actor)
        return JsonReply(201, {"ticket": ticket.render(self.url), "audit": audit},
                         {"Location": f"{self.url}/api/v2/tickets/{ticket.id}.json"})

    def _show_ticket(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        with self.store.lock:
            return JsonReply(200, {"ticket": self.desk.find(m["id"]).render(self.url)})

    def _show_many_tickets(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        with self.store.lock:
            found = [self.store.tickets[int(i)].render(self.url) for i in _ids(q, "ids")
                     if i.isdigit() and int(i) in self.store.tickets]
        return JsonReply(200, {"tickets": found, "next_page": None, "previous_page": None, "count": len(found)})

    def _update_ticket(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        ticket, audit = self.desk.update(m["id"], body, actor)
        return JsonReply(200, {"ticket": ticket.render(self.url), "audit": audit})

    def _update_many_tickets(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        """``PUT tickets/update_many``: ``?ids=`` (100 at most) with ``{"ticket": {...}}`` applied to each, or
        ``{"tickets": [{"id": ..., ...}]}``; a job, one item per ticket, whose results name each ticket by id."""
        batch = body.get("tickets") if isinstance(body, dict) else None
        if isinstance(batch, list):
            if len(batch) > MAX_MANY:
                raise ZendeskError(400, "TooManyValues", f"tickets: at most {MAX_MANY} records per request")
            pairs = [(t.get("id") if isinstance(t, dict) else None, t) for t in batch]
        else:
            ids, data = _ids(q, "ids"), body.get("ticket") if isinstance(body, dict) else None
            if not ids or not isinstance(data, dict):
                raise bad_request("Parameters ids and ticket, or tickets, are required", "ParameterMissing")
            pairs = [(i, data) for i in ids]

        def item(index: int, ticket_id: Any, data: Any) -> Callable[[], JsonDict]:
            return lambda: self.desk.job_item(ticket_id, data, actor, index)

        job = self.jobs.submit("bulk_update_tickets", [item(n, tid, data) for n, (tid, data) in enumerate(pairs)])
        return JsonReply(200, {"job_status": job})

    def _comments(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        with self.store.lock:
            comments = [c.render() for c in self.desk.find(m["id"]).comments]
        if _arg(q, "sort_order") == "desc":
            comments.reverse()
        return self._page(comments, "comments", q, m[0])

    # --- search -------------------------------------------------------------------------------------------

    def _search(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        found = search(self.store.indexed(), _arg(q, "query", "") or "", self.store.now())
        if m[0].removesuffix(".json").endswith("/count"):
            return JsonReply(200, {"count": len(found)})
        if (by := _arg(q, "sort_by")) in SORTS:
            found = sort(found, by or "", _arg(q, "sort_order", "desc") or "desc")
        page, per_page = _int(q, "page", 1), _int(q, "per_page", MAX_PAGE, MAX_PAGE)
        if page < 1 or (page - 1) * per_page >= SEARCH_LIMIT:
            raise ZendeskError(422, "invalid", SEARCH_TOO_FAR)
        results = [{**{k: v for k, v in d.items() if not k.startswith("_")}, "result_type": d["_kind"]}
                   for d in found[(page - 1) * per_page:page * per_page]]
        link = f"{self.url}{m[0]}?"
        keep = {k: v[-1] for k, v in q.items() if k not in ("page", "per_page")}
        more = page * per_page < len(found)
        return JsonReply(200, {
            "results": results, "facets": None, "count": len(found),
            "next_page": link + urlencode({**keep, "page": page + 1, "per_page": per_page}) if more else None,
            "previous_page": link + urlencode({**keep, "page": page - 1, "per_page": per_page}) if page > 1 else None})

    def _search_export(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        """``GET search/export``: one ``filter[type]`` (required), results ordered by ``created_at``, ``page[size]``
        up to 1,000 (100 by default), ``page[after]`` = the last page's ``meta.after_cursor`` (expires after an
        hour); ``links.next`` repeats the query with it, ``links.prev`` is always null. Zendesk's docs call a
        ``type`` in the query an error; zenpy sends ``type:<filter type>`` with ``filter[type]``, so the fake
        refuses a type keyword only when it names another type. Refusals: 400 in the search service's shape
        ``{"error": {"title": "Invalid attribute", "message": ...}}`` (messages in the fake's words)."""
        def refuse(message: str) -> JsonReply:
            return JsonReply(400, {"error": {"title": "Invalid attribute", "message": message}})

        kind, text = _arg(q, "filter[type]"), _arg(q, "query", "") or ""
        if kind not in EXPORT_TYPES:
            return refuse(f"You passed an invalid value for the filter[type] attribute: one of {EXPORT_TYPES}")
        if parse(text).kinds - {kind}:
            return refuse("Remove the type keyword from the query: filter[type] sets it")
        try:
            size = _int(q, "page[size]", MAX_PAGE)
        except ZendeskError:
            return refuse("page[size] must be an integer")
        if not 1 <= size <= MAX_EXPORT_PAGE:
            return refuse(f"page[size] must be from 1 to {MAX_EXPORT_PAGE}")
        now = int(self.store.now().timestamp())
        started, last = now, None
        if after := _arg(q, "page[after]"):
            try:
                state = _uncursor(after)
            except ZendeskError:
                return refuse("You passed an invalid value for the page[after] attribute")
            started, last = int(state.get("t", 0)), (str(state.get("c", "")), int(state.get("i", 0)))
            if now - started > CURSOR_LIFETIME:
                return refuse("The cursor has expired: start the export again")
        found = sorted(search(self.store.indexed(), f"type:{kind} {text}", self.store.now()),
                       key=lambda d: (str(d.get("created_at") or ""), d["id"]))
        if last is not None:
            found = [d for d in found if (str(d.get("created_at") or ""), d["id"]) > last]
        page, more = found[:size], len(found) > size
        cursor = _cursor({"c": page[-1].get("created_at") or "", "i": page[-1]["id"], "t": started}) if page else None
        keep = {k: v[-1] for k, v in q.items() if k != "page[after]"}
        link = f"{self.url}{m[0]}?" + urlencode({**keep, "page[after]": cursor}) if more and cursor else None
        results = [{**{k: v for k, v in d.items() if not k.startswith("_")}, "result_type": d["_kind"]} for d in page]
        return JsonReply(200, {"results": results, "facets": None,
                               "meta": {"has_more": more, "after_cursor": cursor, "before_cursor": None},
                               "links": {"next": link, "prev": None}})

    # --- organizations and users --------------------------------------------------------------------------

    def _all(self, kind: People) -> list[JsonDict]:
        with self.store.lock:
            return [r.render(self.url) for _, r in sorted(self.directory.table(kind).items())]

    def _show(self, kind: People, record_id: str) -> JsonReply:
        with self.store.lock:
            return JsonReply(200, {kind: self.directory.find(kind, record_id).render(self.url)})

    def _show_many(self, kind: People, q: Query) -> JsonReply:
        with self.store.lock:
            table = self.directory.table(kind)
            found = [table[int(i)] for i in _ids(q, "ids") if i.isdigit() and int(i) in table]
            found += [r for e in _ids(q, "external_ids") if (r := self.directory.by_external_id(kind, e))]
            rendered = [r.render(self.url) for r in found]
        return JsonReply(200, {f"{kind}s": rendered, "next_page": None, "previous_page": None,
                               "count": len(rendered)})

    def _write_one(self, kind: People, body: Any, mode: Literal["create", "update", "upsert"],
                   record_id: str | None = None) -> JsonReply:
        data = body.get(kind) if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise bad_request(f"Parameter {kind} is required", "ParameterMissing")
        target = self.directory.find(kind, record_id) if record_id is not None else None
        record, action = self.directory.write(kind, data, mode, target)
        return JsonReply(201 if action == "create" else 200, {kind: record.render(self.url)})

    def _bulk(self, kind: People, body: Any, mode: Literal["create", "update", "upsert"]) -> JsonReply:
        items = _records_body(body, kind)
        verb = {"create": "create", "update": "update", "upsert": "create_or_update"}[mode]
        thunks = [self._item(kind, data, mode, i) for i, data in enumerate(items)]
        return JsonReply(200, {"job_status": self.jobs.submit(f"bulk_{verb}_{kind}s", thunks)})

    def _item(self, kind: People, data: Any, mode: Literal["create", "update", "upsert"], index: int, *,
              target: int | None = None, missing: str | None = None) -> Callable[[], JsonDict]:
        """One job item, applied when the job gets to it: ``data`` written by ``mode``, or onto record
        ``target``; ``missing`` is an id or external id the request named that matches no record."""
        def apply() -> JsonDict:
            if missing is not None:
                return {"index": index, "id": missing, "status": "Failed", "success": False,
                        "error": "RecordNotFound", "details": "Not found"}
            if target is not None:
                return self.directory.job_item(kind, {**data, "id": target}, "update", index)
            return self.directory.job_item(kind, data, mode, index)
        return apply

    def _update_many(self, kind: People, q: Query, body: Any) -> JsonReply:
        """``{"organizations": [...]}`` (each by id or external_id), or ``?ids=``/``?external_ids=`` with
        ``{"organization": {...}}`` applied to each."""
        if isinstance(body, dict) and isinstance(body.get(f"{kind}s"), list):
            return self._bulk(kind, body, "update")
        data = body.get(kind) if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise bad_request(f"Parameter {kind}s or {kind} is required", "ParameterMissing")
        thunks = []
        with self.store.lock:
            for i, ref in enumerate(_ids(q, "ids")):
                found = self.directory.table(kind).get(int(ref)) if ref.isdigit() else None
                thunks.append(self._item(kind, data, "update", i, target=found and found.id,
                                         missing=None if found else ref))
            for i, ref in enumerate(_ids(q, "external_ids"), start=len(thunks)):
                found = self.directory.by_external_id(kind, ref)
                thunks.append(self._item(kind, data, "update", i, target=found and found.id,
                                         missing=None if found else ref))
        return JsonReply(200, {"job_status": self.jobs.submit(f"bulk_update_{kind}s", thunks)})

    def _fields(self, kind: People) -> JsonReply:
        with self.store.lock:
            fields = [f.render(kind, self.url) for f in self.store.fields[kind].values()]
        return JsonReply(200, {f"{kind}_fields": fields, "next_page": None, "previous_page": None,
                               "count": len(fields)})

    def _list_jobs(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        with self.jobs.lock:
            self.jobs.tick()
            jobs = [self.jobs.render(j) for j in reversed(self.jobs.jobs.values())]
        return JsonReply(200, {"job_statuses": jobs, "meta": {"has_more": False, "after_cursor": None,
                                                               "before_cursor": None},
                               "links": {"next": None, "prev": None}})

    # --- incremental exports ------------------------------------------------------------------------------

    def _export_cursor(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        kind: Literal["ticket", "user"] = "ticket" if "/tickets/" in m[0] else "user"
        per_page = _int(q, "per_page", MAX_EXPORT_PAGE, MAX_EXPORT_PAGE)
        token = _arg(q, "cursor")
        if token:
            state = _uncursor(token)
            after, start = int(state.get("s", 0)), int(state.get("t", 0))
        elif _arg(q, "start_time") is not None:
            after, start = 0, _int(q, "start_time", 0)
        else:
            raise bad_request("start_time or cursor is required")
        changed = [(s, r) for s, r in self.store.changed_since(kind, after) if r.updated_at.timestamp() >= start]
        page = changed[:per_page]
        cursor = _cursor({"s": page[-1][0] if page else after, "t": start})
        path = f"{self.url}{API}/incremental/{kind}s/cursor.json?"
        return JsonReply(200, {f"{kind}s": [r.render(self.url) for _, r in page],
                               "after_url": path + urlencode({"cursor": cursor}), "after_cursor": cursor,
                               "before_url": None, "before_cursor": None, "end_of_stream": len(changed) <= per_page})

    def _export_organizations(self, m: re.Match[str], q: Query, body: Any, actor: User) -> JsonReply:
        if _arg(q, "start_time") is None:
            raise bad_request("start_time is required")
        start, per_page = _int(q, "start_time", 0), _int(q, "per_page", MAX_EXPORT_PAGE, MAX_EXPORT_PAGE)
        with self.store.lock:
            changed = sorted((o for o in self.store.organizations.values() if o.updated_at.timestamp() >= start),
                             key=lambda o: (o.updated_at, o.id))
            page = [o.render(self.url) for o in changed[:per_page]]
            end = int(changed[:per_page][-1].updated_at.timestamp()) if page else start
        return JsonReply(200, {"organizations": page, "count": len(page), "end_time": end,
                               "end_of_stream": len(changed) <= per_page,
                               "next_page": f"{self.url}{API}/incremental/organizations.json?"
                                            + urlencode({"start_time": end, "per_page": per_page})})

    # --- paging -------------------------------------------------------------------------------------------

    def _page(self, items: list[JsonDict], key: str, q: Query, path: str) -> JsonReply:
        link = f"{self.url}{path}?"
        if any(k.startswith("page[") for k in q):
            size = _int(q, "page[size]", MAX_PAGE)
            if size > MAX_PAGE:
                raise bad_request(f"page[size] must be less than or equal to {MAX_PAGE}",
                                  "InvalidPaginationParameter")
            after, before = _arg(q, "page[after]"), _arg(q, "page[before]")
            if after:
                last = int(_uncursor(after).get("id", 0))
                rest = [i for i in items if i["id"] > last]
                page, more = rest[:size], len(rest) > size
            elif before:
                first = int(_uncursor(before).get("id", 0))
                rest = [i for i in items if i["id"] < first]
                page, more = rest[-size:], len(rest) > size
            else:
                page, more = items[:size], len(items) > size
            a = _cursor({"id": page[-1]["id"]}) if page else None
            b = _cursor({"id": page[0]["id"]}) if page else None
            keep = {k: v[-1] for k, v in q.items() if k not in ("page[after]", "page[before]")}
            return JsonReply(200, {key: page, "meta": {"has_more": more, "after_cursor": a, "before_cursor": b},
                                   "links": {"next": link + urlencode({**keep, "page[after]": a}) if more else None,
                                             "prev": link + urlencode({**keep, "page[before]": b}) if b else None}})
        number, per_page = _int(q, "page", 1), _int(q, "per_page", MAX_PAGE, MAX_PAGE)
        keep = {k: v[-1] for k, v in q.items() if k not in ("page", "per_page")}
        more = number * per_page < len(items)
        return JsonReply(200, {
            key: items[(number - 1) * per_page:number * per_page], "count": len(items),
            "next_page": link + urlencode({**keep, "page": number + 1, "per_page": per_page}) if more else None,
            "previous_page": link + urlencode({**keep, "page": number - 1, "per_page": per_page})
            if number > 1 else None})
