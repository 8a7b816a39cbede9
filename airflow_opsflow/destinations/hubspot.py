"""HubSpotObjects: sync records into HubSpot CRM objects (tickets and custom objects too), with associations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from airflow_opsflow.core.jinja import with_placeholders
from airflow_opsflow.destinations.base import Opened, SyncDestination


@dataclass(frozen=True)
class HubSpotAssociation:
    """Associate each synced record with the record of type ``to`` whose ``id_property`` equals the value of
    the record's ``key`` field. ``HubSpotObjects(associations=[...])`` takes these or plain dicts with the
    same keys: ``{"to": "companies", "key": "company_key", "id_property": "account_key"}``.

    :param to: the target object type: ``companies``, ``contacts``, ``deals``, ``tickets`` or a type id.
    :param key: a field of the mapping holding the target's value. It is used for the association only (not
        written as a property of the record; map the column a second time to write it too), and it is
        hashed with the other fields, so a record whose key changes is sent and associated again.
    :param id_property: a unique-value property of ``to`` the value is looked up by (HubSpot reads by unique
        properties only: a company's ``domain`` is not one, a unique custom property or ``hs_object_id`` is).
    """

    to: str
    key: str
    id_property: str

    def __post_init__(self) -> None:
        for name in ("to", "key", "id_property"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "/" in value:
                raise ValueError(f"HubSpot association {name}= must be a name, got {value!r}")


@dataclass(frozen=True)
class HubSpotObjects(SyncDestination):
    """Upsert (and, in mirror mode, archive) HubSpot CRM objects, 100 per request. Declared in the DAG; opens
    :class:`~airflow_opsflow.sync.destinations.hubspot.HubSpotObjectsClient` when the task runs.

    Tickets: map ``hs_pipeline_stage`` (required to create one; mode ``update`` does without) and
    ``hs_pipeline`` to the ids of the stage and pipeline (``GET /crm/v3/pipelines/tickets``; HubSpot's
    default pipeline is ``0``, its stages ``1``-``4``). The mapping takes columns only: a fixed value is a
    literal column of the query (``SELECT ..., '0' AS pipeline, CASE ... END AS stage``).

    Associations, e.g. contacts with their company::

        HubSpotObjects("contacts", id_property="email", associations=[
            {"to": "companies", "key": "company_key", "id_property": "account_key"}])

    with ``"company_key": "account_id"`` in the mapping. After a batch is written, its records are
    associated (HubSpot's default association type) with their targets, read by ``id_property``: two
    requests per association and batch. A record whose target does not exist fails with an error naming
    the value (it was written; the next run sends it again and associates it once the target exists), so
    count such records in ``max_failed``/``max_failed_share`` if they are expected. An association removed
    from the source (key changed or emptied) is not removed in HubSpot.

    :param object_type: ``contacts``, ``companies``, ``deals``, ``tickets``, ... or a custom object's type
        id (``2-1234``). (templated)
    :param id_property: the unique property identifying a record (``email`` for contacts, or your own
        unique-value property); it must be mapped. (templated)
    :param hubspot_conn_id: an ``opsflow_hubspot`` connection (password = private app access token). (templated)
    :param requests_per_10s: the account's burst limit (default: the connection's ``requests_per_10s``
        extra, else 100, HubSpot's Free/Starter limit); requests are paced to stay under it.
    :param associations: :class:`HubSpotAssociation` (or dicts ``{"to", "key", "id_property"}``): records
        of other types each record is associated with.
    """

    template_fields = ("object_type", "id_property", "hubspot_conn_id")

    object_type: str
    id_property: str
    hubspot_conn_id: str = "hubspot_default"
    requests_per_10s: int | None = None
    associations: Sequence[HubSpotAssociation | Mapping[str, str]] = ()
    _links: tuple[HubSpotAssociation, ...] = field(init=False, repr=False, compare=False, default=())

    default_batch_size = 100

    def __post_init__(self) -> None:
        if not self.object_type or "/" in with_placeholders(self.object_type):
            raise ValueError(f"HubSpotObjects object_type must be a type name, got {self.object_type!r}")
        if not self.id_property:
            raise ValueError("HubSpotObjects needs id_property= (a unique property, e.g. 'email' or 'domain')")
        if isinstance(self.associations, (str, Mapping)):
            raise ValueError("HubSpotObjects associations= is a list of {'to', 'key', 'id_property'} dicts")
        links = tuple(_association(a) for a in self.associations)
        object.__setattr__(self, "associations", links)
        object.__setattr__(self, "_links", links)
        keys = [a.key for a in links]
        if len(set(keys)) != len(keys):
            raise ValueError(f"HubSpotObjects associations each need a key of their own, got {keys}")

    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        from airflow_opsflow.hooks.hubspot import HubSpotHook
        from airflow_opsflow.sync.destinations.hubspot import MAX_INPUTS, Association, HubSpotObjectsClient
        from airflow_opsflow.sync.destinations.transport import HttpTransport
        from airflow_opsflow.sync.ratelimit import RateLimiter

        hook = HubSpotHook(self.hubspot_conn_id)
        limiter = RateLimiter(self.requests_per_10s or hook.requests_per_10s(), 10.0)
        # the connection named in errors (a 401 says whose credentials were refused), as Salesforce's does
        transport = HttpTransport(hook.target(owner), concurrency, limiter,
                                  what=f"HubSpot {self.object_type} ({self.hubspot_conn_id})")
        links = [Association(a.to, a.key, a.id_property) for a in self._links]
        return Opened(HubSpotObjectsClient(transport, self.object_type, self.id_property, links), limiter,
                      MAX_INPUTS)

    def describe(self) -> str:
        links = "".join(f", associated with {a.to} by {a.id_property}" for a in self._links)
        return f"HubSpot {self.object_type} by {self.id_property}{links}"


def _association(a: HubSpotAssociation | Mapping[str, str]) -> HubSpotAssociation:
    if isinstance(a, HubSpotAssociation):
        return a
    if not isinstance(a, Mapping) or set(a) != {"to", "key", "id_property"}:
        raise ValueError(f"a HubSpot association is {{'to': type, 'key': mapped field, 'id_property': unique "
                         f"property of the type}}, got {a!r}")
    return HubSpotAssociation(a["to"], a["key"], a["id_property"])
