"""HubSpotHook: an ``opsflow_hubspot`` connection (a private app's access token) for CRM syncs."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from airflow_opsflow.connections.http import http_target
from airflow_opsflow.sync.destinations.transport import HttpTarget

HUBSPOT_API = "https://api.hubapi.com"


class HubSpotHook(BaseHook):
    """Connection details for HubSpot's CRM API.

    :param hubspot_conn_id: an ``opsflow_hubspot`` connection: password = the private app's access token;
        host = the API base URL (empty: ``https://api.hubapi.com``; set it for a test double). Extra
        ``requests_per_10s``: the account's burst limit (100 on Free/Starter, 190 on Pro/Enterprise);
        ``portal_id``: the account id, for links to tickets (read from the account-info API when absent).
    """

    conn_name_attr = "hubspot_conn_id"
    default_conn_name = "hubspot_default"
    conn_type = "opsflow_hubspot"
    hook_name = "HubSpot (opsflow sync)"

    def __init__(self, hubspot_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.hubspot_conn_id = hubspot_conn_id

    def target(self, owner: str = "") -> HttpTarget:
        target = http_target(self.hubspot_conn_id, owner, default_host=HUBSPOT_API)
        if not target.headers.get("Authorization", "").startswith("Bearer "):
            raise ValueError(f"connection {self.hubspot_conn_id!r}: the password must hold the private app's "
                             "access token (and the login stay empty)")
        return target

    def portal_id(self) -> str | None:
        """The account (portal) id for links into HubSpot's app: extra ``portal_id``, else None."""
        extra: dict[str, Any] = self.get_connection(self.hubspot_conn_id).extra_dejson
        value = extra.get("portal_id")
        return str(value) if value else None

    def requests_per_10s(self) -> int:
        extra: dict[str, Any] = self.get_connection(self.hubspot_conn_id).extra_dejson
        return int(extra.get("requests_per_10s", 100))

    def objects(self, object_type: str, properties: list[str], limit: int = 100_000) -> list[dict[str, Any]]:
        """Every record of a CRM object type (``companies``, ``contacts``...) with these properties, as
        ``{"id": ..., **properties}`` (values as HubSpot returns them: text), 100 per request, waiting out
        rate limits. For reports that join CRM data with the database's (``ReportOperator(transform=...)``)."""
        import time
        from urllib.parse import urlencode

        from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

        from airflow_opsflow.sync.destinations.transport import HttpTransport, TransientError

        def wait(state: RetryCallState) -> float:  # Retry-After if any, else 2 ** attempt; at most 30 s
            error = state.outcome.exception() if state.outcome is not None else None
            return float(min(getattr(error, "retry_after", None) or 2 ** (state.attempt_number - 1), 30))

        # 429 and 5xx: 5 tries in all, then the last TransientError is raised.
        retrying = Retrying(retry=retry_if_exception_type(TransientError), stop=stop_after_attempt(5), wait=wait,
                            reraise=True, sleep=time.sleep)
        transport = HttpTransport(self.target(), max_connections=1, what="HubSpot")
        out: list[dict[str, Any]] = []
        after: str | None = None
        while len(out) < limit:
            query = {"limit": 100, "properties": ",".join(properties), **({"after": after} if after else {})}
            page = retrying(transport.request, "GET", f"/crm/v3/objects/{object_type}?{urlencode(query)}").json()
            out += [{"id": r["id"], **{p: (r.get("properties") or {}).get(p) for p in properties}}
                    for r in page.get("results") or []]
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        return out[:limit]

    def test_connection(self) -> tuple[bool, str]:
        from airflow_opsflow.sync.destinations.transport import HttpTransport

        try:
            transport = HttpTransport(self.target(), max_connections=1, what="HubSpot")
            transport.request("GET", "/crm/v3/objects/contacts?limit=1")
        except Exception as e:
            return False, f"{type(e).__name__}: {e}"
        return True, "Connected to HubSpot"
