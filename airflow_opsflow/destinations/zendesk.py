"""ZendeskObjects: sync records into Zendesk organizations or users, or rank their organizations' open tickets."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_opsflow.core.jinja import has_jinja
from airflow_opsflow.destinations.base import Opened, SyncDestination

OBJECT_TYPES = ("organizations", "users", "organization_tickets")
OPEN_STATUSES = ("new", "open", "pending", "hold")  # Zendesk's statuses before solved
DEFAULT_REQUESTS_PER_MINUTE = 200  # Zendesk's smallest plan (Team); Enterprise allows 700, High Volume 2,500


@dataclass(frozen=True)
class ZendeskObjects(SyncDestination):
    """Create and update (and, in mirror mode, delete) Zendesk organizations or users, 100 per bulk job,
    each found by its ``external_id`` (which must be mapped, as must ``name``). Mapped fields that are not
    Zendesk's own (``name``, ``notes``, ``tags``, ``domain_names``, ``email``, ``role``...) are written to
    ``organization_fields`` / ``user_fields`` under their mapped names. Declared in the DAG; opens
    :class:`~airflow_opsflow.sync.destinations.zendesk.ZendeskObjectsClient` when the task runs.

    ``organization_tickets`` ranks the open tickets of organizations instead: one record per organization,
    found by its ``external_id``, with ``priority`` (low, normal, high, urgent) and/or ``tags`` (added, never
    removed) set on each of its open tickets when the record changes (see
    :mod:`airflow_opsflow.sync.destinations.zendesk_tickets`; no mirror mode: nothing is created to delete).

    :param object_type: ``organizations``, ``users`` or ``organization_tickets``. (templated)
    :param conn_id: a ``zendesk`` connection (Airflow's Zendesk provider): host = ``<subdomain>.zendesk.com``,
        login = the agent's email, an API token in the extra ``token`` or the password with ``use_token``
        (or an ``oauth_token`` extra). (templated)
    :param requests_per_minute: the account's API limit (default: the connection's ``requests_per_minute``
        extra, else 200, the smallest plan's); requests are paced to stay under it.
    :param job_timeout: seconds to wait for one bulk job; records of a job still unfinished then are
        errors, sent again by the next run.
    :param open_statuses: ``organization_tickets`` only: the ticket statuses that count as open (some of
        new, open, pending, hold; default all four).
    """

    template_fields = ("object_type", "conn_id")

    object_type: str
    conn_id: str = "zendesk_default"
    requests_per_minute: int | None = None
    job_timeout: float = 600.0
    open_statuses: tuple[str, ...] = OPEN_STATUSES

    default_batch_size = 100

    def __post_init__(self) -> None:
        templated = has_jinja(self.object_type)  # checked as it renders (the operator renders a copy)
        if self.object_type not in OBJECT_TYPES and not templated:
            raise ValueError(f"ZendeskObjects object_type must be one of {OBJECT_TYPES}, got {self.object_type!r}")
        if self.requests_per_minute is not None and self.requests_per_minute < 1:
            raise ValueError(f"ZendeskObjects requests_per_minute must be >= 1, got {self.requests_per_minute}")
        if self.job_timeout <= 0:
            raise ValueError(f"ZendeskObjects job_timeout must be > 0, got {self.job_timeout}")
        statuses = (self.open_statuses,) if isinstance(self.open_statuses, str) else tuple(self.open_statuses)
        object.__setattr__(self, "open_statuses", statuses)  # a list (from a DAG file) kept hashable
        if not statuses or any(s not in OPEN_STATUSES for s in statuses):
            raise ValueError(f"ZendeskObjects open_statuses must be some of {OPEN_STATUSES}, got {statuses}")
        if statuses != OPEN_STATUSES and self.object_type != "organization_tickets" and not templated:
            raise ValueError("ZendeskObjects open_statuses applies to object_type='organization_tickets' only")

    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        from airflow_opsflow.connections.zendesk import zendesk_requests_per_minute, zendesk_target
        from airflow_opsflow.sync.destinations.transport import HttpTransport
        from airflow_opsflow.sync.destinations.zendesk import MAX_MANY, ZendeskObjectsClient
        from airflow_opsflow.sync.destinations.zendesk_tickets import ZendeskTicketsClient
        from airflow_opsflow.sync.ratelimit import RateLimiter

        target = zendesk_target(self.conn_id, owner)
        per_minute = (self.requests_per_minute or zendesk_requests_per_minute(self.conn_id, owner)
                      or DEFAULT_REQUESTS_PER_MINUTE)
        limiter = RateLimiter(per_minute, 60.0)
        # the connection named in errors (a 401 says whose credentials were refused), as Salesforce's does
        transport = HttpTransport(target, concurrency, limiter, what=f"Zendesk {self.object_type} ({self.conn_id})")
        if self.object_type == "organization_tickets":
            tickets = ZendeskTicketsClient(transport, open_statuses=self.open_statuses, job_timeout=self.job_timeout)
            return Opened(tickets, limiter, MAX_MANY)
        client = ZendeskObjectsClient(transport, self.object_type, job_timeout=self.job_timeout)
        return Opened(client, limiter, MAX_MANY)

    def describe(self) -> str:
        if self.object_type == "organization_tickets":
            return (f"Zendesk tickets ({', '.join(self.open_statuses)}) of organizations ({self.conn_id}) "
                    "by organization external_id")
        return f"Zendesk {self.object_type} ({self.conn_id}) by external_id"
