"""An Airflow ``zendesk`` connection (the official Zendesk provider's), resolved to the Support API's base URL
and the credentials a sync destination sends with.

The provider's conventions (``ZendeskHook``): ``host`` = ``<subdomain>.zendesk.com``, ``login`` = the agent's
email; credentials, first found wins: extra ``use_token`` (the password is an API token), extra ``token``
(an API token), extra ``oauth_token`` (a bearer token, no login needed), else the password (Zendesk retires
password access). zenpy's ``ZENPY_FORCE_SCHEME`` / ``ZENPY_FORCE_NETLOC`` environment overrides are honoured
as zenpy honours them (a test double on plain http). opsflow adds extras ``requests_per_minute`` (the
account's API limit, by plan), ``timeout`` (seconds) and ``verify`` (TLS). Credentials are registered with
Airflow's secret masker before anything is logged.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_opsflow.sync.destinations.transport import HttpTarget

API_PREFIX = "/api/v2"


def _connection(conn_id: str, owner: str) -> Any:
    who = f"{owner}: " if owner else ""
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as e:
        raise AirflowException(f"{who}connection {conn_id!r} is not defined ({e})") from None


def zendesk_target(conn_id: str, owner: str = "") -> HttpTarget:
    """The :class:`HttpTarget` of ``zendesk`` connection ``conn_id`` (base URL ``.../api/v2``).

    :param conn_id: a ``zendesk`` Airflow connection.
    :param owner: who asks (``"dag 'd', task 't'"``), named in errors.
    """
    from airflow.sdk.log import mask_secret

    who = f"{owner}: " if owner else ""
    conn = _connection(conn_id, owner)
    host = (conn.host or "").strip().split("://")[-1].strip("/").rstrip(".")
    if not host:
        raise AirflowFailException(f"{who}connection {conn_id!r} has no host: set it to your Zendesk domain, "
                                   "e.g. 'yoursubdomain.zendesk.com'")
    scheme = os.environ.get("ZENPY_FORCE_SCHEME") or "https"
    netloc = os.environ.get("ZENPY_FORCE_NETLOC") or host
    extra: dict[str, Any] = conn.extra_dejson
    login = conn.login or ""

    def basic(user: str, secret: str, what: str) -> str:
        if not login:
            raise AirflowFailException(f"{who}connection {conn_id!r} has no login: set it to the Zendesk agent's "
                                       f"email ({what} authentication needs it)")
        if not secret:
            raise AirflowFailException(f"{who}connection {conn_id!r}: the {what} is empty")
        mask_secret(secret)
        return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()

    if extra.get("use_token"):
        auth = basic(f"{login}/token", conn.password or "", "API token (password field, use_token)")
    elif extra.get("token"):
        auth = basic(f"{login}/token", str(extra["token"]), "API token (extra 'token')")
    elif extra.get("oauth_token"):
        mask_secret(str(extra["oauth_token"]))
        auth = f"Bearer {extra['oauth_token']}"
    else:
        auth = basic(login, conn.password or "", "password")
    mask_secret(auth)
    verify = extra.get("verify", True)
    return HttpTarget(f"{scheme}://{netloc}{API_PREFIX}", {"Authorization": auth},
                      timeout=float(extra.get("timeout", 30)),
                      verify=verify if isinstance(verify, (bool, str)) else True)


def zendesk_requests_per_minute(conn_id: str, owner: str = "") -> int | None:
    """The connection's extra ``requests_per_minute`` (the account's API limit), None when not set."""
    value = _connection(conn_id, owner).extra_dejson.get("requests_per_minute")
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        who = f"{owner}: " if owner else ""
        raise AirflowFailException(f"{who}connection {conn_id!r}: extra requests_per_minute must be a whole "
                                   f"number, got {value!r}") from None
