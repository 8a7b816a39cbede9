"""HubSpotObjects: sync records into HubSpot CRM objects."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_opsflow.destinations.base import Opened, SyncDestination


@dataclass(frozen=True)
class HubSpotObjects(SyncDestination):
    """Upsert (and, in mirror mode, archive) HubSpot CRM objects, 100 per request. Declared in the DAG; opens
    :class:`~airflow_opsflow.sync.destinations.hubspot.HubSpotObjectsClient` when the task runs.

    :param object_type: ``contacts``, ``companies``, ``deals``, ... or a custom object's type id.
    :param id_property: the unique property identifying a record (``email`` for contacts, or your own
        unique-value property); it must be mapped.
    :param hubspot_conn_id: an ``opsflow_hubspot`` connection (password = private app access token).
    :param requests_per_10s: the account's burst limit (default: the connection's ``requests_per_10s``
        extra, else 100, HubSpot's Free/Starter limit); requests are paced to stay under it.
    """

    object_type: str
    id_property: str
    hubspot_conn_id: str = "hubspot_default"
    requests_per_10s: int | None = None

    default_batch_size = 100

    def __post_init__(self) -> None:
        if not self.object_type or "/" in self.object_type:
            raise ValueError(f"HubSpotObjects object_type must be a type name, got {self.object_type!r}")
        if not self.id_property:
            raise ValueError("HubSpotObjects needs id_property= (a unique property, e.g. 'email' or 'domain')")

    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        from airflow_opsflow.hooks.hubspot import HubSpotHook
        from airflow_opsflow.sync.destinations.hubspot import MAX_INPUTS, HubSpotObjectsClient
        from airflow_opsflow.sync.destinations.transport import HttpTransport
        from airflow_opsflow.sync.ratelimit import RateLimiter

        hook = HubSpotHook(self.hubspot_conn_id)
        limiter = RateLimiter(self.requests_per_10s or hook.requests_per_10s(), 10.0)
        transport = HttpTransport(hook.target(owner), concurrency, limiter, what=f"HubSpot {self.object_type}")
        return Opened(HubSpotObjectsClient(transport, self.object_type, self.id_property), limiter, MAX_INPUTS)

    def describe(self) -> str:
        return f"HubSpot {self.object_type} by {self.id_property}"
