"""Bulk jobs of the fake Zendesk: ``create_many``/``update_many``/``create_or_update_many`` (and ``destroy_many``,
``tickets/update_many``) answer a ``job_status``.

A job goes ``queued`` -> ``working`` (half its items applied, ``progress`` counting them) -> ``completed``
(``results`` holds one entry per item, in request order). It moves one step per ``GET job_statuses/{id}``
poll, or every ``seconds`` when a pace is set (``FakeZendesk.job_pace``), or at once with ``run_jobs()``; items
are applied only as the job works through them, as on Zendesk. Item results: ``{"id", "index", "action":
"create"|"update", "status": "Created"|"Updated", "success": true}`` or, for a refused item, ``{"index",
"status": "Failed", "success": false, "error": "RecordInvalid", "details": "Name: cannot be blank"}`` (users
add ``email``, both ``external_id`` when given; a ticket's item names it by ``id``). At most 30 jobs may be
queued or working per account: one more is refused with 429 (+ ``Retry-After``). Zendesk keeps job statuses
for a while; the fake keeps the last 100.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_opsflow_testing.zendesk_schema import JsonDict, ZendeskError, not_found

MAX_ACTIVE = 30
KEEP = 100
TOO_MANY = "Too many jobs queued or running for this account (at most {}). Try again later."


@dataclass
class Job:
    id: str
    job_type: str
    items: list[Callable[[], JsonDict]]
    status: str = "queued"
    results: list[JsonDict] = field(default_factory=list)
    message: str | None = None
    polls: int = 0
    stepped: float = field(default_factory=time.monotonic)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "working")


class JobQueue:
    """The account's jobs; thread-safe. ``now`` stamps the completion message with the account's clock."""

    def __init__(self, public_url: Callable[[], str], now: Callable[[], str]) -> None:
        self._public_url, self._now = public_url, now
        self.lock = threading.RLock()
        self.max_active = MAX_ACTIVE
        self.retry_after = 1
        self.polls_per_step: int | None = 1
        self.seconds_per_step: float | None = None
        self.jobs: dict[str, Job] = {}

    def submit(self, job_type: str, items: list[Callable[[], JsonDict]]) -> JsonDict:
        with self.lock:
            self.tick()
            if sum(j.active for j in self.jobs.values()) >= self.max_active:
                raise ZendeskError(429, "TooManyJobs", TOO_MANY.format(self.max_active),
                                   headers={"Retry-After": str(self.retry_after)})
            job = Job(uuid.uuid4().hex, job_type, items)
            self.jobs[job.id] = job
            done = [j for j in self.jobs.values() if not j.active]
            for old in done[:max(0, len(self.jobs) - KEEP)]:
                del self.jobs[old.id]
            return self.render(job)

    def show(self, job_id: str) -> JsonDict:
        """A poll: the job (moved on a step when the pace says so)."""
        with self.lock:
            self.tick()
            job = self.jobs.get(job_id)
            if job is None:
                raise not_found()
            if self.polls_per_step is not None and job.active:
                job.polls += 1
                if job.polls >= self.polls_per_step:
                    job.polls, job.stepped = 0, time.monotonic()
                    self._step(job)
            return self.render(job)

    def tick(self) -> None:
        """Move jobs on by the time elapsed, when a pace in seconds is set."""
        if self.seconds_per_step is None:
            return
        now = time.monotonic()
        with self.lock:
            for job in self.jobs.values():
                while job.active and now - job.stepped >= self.seconds_per_step:
                    job.stepped += self.seconds_per_step
                    self._step(job)

    def run_all(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                while job.active:
                    self._step(job)

    def _step(self, job: Job) -> None:
        if job.status == "queued":
            job.status = "working"
            upto = math.ceil(len(job.items) / 2)
        else:
            job.status = "completed"
            job.message = f"Completed at {self._now()}"
            upto = len(job.items)
        for apply in job.items[len(job.results):upto]:
            job.results.append(apply())

    def render(self, job: Job) -> JsonDict:
        queued = job.status == "queued"
        return {"id": job.id, "url": f"{self._public_url()}/api/v2/job_statuses/{job.id}.json",
                "total": len(job.items), "progress": None if queued else len(job.results), "status": job.status,
                "message": job.message, "results": None if queued else [dict(r) for r in job.results],
                "job_type": job.job_type}
