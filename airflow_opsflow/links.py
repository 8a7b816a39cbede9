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
    worker when the task ends and keeps it for the UI.
    """

    name = "Jira ticket(s)"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        tickets: list[dict[str, Any]] = XCom.get_value(ti_key=ti_key, key=TICKETS_XCOM) or []
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
