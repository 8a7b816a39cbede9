"""An incident as a Jira ticket: summary, description and comments in Jira's wiki markup (REST v2)."""

from __future__ import annotations

from airflow_opsflow.core.tables import text_table
from airflow_opsflow.incidents.alert import Alert
from airflow_opsflow.incidents.ticket_render import summary

__all__ = ["comment", "description", "summary"]


def description(alert: Alert, sample_columns: list[str] | None = None, masked: tuple[str, ...] = (),
                sample_rows: int = 10) -> str:
    """The evidence: what failed, where, observed vs expected, samples (``masked`` columns hidden), links."""
    if alert.result.get("kind") == "ticket":  # TicketOperator(summary=..., description=...)
        link_line = " · ".join(f"[{label}|{url}]" for label, url in alert.links.items() if url)
        return "\n\n".join(p for p in (str(alert.result.get("description") or ""), link_line) if p)
    parts = [f"h3. {_escape(alert.headline)}"]
    if alert.result.get("description"):
        parts.append(_escape(str(alert.result["description"])))
    parts.append("\n".join(f"||{label}|{_escape(value)}|" for label, value in alert.facts()))
    title, header, rows = alert.evidence(sample_columns, masked, sample_rows)
    if rows:
        parts.append(f"{_escape(title)}:\n{_noformat(header, rows)}")
    links = [f"[{label}|{url}]" for label, url in alert.links.items() if url]
    if links:
        parts.append(" · ".join(links))
    parts.append(f"_Opened by opsflow for incident {alert.incident.incident_id}; it resolves this ticket when "
                 "the check passes again._")
    return "\n\n".join(parts)


def comment(alert: Alert, sample_columns: list[str] | None = None, masked: tuple[str, ...] = (),
            sample_rows: int = 10) -> str:
    """A follow-up: still failing, escalated, reopened, or resolved."""
    if alert.kind == "resolved":
        return f"(/) {_escape(alert.headline)}"
    lead = {"new": "(!) The incident is back", "escalated": "(x) Escalated to ERROR", "updated": "(+) Update",
            "reminder": "(i) Still failing"}[alert.kind]
    facts = "\n".join(f"* {label}: {_escape(value)}" for label, value in alert.facts())
    text = f"{lead}: {_escape(alert.violations_text or alert.result.get('message') or '')}\n{facts}"
    title, header, rows = alert.evidence(sample_columns, masked, sample_rows)
    if rows and alert.result.get("entities"):  # which entities: the point of an update
        text += f"\n\n{_escape(title)}:\n{_noformat(header, rows)}"
    return text


def _noformat(header: list[str], rows: list[list[str]]) -> str:
    """A monospace table in a {noformat} block (shown as is), which a cell saying "{noformat}" cannot end."""
    return f"{{noformat}}\n{text_table(header, rows, fence='{noformat}')}\n{{noformat}}"


def _escape(text: str) -> str:
    # Pipes and braces are table/macro syntax in wiki markup.
    return text.replace("|", "\\|").replace("{", "\\{").replace("}", "\\}")
