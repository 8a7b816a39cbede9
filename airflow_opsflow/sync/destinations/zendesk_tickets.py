"""Zendesk: rank the open tickets of synced organizations (``ZendeskObjects("organization_tickets")``).

The operational-analytics loop: the warehouse models which accounts matter (total spend, say), the
organizations sync writes that rank to the organization (``organization_fields.tier``), and support works
the high-ranked accounts first. Zendesk ranks a *new* ticket itself, with a trigger on the organization's
field ("Organization > Tier is platinum" -> "Priority: urgent", "Add tags: vip"); triggers run when a ticket
is created or updated, never because its organization changed. This sync does the rest: when an account's
rank changes, it re-ranks the tickets its organization already has open.

One record per organization, keyed by the organization's ``external_id``; mapped ``priority`` (low, normal,
high, urgent; empty: left as it is) and/or ``tags`` (added with ``additional_tags``; a ticket's other tags
are never removed). The engine sends a record only when its row changed, so an unchanged account costs no
request. For each record sent:

1. The organization's id: the record's ref (kept from an earlier run), else ``organizations/show_many?
   external_ids=`` (100 a request). An organization Zendesk does not have is ``missing``. A ref outlives an
   organization deleted and created again under the same external id: clear the key's state to look it up.
2. Its open tickets: the Search Export API, ``GET search/export?query=organization:<id> status<solved&
   filter[type]=ticket``, ``page[size]=100``, following ``meta.after_cursor`` (no ``type:`` in the query:
   Zendesk documents it as an error next to ``filter[type]``). Search reads an index that lags writes by
   seconds to minutes: a ticket opened meanwhile is ranked by the trigger, one whose latest edit is not
   indexed yet is judged on its indexed state. The export is limited to 100 requests a minute per
   account (on top of the account's budget), paced here.
3. Tickets already at the priority and carrying every tag are skipped; the others get ``PUT
   tickets/update_many?ids=`` (100 ids) with ``{"ticket": {"priority": ..., "additional_tags": [...]}}``, the
   tickets of every organization of the batch that want the same change in one job, polled like the other
   Zendesk bulk jobs. An item refused because the ticket was closed meanwhile (``Status: closed prevents
   ticket update``) or deleted is no failure: there is nothing left to rank. Any other refused item, or a
   job that fails or does not finish, is its organization's error, sent again by the next run.

Sending a record twice (a lost answer, a retry, a resumed run) sets the same values again: nothing is
created, so repeats are harmless. When a request fails transiently the engine sends the batch again; what
this client already learned or applied for it (ids, ticket lists, ticket results) is reused, so the
retry resumes rather than restarts. A job of a killed run may still be queued when the next run writes,
and Zendesk does not promise jobs finish in order: before re-sending a record a killed run left unanswered,
the run waits for the account's queued and working jobs (as the organizations sync does).

Modes: ``upsert`` and ``update`` re-rank on every change of the row (nothing is ever created);
``insert`` ranks an organization's tickets once, when its row first appears, and never re-ranks.
``mirror`` is refused: a row leaving the source has nothing to undo (tickets keep the priority they were
given, and may have been re-prioritised by agents since).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationClient, Operation, Outcome, Record
from airflow_opsflow.sync.destinations.transport import HttpTransport
from airflow_opsflow.sync.destinations.zendesk import DONE, MAX_JOBS, MAX_MANY, JobWaiting, _as_list, _details
from airflow_opsflow.sync.ratelimit import RateLimiter

PRIORITIES = ("low", "normal", "high", "urgent")
OPEN_STATUSES = ("new", "open", "pending", "hold")  # Zendesk's statuses before solved: status<solved
FIELDS = frozenset({"external_id", "priority", "tags"})
SEARCH_EXPORT_PER_MINUTE = 100  # Zendesk's limit for search/export, per account
SEARCH_EXPORT_BURST = 10  # requests sent at once before pacing (a rolling minute still sees at most 100)
PAGE_SIZE = 100  # Zendesk recommends 100 results per export page (1,000 at most)
CLOSED = "closed prevents ticket update"


@dataclass(frozen=True, slots=True)
class Change:
    """What a record asks of its organization's open tickets."""

    priority: str | None
    tags: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        ticket: dict[str, Any] = {}
        if self.priority is not None:
            ticket["priority"] = self.priority
        if self.tags:
            ticket["additional_tags"] = list(self.tags)
        return {"ticket": ticket}

    def done(self, ticket: dict[str, Any]) -> bool:
        """The ticket has it already (nothing to send for it)."""
        if self.priority is not None and ticket.get("priority") != self.priority:
            return False
        have = ticket.get("tags") or []
        return all(tag in have for tag in self.tags)


@dataclass(frozen=True, slots=True)
class TicketResult:
    """One ticket's item of an update job: ``error`` None when updated; ``gone``: refused because the ticket
    is closed or deleted, which leaves nothing to rank."""

    error: str | None = None
    gone: bool = False


def parse_change(fields: dict[str, Any]) -> tuple[Change | None, str | None]:
    """The record's change, or the reason it cannot be sent (a per-record error)."""
    raw = fields.get("priority")
    priority: str | None = None
    if raw is not None and not (isinstance(raw, str) and not raw.strip()):
        priority = raw.strip().lower() if isinstance(raw, str) else None
        if priority not in PRIORITIES:
            return None, f"priority must be one of {', '.join(PRIORITIES)} (Zendesk's), got {raw!r}"
    # Zendesk keeps tags lower-case and splits one at a space: compare and send them as it will hold them
    tags = tuple(dict.fromkeys(str(t).strip().lower() for t in _as_list(fields.get("tags")) if str(t).strip()))
    spaced = [t for t in tags if any(c.isspace() for c in t)]
    if spaced:
        return None, f"tags cannot contain spaces (Zendesk would split them): {spaced}"
    return Change(priority, tags), None


class ZendeskTicketsClient(JobWaiting, DestinationClient):
    """Re-rank the open tickets of the organizations a sync's records name. The engine side of
    :class:`~airflow_opsflow.destinations.zendesk.ZendeskObjects` with ``object_type="organization_tickets"``.

    :param transport: the Support API (base URL ``https://<subdomain>.zendesk.com/api/v2``, credentials, the
        account's request budget).
    :param open_statuses: the ticket statuses ranked (some of new, open, pending, hold).
    :param job_timeout: seconds to wait for one job to finish.
    :param first_poll: seconds before a job's first poll (doubling, at most ``max_poll``).
    :param max_poll: the longest wait between two polls.
    :param max_jobs: this destination's jobs queued or running at once.
    :param search_limiter: the Search Export budget (default: Zendesk's 100 a minute).
    """

    name: ClassVar[str] = "Zendesk organization tickets"
    max_batch: ClassVar[int] = MAX_MANY
    operations: ClassVar[frozenset[str]] = frozenset({"upsert", "insert", "update"})

    def __init__(self, transport: HttpTransport, *, open_statuses: Sequence[str] = OPEN_STATUSES,
                 job_timeout: float = 600.0, first_poll: float = 0.2, max_poll: float = 5.0,
                 max_jobs: int = MAX_JOBS, search_limiter: RateLimiter | None = None) -> None:
        statuses = tuple(dict.fromkeys(open_statuses))
        if not statuses or any(s not in OPEN_STATUSES for s in statuses):
            raise ValueError(f"Zendesk open_statuses must be some of {OPEN_STATUSES}, got {tuple(open_statuses)}")
        if job_timeout <= 0 or first_poll <= 0 or max_poll < first_poll:
            raise ValueError("Zendesk job_timeout and first_poll must be > 0, and max_poll >= first_poll")
        self.transport = transport
        self.open_statuses = statuses
        self.job_timeout, self.first_poll, self.max_poll = job_timeout, first_poll, max_poll
        self._jobs = threading.BoundedSemaphore(max(1, min(max_jobs, MAX_JOBS)))
        self._settled, self._settle_lock = False, threading.Lock()
        if search_limiter is None:
            search_limiter = RateLimiter(SEARCH_EXPORT_PER_MINUTE, 60.0)
            search_limiter.capacity = float(SEARCH_EXPORT_BURST)
        self.search_limiter = search_limiter
        # What a batch sent again after a transient error can reuse (dropped once its records are answered).
        self._lock = threading.Lock()
        self._org_ids: dict[str, int | None] = {}  # lower-cased external id -> organization id (None: absent)
        self._listed: dict[int, list[dict[str, Any]]] = {}  # organization id -> its open tickets
        self._applied: dict[tuple[int, Change], TicketResult] = {}  # (ticket id, change) -> its job's answer

    # -- the contract --------------------------------------------------------------------------------

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        problems = []
        if "external_id" not in fields:
            problems.append("external_id must be mapped (the organization's, which finds it)")
        if "priority" not in fields and "tags" not in fields:
            problems.append("map priority and/or tags: they are what is set on the organization's open tickets")
        other = sorted(set(fields) - FIELDS)
        if other:
            problems.append(f"only external_id, priority and tags can be mapped, not {other} (organization "
                            "fields belong to the organizations sync)")
        if mode == "mirror":
            problems.append("mode='mirror' is refused: a row leaving the source has nothing to undo (its tickets "
                            "keep their priority); use mode='upsert'")
        return problems

    def fingerprint(self) -> Any:
        return ["zendesk", "organization_tickets", list(self.open_statuses)]

    def requests_for(self, op: Operation, records: int, batch_size: int) -> int:
        batches = -(-records // batch_size)
        # At least: a look-up a batch, an export page an organization, one job and one poll a batch.
        return 3 * batches + records

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        self._settle(records)
        if op == "delete":
            return [Outcome("error", "organization_tickets does not delete")] * len(records)
        out: list[Outcome | None] = [None] * len(records)
        wanted: dict[int, Change] = {}
        for i, r in enumerate(records):
            change, problem = parse_change(r.fields or {})
            if not self._ext(r):
                out[i] = Outcome("error", "external_id is empty: the organization is found by it")
            elif change is None:
                out[i] = Outcome("error", problem, ref=r.ref)
            elif change.priority is None and not change.tags:
                out[i] = Outcome(ref=r.ref)  # nothing to set: no request
            else:
                wanted[i] = change
        orgs = self._organizations([records[i] for i in wanted])
        org_of: dict[int, int] = {}
        for i in list(wanted):
            org = orgs.get(self._key(records[i]))
            if org is None:
                out[i] = Outcome("missing")
                del wanted[i]
            else:
                org_of[i] = org
        todo: dict[Change, list[int]] = {}  # change -> ticket ids (in the order found)
        needs: dict[int, list[tuple[int, Change]]] = {}  # record -> its tickets' (id, change)
        for i, change in wanted.items():
            for ticket in self._open_tickets(org_of[i]):
                if change.done(ticket):
                    continue
                tid = int(ticket["id"])
                needs.setdefault(i, []).append((tid, change))
                ids = todo.setdefault(change, [])
                if tid not in ids:
                    ids.append(tid)
        for change, ids in todo.items():
            with self._lock:
                left = [t for t in ids if (t, change) not in self._applied]
            for start in range(0, len(left), MAX_MANY):
                results = self._update(change, left[start:start + MAX_MANY])
                with self._lock:
                    self._applied.update(((t, change), res) for t, res in results.items())
        with self._lock:
            for i in wanted:
                lost = TicketResult("its answer was not kept (the organization is named twice?): retried next run")
                out[i] = self._outcome(org_of[i], [(t, self._applied.get((t, c), lost)) for t, c in needs.get(i, [])])
            for i in wanted:  # answered: nothing of it is kept for a re-send
                self._listed.pop(org_of[i], None)
                for pair in needs.get(i, []):
                    self._applied.pop(pair, None)
        return [o if o is not None else Outcome("error", "not sent") for o in out]

    def close(self) -> None:
        self.transport.close()

    # -- steps ---------------------------------------------------------------------------------------

    @staticmethod
    def _ext(r: Record) -> str:
        value = (r.fields or {}).get("external_id")
        return "" if value is None else str(value)

    def _key(self, r: Record) -> str:
        return self._ext(r).lower()

    def _organizations(self, records: Sequence[Record]) -> dict[str, int | None]:
        """Organization ids by lower-cased external id: from refs, from this run, else looked up."""
        found: dict[str, int | None] = {}
        unknown: set[str] = set()
        with self._lock:
            for r in records:
                key = self._key(r)
                if r.ref and r.ref.isdigit():
                    found[key] = int(r.ref)
                elif key in self._org_ids:
                    found[key] = self._org_ids[key]
                else:
                    unknown.add(self._ext(r))
        wanted = sorted(unknown)
        # show_many splits its list at commas: an external id holding one is never found (it reads "missing")
        for chunk in _chunks([e for e in wanted if "," not in e]):
            query = urlencode({"external_ids": ",".join(chunk)})
            body = self.transport.request("GET", f"organizations/show_many?{query}").json() or {}
            for org in body.get("organizations") or []:
                if isinstance(org, dict) and org.get("external_id") is not None and org.get("id") is not None:
                    found[str(org["external_id"]).lower()] = int(org["id"])
        with self._lock:
            self._org_ids.update((e.lower(), found.get(e.lower())) for e in wanted)
        return found

    def _open_tickets(self, org_id: int) -> list[dict[str, Any]]:
        """The organization's open tickets, as the search index has them (kept until the record is answered)."""
        with self._lock:
            if org_id in self._listed:
                return self._listed[org_id]
        params: dict[str, Any] = {"query": f"organization:{org_id} status<solved", "filter[type]": "ticket",
                                  "page[size]": PAGE_SIZE}
        tickets: dict[int, dict[str, Any]] = {}
        while True:
            self.search_limiter.acquire()
            body = self.transport.request("GET", f"search/export?{urlencode(params)}").json() or {}
            for t in body.get("results") or []:
                # organization:<id> also matches an organization *named* like the id: keep its own tickets.
                if (isinstance(t, dict) and t.get("result_type", "ticket") == "ticket" and t.get("id") is not None
                        and t.get("organization_id") == org_id and t.get("status") in self.open_statuses):
                    tickets[int(t["id"])] = t
            meta = body.get("meta") or {}
            after = meta.get("after_cursor")
            if not meta.get("has_more") or not after:
                break
            params["page[after]"] = after
        listed = list(tickets.values())
        with self._lock:
            self._listed[org_id] = listed
        return listed

    def _update(self, change: Change, ids: list[int]) -> dict[int, TicketResult]:
        """One ``update_many`` job for these tickets (at most 100): each ticket's result."""
        query = urlencode({"ids": ",".join(str(t) for t in ids)})
        with self._jobs:  # held while the job is queued or running
            answer = self.transport.request("PUT", f"tickets/update_many?{query}", change.body())
            job = (answer.json() or {}).get("job_status") if answer.body else None
            if not isinstance(job, dict) or not job.get("id"):
                raise BatchRejected(f"HTTP {answer.status}: Zendesk answered no job_status ({answer.snippet()})")
            job = self._wait(job)
        return self._results(job, ids)

    def _results(self, job: dict[str, Any], ids: list[int]) -> dict[int, TicketResult]:
        """Each ticket's item: by id (Zendesk's bulk update results name the ticket), else by index."""
        raw = job.get("results")
        status = job.get("status")
        if status == "completed" and isinstance(raw, dict) and raw.get("success") is True:
            return dict.fromkeys(ids, TicketResult())
        items = [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
        got: dict[int, dict[str, Any]] = {}
        for pos, res in enumerate(items):
            index = res.get("index")
            tid: Any = res.get("id")
            if not isinstance(tid, int) and isinstance(index, int) and 0 <= index < len(ids):
                tid = ids[index]
            elif not isinstance(tid, int) and len(items) == len(ids):
                tid = ids[pos]
            if isinstance(tid, int):
                got.setdefault(tid, res)
        why = (f"Zendesk job {job.get('id')} {status or 'unknown'}"
               + (f": {job['message']}" if job.get("message") else "")
               + ("" if status in DONE else f" after {self.job_timeout:g} s (retried next run)"))
        return {t: self._classify(got.get(t), why) for t in ids}

    @staticmethod
    def _classify(res: dict[str, Any] | None, why: str) -> TicketResult:
        if res is None:
            return TicketResult(f"{why}: no result for this ticket")
        error = res.get("error") or res.get("errors")
        status = str(res.get("status") or "")
        if error or res.get("success") is False or status.lower() == "failed":
            details = _details(res.get("details") or res.get("description"))
            text = f"{error or status or 'Failed'}: {details}" if details else str(error or status or "Failed")
            return TicketResult(text, gone=CLOSED in text.lower() or error == "RecordNotFound")
        return TicketResult()

    @staticmethod
    def _outcome(org_id: int, results: list[tuple[int, TicketResult]]) -> Outcome:
        errors = [f"ticket {t}: {res.error}" for t, res in results if res.error and not res.gone]
        if not errors:
            return Outcome(ref=str(org_id))
        more = f" (and {len(errors) - 1} more tickets)" if len(errors) > 1 else ""
        return Outcome("error", errors[0] + more, ref=str(org_id))


URL_IDS = 6_000  # characters of ids in one show_many URL: 100 long external ids would pass common URL limits


def _chunks(ids: list[str]) -> list[list[str]]:
    """``ids`` in show_many lists of at most MAX_MANY ids and URL_IDS characters."""
    out: list[list[str]] = []
    size = 0
    for i in ids:
        if not out or len(out[-1]) >= MAX_MANY or size + len(i) + 1 > URL_IDS:
            out.append([])
            size = 0
        out[-1].append(i)
        size += len(i) + 1
    return out
