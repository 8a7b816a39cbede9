"""SalesforceObjects: sync records into Salesforce sObjects, upserted by an external id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_opsflow.core.jinja import with_placeholders
from airflow_opsflow.destinations.base import Opened, SyncDestination

if TYPE_CHECKING:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    from airflow_opsflow.sync.destinations.salesforce_api import Login


@dataclass(frozen=True)
class SalesforceObjects(SyncDestination):
    """Upsert records into a Salesforce sObject by an External ID field (and delete them in mirror mode), through
    sObject Collections (200 records a request) or Bulk API 2.0 jobs. Declared in the DAG; opens
    :class:`~airflow_opsflow.sync.destinations.salesforce.SalesforceObjectsClient` when the task runs.

    :param object_name: the sObject's API name (``Account``, ``Contact``, ``Warehouse_Account__c``). (templated)
    :param external_id_field: an External ID field of the object (``Warehouse_Id__c``; make it Unique too);
        it must be mapped, and it is how records are found again, so a re-sent upsert is harmless. (templated)
    :param conn_id: a ``salesforce`` connection of Airflow's Salesforce provider (``SalesforceHook``: username,
        password and security token, or a connected app; ``domain`` ``test`` for a sandbox). Its user needs
        API access and Create/Edit (Delete, for mirror) on the object. It logs in on the first request only.
        (templated)
    :param api: ``auto`` (default): the engine hands over batches of up to 100,000 records (the operator's
        ``batch_size`` lowers it); one of ``bulk_threshold`` records or more goes as a Bulk API 2.0 job, a
        smaller one through sObject Collections. ``collections``: always Collections (batches of 200).
        ``bulk``: always Bulk jobs.
    :param bulk_threshold: with ``auto``, the changes from which a batch goes through Bulk API 2.0 (default
        2,000, Salesforce's own line between Composite calls and Bulk API 2.0: from there one job, 6 requests,
        costs less than 10 or more Collections requests).
    :param bulk_timeout: seconds a Bulk job may run before it is aborted (its unprocessed records are sent
        again by a later run).
    :param timeout: seconds per request.
    """

    template_fields = ("object_name", "external_id_field", "conn_id")

    object_name: str
    external_id_field: str
    conn_id: str = "salesforce_default"
    api: str = "auto"
    bulk_threshold: int = 2_000
    bulk_timeout: float = 1800.0
    timeout: float = 120.0

    def __post_init__(self) -> None:
        from airflow_opsflow.sync.destinations.salesforce import check_settings

        # A templated name is checked as it renders (the operator renders a copy, validated again).
        check_settings(with_placeholders(self.object_name), with_placeholders(self.external_id_field), self.api,
                       self.bulk_threshold)
        if self.bulk_timeout <= 0 or self.timeout <= 0:
            raise ValueError("SalesforceObjects bulk_timeout and timeout must be positive")

    @property
    def default_batch_size(self) -> int:  # type: ignore[override]
        return 200 if self.api == "collections" else 100_000  # one Bulk job (sync.destinations.salesforce.BULK_MAX)

    def open(self, owner: str, sync_id: str, concurrency: int) -> Opened:
        from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

        from airflow_opsflow.sync.destinations.salesforce import SalesforceObjectsClient
        from airflow_opsflow.sync.destinations.salesforce_api import SalesforceApi
        from airflow_opsflow.sync.ratelimit import RateLimiter

        SalesforceHook.get_connection(self.conn_id)  # a missing connection fails the task now, not at first send
        conn_id = self.conn_id

        def login() -> Login:
            return log_in(SalesforceHook(salesforce_conn_id=conn_id))

        limiter = RateLimiter()  # no published per-second limit; a concurrent-request limit answer pauses it
        api = SalesforceApi(login, concurrency, limiter, what=f"Salesforce {self.object_name} ({conn_id})",
                            timeout=self.timeout)
        dest = SalesforceObjectsClient(api, self.object_name, self.external_id_field, self.api, self.bulk_threshold,
                                       concurrency, self.bulk_timeout)
        return Opened(dest, limiter, dest.batch_size)

    def describe(self) -> str:
        return f"Salesforce {self.object_name} by {self.external_id_field} ({self.api})"


def log_in(hook: SalesforceHook) -> Login:
    """Log in through ``SalesforceHook`` (simple-salesforce) and take its session id and instance; TLS is
    verified as its requests session would (``REQUESTS_CA_BUNDLE`` included)."""
    from airflow_opsflow.sync.destinations.salesforce_api import Login

    sf = hook.get_conn()
    verify = sf.session.merge_environment_settings(sf.base_url, {}, None, None, None).get("verify", True)
    return Login(str(sf.session_id), f"https://{sf.sf_instance}", str(sf.sf_version),
                 verify if isinstance(verify, (bool, str)) else True)
