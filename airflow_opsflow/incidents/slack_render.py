"""Block Kit for an alert, inside Slack's limits (50 blocks, 3,000 characters per text), saying so
when something had to be cut."""

from __future__ import annotations

from typing import Any

from airflow_opsflow.core.tables import text_table
from airflow_opsflow.incidents.alert import Alert
from airflow_opsflow.incidents.entities import age_text

MAX_BLOCKS = 50
MAX_TEXT = 3000
LINKS_BLOCK = "opsflow_links"  # the block of links (task log of the sending try, tickets)
_ICON = {"new": ":rotating_light:", "escalated": ":red_circle:", "updated": ":heavy_plus_sign:",
         "reminder": ":hourglass:",
         "resolved": ":white_check_mark:"}


def render(alert: Alert, sample_columns: list[str] | None = None, masked: tuple[str, ...] = (),
           sample_rows: int = 5) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and the blocks of ``alert``."""
    icon = _ICON[alert.kind] if alert.severity == "error" or alert.kind == "resolved" else ":warning:"
    text = f"{icon} {escape(alert.headline)}"
    return _fit_text(text), fit([_section(f"*{text}*"), *_details(alert, sample_columns, masked, sample_rows)])


def _details(alert: Alert, sample_columns: list[str] | None, masked: tuple[str, ...],
             sample_rows: int) -> list[dict[str, Any]]:
    """The blocks under the headline: description, facts, evidence table, links."""
    blocks: list[dict[str, Any]] = []
    description = alert.result.get("description")
    if description:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": _fit_text(escape(str(description)))}]})
    if alert.kind != "resolved":
        facts = alert.facts()
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _fit_text(f"*{label}*\n{escape(value)}", 2000)} for label, value in facts[:10]]})
        title, header, rows = alert.evidence(sample_columns, masked, sample_rows)
        if rows:
            table = text_table(header, rows, fence="```")  # a cell holding ``` cannot end the code block
            blocks.append(_section(f"{escape(title)}:\n```{escape(table)}```"))
    links = [f"<{url}|{label}>" for label, url in alert.links.items() if url]
    if links:
        blocks.append({"type": "context", "block_id": LINKS_BLOCK,
                       "elements": [{"type": "mrkdwn", "text": _fit_text(" · ".join(links))}]})
    return blocks


def resolved_original(alert: Alert) -> tuple[str, list[dict[str, Any]]]:
    """What the incident's first message becomes once it resolves (``chat.update``)."""
    text = f":white_check_mark: ~{escape(alert.check_name)}~ resolved — {escape(alert.headline)}"
    return _fit_text(text), [_section(_fit_text(text))]


def escalated_original(alert: Alert, sample_columns: list[str] | None = None, masked: tuple[str, ...] = (),
                       sample_rows: int = 5) -> tuple[str, list[dict[str, Any]]]:
    """What the incident's first message becomes once it escalates (``chat.update``), and again on later
    alerts of the escalated incident: a header saying so, with its severity, age and SLA, over the current
    evidence (the thread keeps the history)."""
    text = f":rotating_light: ESCALATED to {_level(alert)} — {escape(escalation_line(alert))}"
    return _fit_text(text), fit([_section(f"*{text}*"), *_details(alert, sample_columns, masked, sample_rows)])


def escalation_line(alert: Alert) -> str:
    """``stuck_deliveries (dag / task / table): oldest stuck delivery open for 49 h, past its SLA of 48 h``;
    without entities, the incident's own age: ``... (dag / task / table): open for 3 h (4 failing runs)``."""
    subject = alert.check_name + (f" [{alert.entity_key}]" if alert.entity_key else "")
    e = alert.result.get("entities") or {}
    inc = alert.incident
    oldest, sla = e.get("oldest_age_s"), e.get("sla_s")
    if e.get("open") and oldest is not None:  # the entities' age is what their SLA is about
        age = f"oldest {e.get('noun') or 'entity'} open for {age_text(float(oldest))}"
        if sla is not None and float(oldest) >= float(sla):
            past = int(e.get("past_sla") or 0)
            age += f", past its SLA of {age_text(float(sla))}" + (f" ({past} past it)" if past > 1 else "")
        elif e.get("escalation"):  # escalated for another reason (money at stake, escalate_after)
            age += f"; {e['escalation']}"
    elif inc.first_seen is not None and inc.last_seen is not None:
        age = f"open for {age_text((inc.last_seen - inc.first_seen).total_seconds())} " \
              f"({inc.occurrences} failing run{'s' if inc.occurrences != 1 else ''})"
    else:
        age = f"{inc.occurrences} failing run(s)"
    return " ".join(f"{subject} ({alert.where}): {age}".split())


def _level(alert: Alert) -> str:
    return "ERROR" if alert.severity == "error" else "WARN"


def fit(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep at most 50 blocks; the last one says how many were left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    return [*kept, _section(f"_({len(blocks) - len(kept)} more blocks not shown: Slack allows {MAX_BLOCKS})_")]


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: data must not become links or @channel pings (``<!channel>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit_text(text)}}


def _fit_text(text: str, limit: int = MAX_TEXT) -> str:
    """Shorten to Slack's limit, closing a code block the cut left open and saying it was truncated (unlike
    :func:`airflow_opsflow.core.text.cut`, which knows no code blocks)."""
    if len(text) <= limit:
        return text
    note = " …(truncated)"
    kept = text[: limit - len(note) - 3]  # 3: room for the closing fence
    if kept.count("```") % 2:
        kept += "```"
    return kept + note
