"""An incident as a ticket in a system without wiki markup (HubSpot, Zendesk, Salesforce): a one-line
summary, and the evidence as plain text and as HTML (the same content as the email alert)."""

from __future__ import annotations

from airflow_opsflow.core.text import cut
from airflow_opsflow.incidents import email_render
from airflow_opsflow.incidents.alert import Alert

SUMMARY_MAX = 250  # under every system's subject limit (Jira 255, Salesforce Subject 255)


def summary(alert: Alert) -> str:
    """The ticket's title: the author's words for TicketOperator(summary=...), else check, entity, where."""
    if alert.result.get("kind") == "ticket":
        text = " ".join(str(alert.result.get("message") or alert.check_name).split())
    else:
        entity = f" [{alert.entity_key}]" if alert.entity_key else ""
        text = f"[opsflow] {alert.check_name}{entity} failing in {alert.dag_id}/{alert.task_id}"
        if alert.table:
            text += f" ({alert.table})"
    return cut(text, SUMMARY_MAX)


def body(alert: Alert, sample_columns: list[str] | None = None, masked: tuple[str, ...] = (),
         sample_rows: int = 10) -> tuple[str, str]:
    """(plain text, HTML) of the alert: what happened, the facts, the samples (``masked`` hidden), links.
    A ticket's description, and the comment of every later transition (its headline says which)."""
    if alert.result.get("kind") == "ticket" and alert.kind == "new":  # TicketOperator(description=...)
        text = str(alert.result.get("description") or alert.result.get("message") or "")
        links = "\n".join(f"{label}: {url}" for label, url in alert.links.items() if url)
        plain = "\n\n".join(p for p in (text, links) if p)
        return plain, "<p>" + "<br>".join(_escape(line) for line in plain.splitlines()) + "</p>"
    _, html, plain = email_render.render(alert, sample_columns, masked, sample_rows)
    return plain, html


def _escape(text: str) -> str:
    from html import escape

    return escape(text)
