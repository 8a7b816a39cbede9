"""JiraTicketHook: the ``jira`` library's client for an ``opsflow_jira`` connection.

A connection type of its own: ``jira`` belongs to apache-airflow-providers-atlassian-jira, which wraps
another SDK. Jira Cloud authenticates with an account email (login) and an API token (password);
Server/Data Center with a personal access token (password, no login). Cloud or Server is detected from
``serverInfo`` (the ``jira`` library does it when connecting), unless the ``deployment`` extra says so.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from jira import JIRA


class JiraTicketHook(BaseHook):
    """A ``jira.JIRA`` client built from an Airflow connection.

    :param jira_conn_id: an ``opsflow_jira`` connection: host = the Jira base URL; Cloud: login = email and
        password = API token; Server/Data Center: password = personal access token. Extras: ``verify``
        (TLS verification, or a CA bundle path; default true), ``timeout`` (seconds, default 30),
        ``deployment`` (``auto``, ``cloud`` or ``server``).
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
    def client(self) -> JIRA:
        from airflow.sdk.log import mask_secret
        from jira import JIRA

        conn = self.get_connection(self.jira_conn_id)
        extra = conn.extra_dejson
        if not conn.host:
            raise ValueError(f"connection {self.jira_conn_id!r}: host must be the Jira base URL")
        server = conn.host if "://" in conn.host else f"https://{conn.host}"
        if conn.port:
            server = f"{server.rstrip('/')}:{conn.port}"
        if not conn.password:
            raise ValueError(f"connection {self.jira_conn_id!r}: the password must hold the API token (Cloud) "
                             "or personal access token (Server/Data Center)")
        mask_secret(conn.password)
        auth: dict[str, Any] = (
            {"basic_auth": (conn.login, conn.password)} if conn.login else {"token_auth": conn.password}
        )
        verify = extra.get("verify", True)
        return JIRA(
            server=server,
            timeout=self.timeout or float(extra.get("timeout", 30)),
            max_retries=self.max_retries,
            options={"verify": verify if isinstance(verify, (bool, str)) else True},
            **auth,
        )

    @property
    def is_cloud(self) -> bool:
        """Jira Cloud (True) or Server/Data Center (False), as configured or as ``serverInfo`` says."""
        deployment = str(self.get_connection(self.jira_conn_id).extra_dejson.get("deployment", "auto")).lower()
        if deployment in ("cloud", "server"):
            return deployment == "cloud"
        return bool(self.client.deploymentType == "Cloud")

    def test_connection(self) -> tuple[bool, str]:
        try:
            info = self.client.server_info()
        except Exception as e:
            return False, f"{type(e).__name__}: {e}"
        return True, f"Connected to Jira {info.get('deploymentType', '')} {info.get('version', '')}".strip()
