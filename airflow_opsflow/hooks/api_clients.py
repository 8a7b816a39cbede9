"""Clients of the CRM and support APIs checks read (HubSpot, Salesforce, Zendesk), from Airflow connections.

The engine's sources (:mod:`airflow_opsflow.core.api_source`) page, flatten and wait; the clients here make
the calls and name the answers: a rate limit or a transient failure is :class:`ApiRetry` (with the server's
``Retry-After``), anything refused is :class:`ApiError` naming the system, the connection and its error.

* HubSpot: an ``opsflow_hubspot`` connection (:class:`~airflow_opsflow.hooks.hubspot.HubSpotHook`: the
  private app's token), over opsflow's HTTP transport.
* Salesforce: a ``salesforce`` connection through Airflow's Salesforce provider (``SalesforceHook``,
  simple-salesforce): REST queries, and Bulk API 2.0 query jobs for large ones; an expired session logs in
  again once, an exhausted daily API limit is named.
* Zendesk: a ``zendesk`` connection through Airflow's Zendesk provider (``ZendeskHook``): zenpy's
  authenticated session, on the raw export endpoints (zenpy would turn each record into an object).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from airflow_opsflow.checks.api_spec import DEFAULT_CONN
from airflow_opsflow.core.api_source import ApiError, ApiRetry, BulkPage, HubSpotRequest
from airflow_opsflow.core.retry_after import parse_retry_after

T = TypeVar("T")
API_CONN_TYPES = frozenset({"opsflow_hubspot", "salesforce", "zendesk", "http"})
RETRY_AFTER_MAX = 3600.0
_TRANSIENT = frozenset({408, 425, 500, 502, 503, 504})
RESULTS_TIMEOUT = (30.0, 300.0)  # seconds to connect, and between bytes of a query job's results page


def is_api_connection(conn_id: str) -> bool:
    """Whether ``conn_id`` is a connection of an API rather than a database (unknown ids: False)."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return False
    return conn.conn_type in API_CONN_TYPES


def api_client(system: str, conn_id: str | None, owner: str = "") -> Any:
    """The client a source of ``system`` (``hubspot``, ``salesforce``, ``zendesk``) calls, on ``conn_id``.

    :param owner: who asks (``"dag 'd', task 't'"``), named in errors.
    """
    if system not in DEFAULT_CONN:
        raise ApiError(f"unknown API {system!r}: one of {', '.join(DEFAULT_CONN)}")
    conn_id = conn_id or DEFAULT_CONN[system]
    if system == "hubspot":
        return hubspot_request(conn_id, owner)
    if system == "salesforce":
        return SalesforceSoql(conn_id)
    return ZendeskGet(conn_id, owner)


def hubspot_request(conn_id: str, owner: str = "") -> HubSpotRequest:
    """``(method, path, body) -> JSON`` on the HubSpot account of ``conn_id``."""
    from airflow_opsflow.hooks.hubspot import HubSpotHook
    from airflow_opsflow.sync.destinations.base import BatchRejected, DestinationFailed, TransientError
    from airflow_opsflow.sync.destinations.transport import HttpTransport

    try:
        transport = HttpTransport(HubSpotHook(conn_id).target(owner), max_connections=1,
                                  what=f"HubSpot ({conn_id})")
    except Exception as e:
        raise ApiError(f"HubSpot connection {conn_id!r}: {e}") from None

    def request(method: str, path: str, body: Any) -> Any:
        try:
            return transport.request(method, path, body).json()
        except TransientError as e:
            raise ApiRetry(str(e), e.retry_after, e.rate_limited) from e
        except DestinationFailed as e:
            raise ApiError(str(e)) from None
        except BatchRejected as e:
            raise ApiError(f"HubSpot ({conn_id}) refused {method} {path.split('?')[0]}: {e}") from None

    return request


class SalesforceSoql:
    """SOQL through ``SalesforceHook``'s simple-salesforce client: ``query`` and ``query_more``; Bulk API 2.0
    query jobs and ``describe`` on the same session (:class:`~airflow_opsflow.core.api_source.SalesforceClient`).

    simple-salesforce's ``sf.bulk2`` runs a whole query job in one call (its own polling and sleeps, results
    read in one loop): a rate limit or a dropped connection there would lose the job, so the job's calls
    are made here one by one, each retried by the source. JSON calls go through ``sf.restful``; the CSV
    results, which it would parse as JSON, through the client's own ``requests`` session and headers.
    """

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._sf: Any = None

    def query(self, soql: str) -> Any:
        return self._call(lambda sf: sf.query(soql))

    def query_more(self, next_records_url: str) -> Any:
        return self._call(lambda sf: sf.query_more(next_records_url, identifier_is_url=True))

    def describe(self, object_name: str) -> Any:
        return self._call(lambda sf: sf.restful(f"sobjects/{quote(object_name, safe='')}/describe"))

    def create_query_job(self, soql: str) -> Any:
        # "queryAll" would add deleted and archived records: the REST path reads `query`, so does the job
        return self._call(lambda sf: sf.restful("jobs/query", method="POST",
                                                json={"operation": "query", "query": soql}))

    def query_job(self, job_id: str) -> Any:
        return self._call(lambda sf: sf.restful(f"jobs/query/{quote(job_id, safe='')}"))

    def abort_query_job(self, job_id: str) -> Any:
        return self._call(lambda sf: sf.restful(f"jobs/query/{quote(job_id, safe='')}", method="PATCH",
                                                json={"state": "Aborted"}))

    def query_job_results(self, job_id: str, locator: str | None, max_records: int) -> BulkPage:
        def read(sf: Any) -> BulkPage:
            from simple_salesforce.util import exception_handler

            path = f"jobs/query/{quote(job_id, safe='')}/results"
            params: dict[str, Any] = {"maxRecords": max_records, **({"locator": locator} if locator else {})}
            answer = sf.session.get(sf.base_url + path, params=params, headers={**sf.headers, "Accept": "text/csv"},
                                    timeout=RESULTS_TIMEOUT)
            if answer.status_code >= 300:
                exception_handler(answer, name=path)  # raises simple-salesforce's error for the status
            following = answer.headers.get("Sforce-Locator")
            return BulkPage(answer.content.decode("utf-8-sig"), None if following in (None, "", "null") else following,
                            int(answer.headers.get("Sforce-NumberOfRecords") or 0))

        return self._call(read)

    def _client(self, fresh: bool = False) -> Any:
        if self._sf is None or fresh:
            from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

            self._sf = SalesforceHook(salesforce_conn_id=self.conn_id).get_conn()
        return self._sf

    def _call(self, action: Callable[[Any], T]) -> T:
        import requests
        from simple_salesforce.exceptions import (
            SalesforceAuthenticationFailed,
            SalesforceError,
            SalesforceExpiredSession,
            SalesforceMalformedRequest,
        )

        where = f"Salesforce ({self.conn_id})"
        try:
            try:
                return action(self._client())
            except SalesforceExpiredSession:  # sessions time out (2 h by default): log in again, once
                return action(self._client(fresh=True))
        except SalesforceAuthenticationFailed as e:
            raise ApiError(f"{where}: the login was refused: {e}") from None
        except SalesforceMalformedRequest as e:  # INVALID_FIELD, MALFORMED_QUERY, INVALID_TYPE...
            raise ApiError(f"{where} refused the query: {_salesforce_errors(e)}") from None
        except SalesforceError as e:
            if "REQUEST_LIMIT_EXCEEDED" in str(e.content):
                raise ApiError(f"{where}: the org's daily API request limit is used up (REQUEST_LIMIT_EXCEEDED)"
                               ) from None
            if e.status == 429 or e.status in _TRANSIENT:
                raise ApiRetry(f"{where}: HTTP {e.status}: {_salesforce_errors(e)}", rate_limited=e.status == 429
                               ) from e
            raise ApiError(f"{where}: HTTP {e.status}: {_salesforce_errors(e)}") from None
        except requests.RequestException as e:
            if e.response is not None or isinstance(e, ValueError):  # an HTTP answer, or a request never sendable
                raise ApiError(f"{where}: {type(e).__name__}: {e}") from None
            # dropped, reset or cut off mid-body (ChunkedEncodingError): every call here is a read or a job
            # creation, safe to send again (a results page is read again by the same locator)
            raise ApiRetry(f"{where}: {type(e).__name__}: {e}") from e


def _salesforce_errors(e: Any) -> str:
    content = getattr(e, "content", None)
    if isinstance(content, list):
        return "; ".join(f"{c.get('errorCode')}: {' '.join(str(c.get('message')).split())}"
                         for c in content if isinstance(c, dict))
    return " ".join(str(content or e).split())[:500]


class ZendeskGet:
    """``(path, params) -> JSON``: a GET on the Zendesk account of ``conn_id`` (``ZendeskHook``'s zenpy session)."""

    def __init__(self, conn_id: str, owner: str = "") -> None:
        from airflow.providers.zendesk.hooks.zendesk import ZendeskHook

        self.conn_id = conn_id
        try:
            api = ZendeskHook(zendesk_conn_id=conn_id).get_conn().users
        except Exception as e:
            who = f"{owner}: " if owner else ""
            raise ApiError(f"{who}Zendesk connection {conn_id!r}: {type(e).__name__}: {e}") from None
        self.session = api.session
        # zenpy's own override of the scheme (test doubles speak http), as its URLs honour it
        self.base = f"{os.environ.get('ZENPY_FORCE_SCHEME', 'https')}://{api.base_url}"
        self.timeout = api.timeout or 60

    def __call__(self, path: str, params: Mapping[str, Any]) -> Any:
        import requests

        where = f"Zendesk ({self.conn_id})"
        try:
            answer = self.session.get(self.base + path, params=dict(params), timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise ApiRetry(f"{where}: GET {path}: {type(e).__name__}: {e}") from e
        status = answer.status_code
        if 200 <= status < 300:
            return answer.json()
        text = " ".join(answer.text[:300].split())
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), maximum=RETRY_AFTER_MAX)
        if status == 429:
            raise ApiRetry(f"{where}: GET {path} was rate limited ({text})", retry_after, rate_limited=True)
        if status in _TRANSIENT:
            raise ApiRetry(f"{where}: GET {path} answered HTTP {status}: {text}", retry_after)
        if status in (401, 403):
            raise ApiError(f"{where}: the credentials were refused (HTTP {status}: {text})")
        raise ApiError(f"{where}: GET {path} answered HTTP {status}: {text}")
