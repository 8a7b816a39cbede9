"""An Airflow ``http`` connection, resolved to the base URL and headers a sync destination sends with.

The HTTP provider's conventions: ``host`` (with or without a scheme), ``schema`` = ``http``/``https``,
``port``; ``login``/``password`` = basic auth; the ``extra`` JSON holds headers. opsflow adds: a password
without a login is a bearer token, and extras ``timeout`` (seconds) and ``verify`` (TLS) are settings,
not headers. Credentials are registered with Airflow's secret masker before anything is logged.
"""

from __future__ import annotations

import base64

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

from airflow_opsflow.sync.destinations.transport import HttpTarget

_SETTINGS = ("timeout", "verify", "proxies", "stream", "cert", "check_response", "allow_redirects", "auth_type")


def http_target(conn_id: str, owner: str = "", default_host: str | None = None) -> HttpTarget:
    """The :class:`HttpTarget` of connection ``conn_id``.

    :param conn_id: an ``http`` (or any host/password) Airflow connection.
    :param owner: who asks (``"dag 'd', task 't'"``), named in errors.
    :param default_host: base URL when the connection has no host (e.g. ``https://api.hubapi.com``).
    """
    from airflow.sdk.log import mask_secret

    who = f"{owner}: " if owner else ""
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as e:
        raise AirflowException(f"{who}connection {conn_id!r} is not defined ({e})") from None
    host = (conn.host or default_host or "").strip()
    if not host:
        raise AirflowException(f"{who}connection {conn_id!r} has no host (the API's base URL)")
    if "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    if conn.port:
        scheme, _, rest = host.partition("://")
        name, slash, path = rest.partition("/")
        host = f"{scheme}://{name.split(':')[0]}:{conn.port}{slash}{path}"
    extra = conn.extra_dejson
    nested = extra.get("headers")
    raw_headers = nested if isinstance(nested, dict) else {k: v for k, v in extra.items() if k not in _SETTINGS}
    headers = {str(k): str(v) for k, v in raw_headers.items()}
    if conn.password:
        mask_secret(conn.password)
        if conn.login:
            token = base64.b64encode(f"{conn.login}:{conn.password}".encode()).decode()
            headers.setdefault("Authorization", f"Basic {token}")
        else:
            headers.setdefault("Authorization", f"Bearer {conn.password}")
    for name, value in headers.items():
        if name.lower() in ("authorization", "x-api-key", "api-key", "x-auth-token", "cookie"):
            mask_secret(value)
    verify = extra.get("verify", True)
    return HttpTarget(host.rstrip("/"), headers, timeout=float(extra.get("timeout", 30)),
                      verify=verify if isinstance(verify, (bool, str)) else True)
