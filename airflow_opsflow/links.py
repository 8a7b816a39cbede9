"""Extra links on opsflow tasks in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

TICKETS_XCOM = "tickets"


class JiraTicketLink(BaseOperatorLink):
    """"Jira ticket(s)": the incident's ticket, or a Jira search listing all of them.

    The task pushes ``[{"key", "url"}, ...]`` to XCom key ``tickets``; Airflow 3 computes the link on the
    worker when the task ends (for every task carrying it, tickets or not) and keeps it for the UI.
    """

    name = "Jira ticket(s)"

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


def ticket_url(tickets: list[dict[str, Any]]) -> str:
    """One ticket's URL, or a search for several (on the first ticket's Jira); empty without tickets."""
    if not tickets:
        return ""
    if len(tickets) == 1:
        return str(tickets[0]["url"])
    base = str(tickets[0]["url"]).split("/browse/")[0]
    keys = ", ".join(t["key"] for t in tickets)
    return f"{base}/issues/?jql={quote(f'key in ({keys}) ORDER BY created DESC')}"
