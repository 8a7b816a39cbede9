"""What an alert says: one transition of one incident, with its evidence. Rendered per channel by
:mod:`slack_render`, :mod:`email_render` and :mod:`jira_render` (tables by :mod:`airflow_opsflow.core.tables`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_opsflow.core.text import cut
from airflow_opsflow.incidents.lifecycle import Incident, TransitionKind

MASK = "•••"


@dataclass(frozen=True)
class Alert:
    """One alert.

    :param kind: the transition: ``new``, ``escalated``, ``updated``, ``reminder`` or ``resolved``.
    :param result: the check result (``CheckResult.to_dict()``) of the run that caused the transition.
    :param links: label -> URL (the Airflow task log, the ticket...).
    """

    kind: TransitionKind
    incident: Incident
    dag_id: str
    task_id: str
    check_name: str
    result: dict[str, Any]
    entity_key: str | None = None
    links: dict[str, str] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return self.incident.severity

    @property
    def table(self) -> str | None:
        return self.result.get("table")

    @property
    def where(self) -> str:
        return f"{self.dag_id} / {self.task_id}" + (f" / {self.table}" if self.table else "")

    @property
    def headline(self) -> str:
        """One line saying what happened, for notifications and subjects."""
        subject = self.check_name + (f" [{self.entity_key}]" if self.entity_key else "")
        if self.kind == "resolved":
            e = self.result.get("entities") or {}
            noun = e.get("noun") if e.get("resolved") == 1 else e.get("plural")
            cleared = f": {e['resolved']} {noun} resolved," if e.get("resolved") else ""
            dismissed = self.incident.summary.get("dismissed")
            if isinstance(dismissed, dict) and dismissed.get("by"):  # a person closed it, not a passing run
                why = f" ({dismissed['note']})" if dismissed.get("note") else ""
                return _one_line(f"Resolved: {subject} ({self.where}): marked expected by {dismissed['by']}{why}", 250)
            return _one_line(f"Resolved: {subject} ({self.where}){cleared} after {self.incident.occurrences} "
                             "failing run(s)", 250)
        label = {"new": "", "escalated": "Escalated to ERROR: ", "updated": "Update: ",
                 "reminder": "Still failing: "}[self.kind]
        level = "ERROR" if self.severity == "error" else "WARN"
        detail = self.violations_text or self.result.get("message", "")
        # One line (an email subject cannot hold a newline; database errors often have several).
        return _one_line(f"{label or f'{level}: '}{subject} ({self.where}): {detail}", 250)

    @property
    def violations_text(self) -> str:
        entities = self.result.get("entities")
        if entities:
            return str(entities.get("text") or "")
        count, share = self.result.get("violating_count"), self.result.get("violating_share")
        if not count or self.result.get("kind") == "metric":  # counts series, not rows: its message says it
            return str(self.result.get("message") or "")
        return f"{count} violating row(s)" + (f" ({share:.2%})" if share is not None else "")

    def facts(self) -> list[tuple[str, str]]:
        """Label/value pairs shown by every channel, in order."""
        r, inc = self.result, self.incident
        expected, observed = str(r.get("expected") or "-"), _value_text(r.get("observed"))
        o = r.get("observed")
        if r.get("kind") == "metric" and isinstance(o, dict) and o.get("low") is not None:
            expected = f"{o['low']:,.6g} to {o['high']:,.6g} ({expected})"
            observed = f"{o['value']:,.6g} for {o['bucket']} (z {o['z']:+.1f})"
        out = [("Where", self.where), ("Expected", expected)]
        entities = r.get("entities")
        if entities:  # the entity facts say what the count would (Slack shows 10 fields: keep it short)
            out += _entity_facts(entities)
        else:
            out.append(("Observed", observed))
            if r.get("violating_count") is not None and r.get("kind") != "metric":
                out.append(("Violations", self.violations_text or "0"))
        if r.get("threshold") and not entities:
            out.append(("Threshold", str(r["threshold"])))
        if inc.first_seen:
            out.append(("Since", f"{inc.first_seen:%Y-%m-%d %H:%M} UTC, {inc.occurrences} failing run(s)"))
        if r.get("owner"):
            out.append(("Owner", str(r["owner"])))
        return out

    def evidence(self, columns: list[str] | None = None, masked: tuple[str, ...] = (),
                 limit: int = 5) -> tuple[str, list[str], list[list[str]]]:
        """The table an alert shows, with its title: the open entities of a check tracking them (new ones
        first in an update, else the oldest first), otherwise the sample of violating rows."""
        entities = self.result.get("entities")
        if entities and entities.get("listed") and self.kind != "resolved":
            listed = list(entities["listed"])
            if self.kind == "updated":
                listed.sort(key=lambda e: e["state"] != "new")  # stable: oldest first within each
            shown = listed[:limit]
            key_name = str(entities.get("key_name") or "key")
            header = [key_name, "state", "age"] + [c for c in ("amount", "past_sla") if c in shown[0]]
            masked_key = key_is_masked(key_name, masked)
            rows = [[MASK if masked_key else _value_text(e["key"], 40), e["state"], e["age"],
                     *([f"{e['amount']:,.2f}" if e.get("amount") is not None else "NULL"] if "amount" in e else []),
                     *((["yes" if e["past_sla"] else ""]) if "past_sla" in e else [])] for e in shown]
            header = [h.replace("past_sla", "past SLA") for h in header]
            order = "new first" if self.kind == "updated" else "oldest first"
            return (f"Open {entities['plural']} ({order}, {len(rows)} of {entities.get('open', len(rows))})",
                    header, rows)
        header, rows = self.sample_table(columns, masked, limit)
        total = self.result.get("violating_count") or len(self.result.get("samples") or [])
        return f"Sample ({len(rows)} of {total})", header, rows

    def sample_table(self, columns: list[str] | None = None, masked: tuple[str, ...] = (),
                     limit: int = 5) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the sample, limited to ``columns`` and with ``masked`` columns hidden."""
        samples = self.result.get("samples") or []
        if not samples:
            return [], []
        header = [c for c in (columns or list(samples[0])) if c in samples[0]]
        hidden = is_masked(masked)
        rows = [[MASK if hidden(c) else _value_text(s.get(c), 40) for c in header] for s in samples[:limit]]
        return header, rows


def is_masked(masked: Iterable[str]) -> Callable[[str], bool]:
    """Whether a sample column is one of ``masked`` (any case: Snowflake says EMAIL where the DAG says email)."""
    hidden = {m.lower() for m in masked}
    return lambda column: column.lower() in hidden


def key_is_masked(key_name: str, masked: Iterable[str]) -> bool:
    """Whether an entity's key (``key_name``: its columns joined by ``/``) shows a masked column."""
    hidden = is_masked(masked)
    return any(hidden(part) for part in key_name.split("/"))


def masked_samples(samples: list[dict[str, Any]], masked: Iterable[str]) -> list[dict[str, Any]]:
    """The sample rows as stored, each ``masked`` column's value shown as :data:`MASK`, as alerts show it."""
    hidden = is_masked(masked)
    return [{c: MASK if hidden(c) else v for c, v in row.items()} for row in samples]


def _entity_facts(e: dict[str, Any]) -> list[tuple[str, str]]:
    from airflow_opsflow.incidents.entities import age_text

    out = [("Open", f"{e.get('open', 0)} {e['plural']}: {e.get('new', 0)} new, {e.get('still_open', 0)} still open"
                    + (f", {e['resolved']} resolved this run" if e.get("resolved") else ""))]
    if e.get("oldest_age_s") is not None and e.get("open"):
        out.append(("Oldest", age_text(float(e["oldest_age_s"]))))
    if e.get("sla_s") is not None:
        out.append(("SLA", f"{age_text(float(e['sla_s']))}: {e.get('past_sla', 0)} past it"))
    if e.get("at_stake") is not None:
        partly_new = e.get("new_at_stake") and e["new_at_stake"] != e["at_stake"]
        out.append(("At stake", f"{e['at_stake']:,.2f}" + (f" ({e['new_at_stake']:,.2f} new)" if partly_new else "")))
    if e.get("escalation"):
        out.append(("Escalation", str(e["escalation"])))
    return out


def _one_line(text: str, width: int) -> str:
    return cut(" ".join(text.split()), width)


def _value_text(value: Any, width: int = 80) -> str:
    """A value as an alert shows it, cut to ``width``: NULL for None, a dict as ``min -120, max 899.65``."""
    if value is None:
        return "NULL"
    text = (", ".join(f"{k} {_value_text(v, width)}" for k, v in value.items()) if isinstance(value, dict)
            else str(value))
    return cut(text, width)
