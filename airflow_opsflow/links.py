"""Extra links on opsflow tasks in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

TICKETS_XCOM = "tickets"


class TicketLink(BaseOperatorLink):
    """"Ticket(s)": the incident's ticket in whichever system holds it (Jira, HubSpot, Salesforce, Zendesk),
    or a Jira search listing several Jira tickets.

    The task pushes ``[{"key", "url", "system", "id"}, ...]`` to XCom key ``tickets``; Airflow 3 computes the
    link on the worker when the task ends (for every task carrying it, tickets or not) and keeps it for the UI.
    Several tickets of another system (or of several systems) link to the first one: HubSpot, Salesforce and
    Zendesk have no documented search URL that lists exactly a set of tickets by id.
    """

    name = "Ticket(s)"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        # A missing key is normal (no alerts, or the task failed first), but reading one by key logs an
        # "XCom not found" error; the task's values of all map indexes are read without that.
        pushed = XCom.get_all(key=TICKETS_XCOM, dag_id=ti_key.dag_id, task_id=ti_key.task_id, run_id=ti_key.run_id)
        if not pushed:
            return ""
        if ti_key.map_index is None or ti_key.map_index < 0:
            tickets: list[dict[str, Any]] = pushed[0] or []
        else:  # a mapped task: this instance's own value
            tickets = XCom.get_value(ti_key=ti_key, key=TICKETS_XCOM) or []
        return ticket_url(tickets)


JiraTicketLink = TicketLink  # its former name (registered by earlier versions of get_provider_info)


def ticket_url(tickets: list[dict[str, Any]]) -> str:
    """One ticket's URL; for several Jira tickets of one site, a JQL search listing them; otherwise the
    first ticket's URL. Empty without tickets."""
    if not tickets:
        return ""
    first = str(tickets[0]["url"])
    base = first.split("/browse/")[0]
    if len(tickets) == 1 or not all(_is_jira(t) and str(t["url"]).startswith(f"{base}/browse/") for t in tickets):
        return first
    keys = ", ".join(t["key"] for t in tickets)
    return f"{base}/issues/?jql={quote(f'key in ({keys}) ORDER BY created DESC')}"


def _is_jira(ticket: dict[str, Any]) -> bool:
    # Entries pushed before tickets named their system were all Jira's (``/browse/KEY`` URLs).
    system = ticket.get("system") or ("jira" if "/browse/" in str(ticket.get("url", "")) else "")
    return system == "jira"


class OpsViewLink(BaseOperatorLink):
    """"Ops view": the task's page in opsflow's Ops view inside the Airflow UI (its incidents, every status),
    from Airflow's ``[api] base_url`` when set, else relative to the UI's host."""

    name = "Ops view"
    page = "incidents"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return ops_view_url(self.page, dag_id=ti_key.dag_id, task_id=ti_key.task_id)


class OpsSyncsLink(OpsViewLink):
    """"Ops view" of a sync task: its runs, rejected records and pending records."""

    page = "syncs"


def ops_view_url(page: str, **filters: str) -> str:
    """A deep link into the Ops view (``page`` with ``filters``), pasteable into a message."""
    from urllib.parse import urlencode

    from airflow.sdk import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    query = urlencode({"page": page, **({"status": "all"} if page == "incidents" else {}), **filters})
    return f"{base}/opsflow/ui/?{query}"
