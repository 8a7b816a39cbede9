"""JiraTicketHook: the ``jira`` library's client for an ``opsflow_jira`` connection, and the ``httpx`` async
client of TicketStatusTrigger, both from one reading of the connection (:class:`JiraConnectionSettings`).

A connection type of its own: ``jira`` belongs to apache-airflow-providers-atlassian-jira, which wraps
another SDK. Jira Cloud authenticates with an account email (login) and an API token (password);
Server/Data Center with a personal access token (password, no login). Cloud or Server is detected from
``serverInfo`` (the ``jira`` library does it when connecting), unless the ``deployment`` extra says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    import httpx
    from airflow.sdk import Connection
    from jira import JIRA


class JiraConnectionError(ValueError):
    """An ``opsflow_jira`` connection that cannot be used as it is; the message names the connection."""


@dataclass(frozen=True)
class JiraConnectionSettings:
    """What an ``opsflow_jira`` connection says, read once by :func:`jira_connection_settings`.

    ``url``: the Jira base URL, without a trailing slash. ``login``: the account email (Cloud, Basic auth), or
    None (Server/Data Center, Bearer personal access token). ``deployment``: ``auto``, ``cloud`` or ``server``.
    ``verify``: TLS verification on/off, or a CA bundle path. ``timeout``: seconds per request.
    """

    conn_id: str
    url: str
    login: str | None
    token: str = field(repr=False)
    deployment: str
    verify: bool | str
    timeout: float

    @property
    def cloud(self) -> bool | None:
        """True/False when the ``deployment`` extra says so; None: ask ``serverInfo``."""
        return None if self.deployment == "auto" else self.deployment == "cloud"


def jira_connection_settings(conn: Connection, conn_id: str) -> JiraConnectionSettings:
    """The one reader of an ``opsflow_jira`` connection (see :class:`JiraTicketHook` for its fields)."""
    from airflow.sdk.log import mask_secret

    if not conn.host:
        raise JiraConnectionError(f"connection {conn_id!r}: host must be the Jira base URL")
    if not conn.password:
        raise JiraConnectionError(f"connection {conn_id!r}: the password must hold the API token (Cloud) or "
                                  "personal access token (Server/Data Center)")
    mask_secret(conn.password)
    url = conn.host if "://" in conn.host else f"https://{conn.host}"
    if conn.port:
        url = f"{url.rstrip('/')}:{conn.port}"
    extra = conn.extra_dejson
    deployment = str(extra.get("deployment", "auto")).lower()
    try:
        timeout = float(extra.get("timeout") or 30)
    except (TypeError, ValueError):
        raise JiraConnectionError(f"connection {conn_id!r}: the timeout extra must be seconds, not "
                                  f"{extra.get('timeout')!r}") from None
    return JiraConnectionSettings(
        conn_id=conn_id,
        url=url.rstrip("/"),
        login=conn.login or None,
        token=conn.password,
        deployment=deployment if deployment in ("cloud", "server") else "auto",
        verify=_verify(extra.get("verify", True)),
        timeout=timeout,
    )


def _verify(value: Any) -> bool | str:
    """The ``verify`` extra: the form saves a boolean, but connections written by hand (env vars, the CLI,
    secrets backends) often hold ``"false"``/``"True"``; any other string is a CA bundle path."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value if isinstance(value, (bool, str)) else True


class JiraTicketHook(BaseHook):
    """A ``jira.JIRA`` client (:attr:`client`) and an ``httpx.AsyncClient`` (:meth:`get_async_client`) built
    from one Airflow connection.

    :param jira_conn_id: an ``opsflow_jira`` connection: host = the Jira base URL; Cloud: login = email and
        password = API token; Server/Data Center: password = personal access token. Extras: ``verify``
        (TLS verification: true/false, also as a string, or a CA bundle path; default true), ``timeout``
        (seconds, default 30), ``deployment`` (``auto``, ``cloud`` or ``server``).
    :param timeout: seconds per request; overrides the connection's ``timeout`` extra.
    :param max_retries: retries of the ``jira`` session for rate limits (429) and unavailability (503).
        Creates are never retried blindly by opsflow: it searches again before creating.
    """

    conn_name_attr = "jira_conn_id"
    default_conn_name = "opsflow_jira_default"
    conn_type = "opsflow_jira"
    hook_name = "Jira (opsflow tickets)"

    def __init__(self, jira_conn_id: str = default_conn_name, timeout: float | None = None,
                 max_retries: int = 3) -> None:
        super().__init__()
        self.jira_conn_id = jira_conn_id
        self.timeout = timeout
        self.max_retries = max_retries

    @cached_property
    def settings(self) -> JiraConnectionSettings:
        return jira_connection_settings(self.get_connection(self.jira_conn_id), self.jira_conn_id)

    async def aget_settings(self) -> JiraConnectionSettings:
        """:attr:`settings` without blocking the event loop (for triggers)."""
        if "settings" not in self.__dict__:
            conn = await self.aget_connection(self.jira_conn_id)
            self.__dict__["settings"] = jira_connection_settings(conn, self.jira_conn_id)
        return self.settings

    @cached_property
    def client(self) -> JIRA:
        from jira import JIRA

        s = self.settings
        auth: dict[str, Any] = {"basic_auth": (s.login, s.token)} if s.login else {"token_auth": s.token}
        return JIRA(
            server=s.url,
            timeout=self.timeout or s.timeout,
            max_retries=self.max_retries,
            options={"verify": s.verify},
            **auth,
        )

    def get_async_client(self, settings: JiraConnectionSettings | None = None) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on the Jira base URL, authenticated, JSON, with the connection's TLS and
        timeout settings. Loads CA certificates from disk: call it off the event loop (``asyncio.to_thread``),
        with ``settings`` from :meth:`aget_settings`. The caller closes the client (``async with``)."""
        import base64
        import ssl

        import httpx

        s = settings or self.settings
        # Cloud: account email + API token; Server/Data Center: personal access token.
        auth = ("Basic " + base64.b64encode(f"{s.login}:{s.token}".encode()).decode()) if s.login \
            else f"Bearer {s.token}"
        # httpx deprecates a CA bundle path as ``verify``: it takes an SSL context instead.
        verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=s.verify) if isinstance(s.verify, str) \
            else s.verify
        return httpx.AsyncClient(
            base_url=s.url,
            headers={"Authorization": auth, "Accept": "application/json"},
            timeout=self.timeout or s.timeout,
            verify=verify,
        )

    @property
    def is_cloud(self) -> bool:
        """Jira Cloud (True) or Server/Data Center (False), as configured or as ``serverInfo`` says."""
        cloud = self.settings.cloud
        return bool(self.client.deploymentType == "Cloud") if cloud is None else cloud

    def test_connection(self) -> tuple[bool, str]:
        try:
            info = self.client.server_info()
        except Exception as e:
            return False, f"{type(e).__name__}: {e}"
        return True, f"Connected to Jira {info.get('deploymentType', '')} {info.get('version', '')}".strip()
