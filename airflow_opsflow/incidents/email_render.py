"""An alert as an email: subject, HTML and plain text with the same content."""

from __future__ import annotations

from html import escape

from airflow_opsflow.core.tables import html_table, text_table
from airflow_opsflow.incidents.alert import Alert

_CELL = "padding:2px 8px;border:1px solid #ddd"


def render(alert: Alert, sample_columns: list[str] | None = None, masked: tuple[str, ...] = (),
           sample_rows: int = 10) -> tuple[str, str, str]:
    """Return (subject, html, text)."""
    subject = f"[opsflow] {alert.headline}"
    facts = alert.facts() if alert.kind != "resolved" else [("Where", alert.where)]
    title, header, rows = alert.evidence(sample_columns, masked, sample_rows)
    description = alert.result.get("description")

    text_parts = [alert.headline, ""]
    if description:
        text_parts += [str(description), ""]
    text_parts += [f"{label}: {value}" for label, value in facts]
    if rows:
        text_parts += ["", f"{title}:", text_table(header, rows)]
    text_parts += ["", *(f"{label}: {url}" for label, url in alert.links.items() if url)]

    cell = f'style="{_CELL};text-align:left"'
    html = [f"<h3>{escape(alert.headline)}</h3>"]
    if description:
        html.append(f"<p>{escape(str(description))}</p>")
    html.append("<table>" + "".join(f"<tr><th {cell}>{escape(k)}</th><td {cell}>{escape(v)}</td></tr>"
                                   for k, v in facts) + "</table>")
    if rows:
        html.append(f"<p>{escape(title)}:</p>")
        html.append(html_table(header, rows, th_style=_CELL, td_style=_CELL))
    links = [f'<a href="{escape(url)}">{escape(label)}</a>' for label, url in alert.links.items() if url]
    if links:
        html.append("<p>" + " · ".join(links) + "</p>")
    return subject, "\n".join(html), "\n".join(text_parts).strip() + "\n"
