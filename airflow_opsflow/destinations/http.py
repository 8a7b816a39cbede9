"""HttpEndpoint: any REST or webhook API, per record or in batches."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_opsflow.destinations.base import Opened, SyncDestination


@dataclass(frozen=True)
class HttpEndpoint(SyncDestination):
    """Send records to an HTTP API through an Airflow ``http`` connection. Declared in the DAG; opens
    :class:`~airflow_opsflow.sync.destinations.http.HttpEndpointClient` when the task runs.

    :param http_conn_id: the connection: host (base URL), login/password (basic auth; a password alone is a
        bearer token), extra = headers. (templated)
    :param endpoint: path under the base URL; a Jinja template per record when ``batch_size=1``
        (``/accounts/{{ record.account_id }}``).
    :param method: HTTP method for new and changed records (``insert_method``/``update_method`` override).
    :param insert_method: HTTP method for new records only (e.g. ``POST`` where changes are ``PATCH``).
    :param update_method: HTTP method for changed records only.
    :param batch_size: records per request (1: one request per record, e.g. "call this API for each row").
    :param body: optional Jinja template of the JSON body: ``records`` (batched) or ``record`` and ``key``
        (per record), ``op``, ``sync_id``; the default body is the record or a JSON array of records.
    :param delete_endpoint: path template for deletes (``/accounts/{{ key }}``); required by ``mode='mirror'``.
    :param delete_method: HTTP method for deletes.
    :param idempotency_key: send an ``Idempotency-Key`` header derived from (sync id, key, row hash, write id).
    :param headers: extra headers (on top of the connection's). Not templated and not shown in the task's
        rendered fields: a token belongs in the connection.
    :param requests_per_second: pace requests to this rate (None: as fast as the API answers).
    :param timeout: seconds per request (default: the connection's ``timeout`` extra, else 30).
    """

    template_fields = ("http_conn_id",)  # endpoint, body: per-record templates, rendered per record

    http_conn_id: str
    endpoint: str = ""
    method: str = "POST"
    batch_size: int = 100
    body: str | None = None
    delete_endpoint: str | None = None
    delete_method: str = "DELETE"
    insert_method: str | None = None
    update_method: str | None = None
    idempotency_key: bool = False
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    requests_per_second: float | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"HttpEndpoint batch_size must be >= 1, got {self.batch_size}")
        if "{" in self.endpoint and self.batch_size != 1:
            raise ValueError(f"HttpEndpoint endpoint {self.endpoint!r} is a per-record template: set batch_size=1")
        for name in ("endpoint", "body", "delete_endpoint"):
            value = getattr(self, name)
            if value and "{{" in value:
                import jinja2

                try:
                    jinja2.Environment().parse(value)
                except jinja2.TemplateSyntaxError as e:
                    raise ValueError(f"HttpEndpoint {name}: invalid template: {e}") from None

    @property
    def default_batch_size(self) -> int:  # type: ignore[override]
        return self.batch_size

    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        from dataclasses import replace

        from airflow_opsflow.connections.http import http_target
        from airflow_opsflow.sync.destinations.http import HttpEndpointClient
        from airflow_opsflow.sync.destinations.transport import HttpTransport
        from airflow_opsflow.sync.ratelimit import RateLimiter

        target = http_target(self.http_conn_id, owner)
        if self.timeout:
            target = replace(target, timeout=self.timeout)
        rps = self.requests_per_second
        limiter = RateLimiter(max(1, int(rps)) if rps and rps >= 1 else (1 if rps else None),
                              1.0 if not rps or rps >= 1 else 1.0 / rps)
        transport = HttpTransport(target, concurrency, limiter, what=f"HTTP {self.http_conn_id}")
        dest = HttpEndpointClient(transport, self.endpoint, self.method, self.batch_size, self.body,
                               self.delete_endpoint, self.delete_method, self.insert_method, self.update_method,
                               self.idempotency_key, sync_id, dict(self.headers),
                               name=f"HTTP endpoint {self.http_conn_id}{self.endpoint and ' ' + self.endpoint}")
        return Opened(dest, limiter, self.batch_size)

    def describe(self) -> str:
        return f"{self.method} {self.http_conn_id}:{self.endpoint or '/'}"
