"""Zendesk Support organizations and users through the bulk API, where every write is a background job.

A bulk request answers a ``job_status`` at once; the job's per-item ``results`` (polled at
``job_statuses/{id}``) say which records were written. A record is confirmed only when its result says
so; an item's error (``RecordInvalid: tier: bronze is not a valid option``) goes back to its key, which the
next run sends again. Records are identified by ``external_id`` (it must be mapped).

* users, upsert: ``POST users/create_or_update_many``, Zendesk matching each by ``external_id`` (then
  email): a batch sent twice (its answer lost) updates the second time.
* organizations, upsert: Zendesk has no ``create_or_update_many`` for them. Records whose Zendesk id the
  state store holds (the ref of an earlier confirmed write) go to ``PUT organizations/update_many`` by id,
  the others to ``POST organizations/create_many``: one job per batch as a rule. Organization external ids
  and names are unique, so a create of one that exists already (a re-send after a lost answer, a killed
  run's write, one made by hand) is refused, never duplicated: the refused items are looked up by external
  id (``show_many?external_ids=``) and those found are updated. An update of one deleted meanwhile creates it.
* insert: creates; a record that exists already is left as it is (users are looked up first: Zendesk
  does not promise their external ids are unique).
* update: ``update_many`` by id (looked up by external id when not known yet); a record Zendesk does not
  have is ``missing``.
* delete (mirror): ``destroy_many`` by id (users are soft-deleted, as Zendesk deletes them), by external
  id for a record a killed run may have created before its id was recorded. Absent already: done.

Mapped fields other than Zendesk's own (``name``, ``notes``, ``tags``, ``email``...) go to the record's
``organization_fields`` / ``user_fields`` (``user_fields.notes`` names a custom field that shadows a
standard one). A job is polled with backoff, sooner when its progress says it is nearly done, for at most
``job_timeout`` seconds; 429s and 5xx answers to polls are waited out there (a poll's error must not
re-send the batch). A job that fails, is killed or does not finish in time leaves its unconfirmed records
in error, retried by the next run: sending them again at once would only queue more work on a Zendesk that
is behind. At most ``max_jobs`` jobs of this sync run at once (Zendesk queues 30 per account). Before
re-sending a record a killed run left unanswered, a run waits for the account's jobs still queued or working
(one ``job_statuses`` listing, only on such runs): Zendesk does not promise jobs run in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from airflow_opsflow.sync.destinations.base import (
    BatchRejected,
    DestinationClient,
    Operation,
    Outcome,
    Record,
    TransientError,
)
from airflow_opsflow.sync.destinations.transport import HttpTransport

log = logging.getLogger(__name__)

MAX_MANY = 100  # records per create_many/update_many/create_or_update_many/destroy_many, ids per show_many
MAX_JOBS = 30  # jobs queued or running per Zendesk account
BY_EXTERNAL_ID = "@"  # a ref holding the external id, not Zendesk's id (ids are numeric)
DONE = frozenset({"completed", "failed", "killed"})
SETTLE_PAGES = 10  # pages of job_statuses read when looking for a killed run's jobs (100 a page, newest first)

ORGANIZATION_FIELDS = frozenset({"name", "external_id", "details", "notes", "domain_names", "group_id",
                                 "shared_tickets", "shared_comments", "tags"})
USER_FIELDS = frozenset({
    "name", "email", "external_id", "role", "organization_id", "phone", "details", "notes", "tags", "alias",
    "locale", "locale_id", "time_zone", "iana_time_zone", "signature", "verified", "moderator",
    "ticket_restriction", "only_private_comments", "restricted_agent", "suspended", "custom_role_id",
    "default_group_id", "remote_photo_url", "shared_phone_number", "skip_verify_email"})
LIST_FIELDS = frozenset({"tags", "domain_names"})


@dataclass(frozen=True, slots=True)
class _Kind:
    plural: str
    singular: str
    standard: frozenset[str]

    @property
    def custom(self) -> str:
        return f"{self.singular}_fields"


KINDS = {"organizations": _Kind("organizations", "organization", ORGANIZATION_FIELDS),
         "users": _Kind("users", "user", USER_FIELDS)}


@dataclass(frozen=True, slots=True)
class _Result:
    """One item of a job: written (with Zendesk's id), or refused by Zendesk (``item``: its own result said
    so, rather than the whole job failing), or not found."""

    ok: bool
    zid: str | None = None
    error: str | None = None
    item: bool = False
    not_found: bool = False


def _zid(ref: str | None) -> int | None:
    """Zendesk's id in a ref (None for a ref by external id, or none)."""
    return int(ref) if ref and ref.isdigit() else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):  # "gold vip" or "gold,vip": Zendesk keeps tags without spaces
        return value.replace(",", " ").split()
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _same(current: Any, wanted: Any, name: str) -> bool:
    """Zendesk holds ``wanted`` as ``current``: numbers as numbers, external ids in any case, tags as lists."""
    if current == wanted:
        return True
    if current is None or wanted is None or isinstance(current, bool) or isinstance(wanted, bool):
        return False
    if name in LIST_FIELDS:
        return isinstance(current, list) and current == _as_list(wanted)
    if name == "external_id":
        return str(current).lower() == str(wanted).lower()
    try:
        return Decimal(str(current)) == Decimal(str(wanted))
    except InvalidOperation:
        return False


def _details(value: Any) -> str:
    if isinstance(value, dict):  # {"field": [{"description": ...}]}, as a 422's details
        return "; ".join(str(e.get("description", e)) if isinstance(e, dict) else str(e)
                         for errors in value.values() for e in (errors if isinstance(errors, list) else [errors]))
    return " ".join(str(value or "").split())


class JobWaiting:
    """Waiting for a Zendesk background job (the organization/user client's and the ticket client's)."""

    transport: HttpTransport
    job_timeout: float
    first_poll: float
    max_poll: float
    _settled: bool  # set by each client's __init__ (one lock and flag per client, not per class)
    _settle_lock: threading.Lock

    def _settle(self, records: Sequence[Record]) -> None:
        """Before the first write of a record whose earlier write was never answered (``Record.pending``: a
        killed run's), wait for the account's jobs still queued or working: Zendesk runs jobs in no promised
        order, so a killed run's job could otherwise write older values after this run's newer ones. Runs
        without such records pay nothing; the account's other jobs are waited for too (their type does not
        say which object they write), each for at most ``job_timeout``."""
        if self._settled or not any(r.pending for r in records):
            return
        with self._settle_lock:
            if self._settled:
                return
            running: list[dict[str, Any]] = []
            path = "job_statuses?page[size]=100"
            for _ in range(SETTLE_PAGES):
                body = self.transport.request("GET", path).json() or {}
                running += [j for j in body.get("job_statuses") or []
                            if isinstance(j, dict) and j.get("id") and j.get("status") in ("queued", "working")]
                meta = body.get("meta") or {}
                if not meta.get("has_more") or not meta.get("after_cursor"):
                    break
                path = f"job_statuses?{urlencode({'page[size]': 100, 'page[after]': meta['after_cursor']})}"
            deadline = time.monotonic() + self.job_timeout  # in all: the account may hold others' jobs too
            for job in running:
                log.warning("%s: Zendesk job %s (%s), started earlier (by a run that was stopped?), is still %s: "
                            "waiting for it before writing", getattr(self, "name", "Zendesk"), job["id"],
                            job.get("job_type") or "bulk", job.get("status"))
                left = deadline - time.monotonic()
                seen = self._wait(job, left) if left > 0 else job
                if seen.get("status") not in DONE:  # writing now could be overwritten by it: not this time
                    raise TransientError(f"Zendesk job {job['id']}, started earlier, is still {seen.get('status')} "
                                         f"after {self.job_timeout:g} s of waiting for the account's earlier jobs; "
                                         "the records a stopped run left unanswered are sent again later")
            self._settled = True

    def _wait(self, job: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job is done, or ``timeout`` (default ``job_timeout``) passed: then the job as last
        seen."""
        started = time.monotonic()
        limit = self.job_timeout if timeout is None else timeout
        delay = self.first_poll
        path = f"job_statuses/{quote(str(job['id']), safe='')}"
        while job.get("status") not in DONE:
            left = limit - (time.monotonic() - started)
            if left <= 0:
                return job
            time.sleep(min(delay, left))
            try:
                seen = (self.transport.request("GET", path).json() or {}).get("job_status")
            except TransientError as e:  # a poll is harmless to repeat: never let it re-send the batch
                if e.rate_limited:
                    self.transport.limiter.pause(e.retry_after if e.retry_after is not None else delay)
                    delay = self.first_poll
                else:
                    delay = min(self.max_poll, max(delay * 2, e.retry_after or 0.0))
                job = {**job, "message": f"its status could not be read: {e}"}
                continue
            except BatchRejected as e:  # e.g. 404: the status is gone
                return {**job, "status": "unreadable", "message": str(e)}
            if isinstance(seen, dict):
                job = seen
            delay = self._next_delay(job, delay, time.monotonic() - started)
        return job

    def _next_delay(self, job: dict[str, Any], delay: float, elapsed: float) -> float:
        total, progress = job.get("total"), job.get("progress")
        if isinstance(total, int) and isinstance(progress, int) and 0 < progress < total:
            # Working: as long again as it took per item so far, for the items left.
            return min(self.max_poll, max(self.first_poll, elapsed * (total - progress) / progress))
        return min(self.max_poll, delay * 2)


class ZendeskObjectsClient(JobWaiting, DestinationClient):
    """Write records as Zendesk organizations or users. The engine side of
    :class:`~airflow_opsflow.destinations.zendesk.ZendeskObjects` (its declaration, which opens it).

    :param transport: the Support API (base URL ``https://<subdomain>.zendesk.com/api/v2``, credentials, the
        account's request budget).
    :param object_type: ``organizations`` or ``users``.
    :param job_timeout: seconds to wait for one job to finish.
    :param first_poll: seconds before a job's first poll (doubling, at most ``max_poll``).
    :param max_poll: the longest wait between two polls.
    :param max_jobs: this destination's jobs queued or running at once.
    """

    name: ClassVar[str] = "Zendesk"
    max_batch: ClassVar[int] = MAX_MANY
    plans_refs: ClassVar[bool] = True

    def __init__(self, transport: HttpTransport, object_type: str, *, job_timeout: float = 600.0,
                 first_poll: float = 0.2, max_poll: float = 5.0, max_jobs: int = MAX_JOBS) -> None:
        if object_type not in KINDS:
            raise ValueError(f"Zendesk object_type must be 'organizations' or 'users', got {object_type!r}")
        if job_timeout <= 0 or first_poll <= 0 or max_poll < first_poll:
            raise ValueError("Zendesk job_timeout and first_poll must be > 0, and max_poll >= first_poll")
        self.transport = transport
        self.object_type = object_type
        self.kind = KINDS[object_type]
        self.job_timeout, self.first_poll, self.max_poll = job_timeout, first_poll, max_poll
        self.name = f"Zendesk {object_type}"  # type: ignore[misc]
        self._jobs = threading.BoundedSemaphore(max(1, min(max_jobs, MAX_JOBS)))
        self._settled, self._settle_lock = False, threading.Lock()

    # -- the contract --------------------------------------------------------------------------------

    def preflight(self, fields: Sequence[str], mode: str) -> list[str]:
        problems = []
        if "external_id" not in fields:
            problems.append("external_id must be mapped (Zendesk records are found by it)")
        if "id" in fields:
            problems.append("id is Zendesk's own: map your key to external_id instead")
        if mode != "update" and "name" not in fields:
            problems.append(f"name must be mapped (Zendesk needs it to create {self.object_type})")
        return problems

    def fingerprint(self) -> Any:
        return ["zendesk", self.object_type]

    def planned_ref(self, record: Record) -> str | None:
        # Zendesk assigns the id; until it is known, the ref names the record by its external id.
        return BY_EXTERNAL_ID + self._ext(record)

    def requests_for(self, op: Operation, records: int, batch_size: int) -> int:
        jobs = -(-records // batch_size)
        return jobs * (3 if op == "insert" else 2)  # a job, at least one poll (and an insert's look-up)

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        self._settle(records)
        if op == "delete":
            return self._delete(records)
        out: list[Outcome | None] = [None] * len(records)
        todo = []
        for i, r in enumerate(records):
            if self._ext(r):
                todo.append(r)
            else:
                out[i] = Outcome("error", "external_id is empty: Zendesk finds records by it")
        if todo:
            if op == "update":
                done = self._update(todo)
            elif op == "insert":
                done = self._insert(todo)
            elif self.object_type == "users":
                done = self._finish(todo, self._job("POST", "users/create_or_update_many",
                                                    [self._payload(r) for r in todo]))
            else:
                done = self._upsert_organizations(todo)
            it = iter(done)
            out = [o if o is not None else next(it) for o in out]
        return [o for o in out if o is not None]

    def read(self, records: Sequence[Record]) -> dict[str, dict[str, Any] | None] | None:
        if not records:
            return {}
        found = self._lookup(records)
        names = sorted({k for r in records for k in (r.fields or {})})
        out: dict[str, dict[str, Any] | None] = {}
        for r in records:
            current = found.get(self._ext(r).lower())
            out[r.key] = None if current is None else self._flatten(current, names, r)
        return out

    def close(self) -> None:
        self.transport.close()

    # -- records as Zendesk takes them ----------------------------------------------------------------

    def _ext(self, r: Record) -> str:
        if r.fields is None:  # a delete: the ref holds it, when it is one by external id
            return r.ref[len(BY_EXTERNAL_ID):] if r.ref and r.ref.startswith(BY_EXTERNAL_ID) else ""
        value = r.fields.get("external_id")
        return "" if value is None else str(value)

    def _payload(self, r: Record, by_id: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        prefix = self.kind.custom + "."
        for name, value in (r.fields or {}).items():
            if name.startswith(prefix):
                custom[name[len(prefix):]] = value
            elif name == self.kind.custom and isinstance(value, dict):
                custom.update(value)
            elif name in self.kind.standard:
                body[name] = _as_list(value) if name in LIST_FIELDS else value
            else:
                custom[name] = value
        body["external_id"] = self._ext(r)
        if custom:
            body[self.kind.custom] = custom
        zid = _zid(r.ref)
        if by_id and zid is not None:
            body["id"] = zid
        return body

    def _flatten(self, current: dict[str, Any], names: list[str], r: Record) -> dict[str, Any]:
        """A Zendesk record under the mapped names (custom fields taken out of ``*_fields``)."""
        custom = current.get(self.kind.custom) or {}
        prefix = self.kind.custom + "."
        out: dict[str, Any] = {}
        for name in names:
            if name.startswith(prefix):
                out[name] = custom.get(name[len(prefix):])
            elif name == self.kind.custom:
                out[name] = custom
            elif name in self.kind.standard:
                out[name] = current.get(name)
            else:
                out[name] = custom.get(name)
        wanted = r.fields or {}
        for name, value in out.items():  # the same value in Zendesk's form (1100.0 for "1100") is no change
            if name in wanted and _same(value, wanted[name], name):
                out[name] = wanted[name]
        return out

    # -- operations ------------------------------------------------------------------------------------

    def _finish(self, records: Sequence[Record], results: list[_Result]) -> list[Outcome]:
        return [self._outcome(r, res) for r, res in zip(records, results, strict=True)]

    def _outcome(self, r: Record, res: _Result, missing: bool = False) -> Outcome:
        if res.ok:
            return Outcome(ref=res.zid or r.ref or self.planned_ref(r))
        if missing and res.not_found:
            return Outcome("missing")
        return Outcome("error", res.error or "Zendesk did not confirm this record")

    def _upsert_organizations(self, records: Sequence[Record]) -> list[Outcome]:
        out: list[Outcome | None] = [None] * len(records)
        known = [i for i, r in enumerate(records) if _zid(r.ref) is not None]
        fresh = [i for i, r in enumerate(records) if _zid(r.ref) is None]
        if known:
            results = self._job("PUT", "organizations/update_many", [self._payload(records[i], True) for i in known])
            for i, res in zip(known, results, strict=True):
                if res.not_found:
                    fresh.append(i)  # deleted in Zendesk meanwhile: upsert creates it again
                else:
                    out[i] = self._outcome(records[i], res)
        if fresh:
            self._create(records, sorted(fresh), out, update=True)
        return [o for o in out if o is not None]

    def _insert(self, records: Sequence[Record]) -> list[Outcome]:
        out: list[Outcome | None] = [None] * len(records)
        absent = list(range(len(records)))
        if self.object_type == "users":  # their external ids are not promised unique: look before creating
            found = self._lookup(records)
            absent = []
            for i, r in enumerate(records):
                current = found.get(self._ext(r).lower())
                if current is not None and current.get("id") is not None:
                    out[i] = Outcome(ref=str(current["id"]))
                else:
                    absent.append(i)
        if absent:
            self._create(records, absent, out, update=False)
        return [o for o in out if o is not None]

    def _create(self, records: Sequence[Record], which: list[int], out: list[Outcome | None], update: bool) -> None:
        """Create ``records[which]``; items Zendesk refuses that turn out to exist already are updated
        (``update``) or left as they are and confirmed (an insert)."""
        results = self._job("POST", f"{self.object_type}/create_many", [self._payload(records[i]) for i in which])
        refused: list[tuple[int, _Result]] = []
        for i, res in zip(which, results, strict=True):
            if res.ok or not res.item:  # written, or the job itself failed (looking up would not help)
                out[i] = self._outcome(records[i], res)
            else:
                refused.append((i, res))
        if not refused:
            return
        found = self._lookup([records[i] for i, _ in refused])
        existing: list[tuple[int, int]] = []
        for i, res in refused:
            current = found.get(self._ext(records[i]).lower())
            if current is None or current.get("id") is None:
                out[i] = self._outcome(records[i], res)
            elif update:
                existing.append((i, int(current["id"])))
            else:
                out[i] = Outcome(ref=str(current["id"]))
        if existing:
            payloads = [{**self._payload(records[i]), "id": zid} for i, zid in existing]
            for (i, _), res in zip(existing, self._job("PUT", f"{self.object_type}/update_many", payloads),
                                   strict=True):
                out[i] = self._outcome(records[i], res)

    def _update(self, records: Sequence[Record]) -> list[Outcome]:
        """Updates by id: records whose id is not known yet are looked up by external id first (absent:
        ``missing``), which batch updates address reliably for organizations and users alike."""
        out: list[Outcome | None] = [None] * len(records)
        ids = {i: zid for i, r in enumerate(records) if (zid := _zid(r.ref)) is not None}
        unknown = [r for i, r in enumerate(records) if i not in ids]
        found = self._lookup(unknown) if unknown else {}
        for i, r in enumerate(records):
            current = found.get(self._ext(r).lower()) if i not in ids else None
            if current is not None and current.get("id") is not None:
                ids[i] = int(current["id"])
            elif i not in ids:
                out[i] = Outcome("missing")
        which = sorted(ids)
        if which:
            payloads = [{**self._payload(records[i]), "id": ids[i]} for i in which]
            for i, res in zip(which, self._job("PUT", f"{self.object_type}/update_many", payloads), strict=True):
                out[i] = self._outcome(records[i], res, missing=True)
        return [o for o in out if o is not None]

    def _delete(self, records: Sequence[Record]) -> list[Outcome]:
        out: list[Outcome] = [Outcome("error", "no Zendesk id or external id recorded for this key")] * len(records)
        by_id = [(i, zid) for i, r in enumerate(records) if (zid := _zid(r.ref)) is not None]
        by_ext = [(i, ext) for i, r in enumerate(records) if _zid(r.ref) is None and (ext := self._ext(r))]
        for param, group in (("ids", by_id), ("external_ids", by_ext)):
            if not group:
                continue
            query = urlencode({param: ",".join(str(v) for _, v in group)})
            items = [{"id": v} if param == "ids" else {"external_id": v} for _, v in group]
            for (i, _), res in zip(group, self._job("DELETE", f"{self.object_type}/destroy_many?{query}", items,
                                                    body=False), strict=True):
                # Already absent is as good as deleted.
                out[i] = Outcome() if res.ok or res.not_found else Outcome("error", res.error or "not deleted")
        return out

    def _lookup(self, records: Sequence[Record]) -> dict[str, dict[str, Any]]:
        """Zendesk's records with these external ids, by lower-cased external id (ids compare so)."""
        wanted = sorted({e for r in records if (e := self._ext(r))})
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), MAX_MANY):
            query = urlencode({"external_ids": ",".join(wanted[start:start + MAX_MANY])})
            body = self.transport.request("GET", f"{self.object_type}/show_many?{query}").json() or {}
            for current in body.get(self.object_type) or []:
                if isinstance(current, dict) and current.get("external_id") is not None:
                    found[str(current["external_id"]).lower()] = current
        return found

    # -- jobs --------------------------------------------------------------------------------------------

    def _job(self, method: str, path: str, items: list[dict[str, Any]], body: bool = True) -> list[_Result]:
        """Run one bulk job of ``items`` (sent as the body unless ``body`` is False): a result per item."""
        with self._jobs:  # held while the job is queued or running
            answer = self.transport.request(method, path, {self.object_type: items} if body else None)
            job = (answer.json() or {}).get("job_status") if answer.body else None
            if not isinstance(job, dict) or not job.get("id"):
                raise BatchRejected(f"HTTP {answer.status}: Zendesk answered no job_status ({answer.snippet()})")
            job = self._wait(job)
        return self._results(job, items)

    def _results(self, job: dict[str, Any], items: list[dict[str, Any]]) -> list[_Result]:
        """The job's result for each item: by ``index``, else by external id, email or id, else by position."""
        n = len(items)
        raw = job.get("results")
        results = [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
        by: dict[tuple[str, str], int] = {}
        for i, item in enumerate(items):
            for field in ("external_id", "email", "id"):
                if item.get(field) is not None:
                    by.setdefault((field, str(item[field]).lower()), i)
        got: list[dict[str, Any] | None] = [None] * n
        for pos, res in enumerate(results):
            index = res.get("index")
            if not (isinstance(index, int) and 0 <= index < n):
                index = next((by[(f, str(res[f]).lower())] for f in ("external_id", "email", "id")
                              if res.get(f) is not None and (f, str(res[f]).lower()) in by), None)
                if index is None and len(results) == n:
                    index = pos
            if index is not None and got[index] is None:
                got[index] = res
        status = job.get("status")
        if status == "completed" and isinstance(raw, dict) and raw.get("success") is True:
            return [_Result(True)] * n  # a job answering for all its items at once
        why = (f"Zendesk job {job.get('id')} {status or 'unknown'}"
               + (f": {job['message']}" if job.get("message") else "")
               + ("" if status in DONE else f" after {self.job_timeout:g} s (retried next run)"))
        return [self._classify(res, why) for res in got]

    @staticmethod
    def _classify(res: dict[str, Any] | None, why: str) -> _Result:
        if res is None:
            return _Result(False, error=f"{why}: no result for this record")
        error = res.get("error")
        status = str(res.get("status") or "")
        if error or res.get("success") is False or status.lower() == "failed":
            details = _details(res.get("details") or res.get("errors") or res.get("description"))
            text = f"{error or status or 'Failed'}: {details}" if details else str(error or status or "Failed")
            return _Result(False, error=text, item=True, not_found=error == "RecordNotFound")
        zid = res.get("id")
        return _Result(True, None if zid is None else str(zid))
