"""A plain-text report of check results, for task logs and the demo."""

from __future__ import annotations

import json
from typing import Any

from airflow_opsflow.core.results import CheckResult, worst
from airflow_opsflow.core.tables import text_table
from airflow_opsflow.core.text import cut

_ICON = {"pass": "PASS", "skipped": "SKIP", "warn": "WARN", "fail": "FAIL", "error": "ERROR"}


def format_report(results: list[CheckResult], title: str = "", max_samples: int = 5) -> str:
    """A summary line, one table row per check, then the evidence for each check that did not pass."""
    counts = {s: sum(r.status == s for r in results) for s in _ICON}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = [f"{title + ': ' if title else ''}{len(results)} checks, {summary} -> {worst(results).upper()}"]
    rows: list[list[str]] = []
    for r in results:
        violations = ""
        if r.violating_count is not None:
            violations = str(r.violating_count)
            if r.violating_share is not None and r.violating_count:
                violations += f" ({r.violating_share:.2%})"
        rows.append([_ICON[r.status], r.name, r.table or "-", r.kind,
                     _observed(r), r.expected, violations])
    lines += text_table(["STATUS", "CHECK", "TABLE", "KIND", "OBSERVED", "EXPECTED", "VIOLATIONS"], rows,
                        rule=True).splitlines()
    for r in results:
        if r.status == "pass":
            continue
        lines.append("")
        lines.append(f"[{_ICON[r.status]}] {r.name}" + (f" ({r.description})" if r.description else "")
                     + (f" - owner: {r.owner}" if r.owner else ""))
        if r.message:
            lines.append(f"    {r.message}")
        if r.samples:
            lines.append(f"    sample of violating rows ({min(len(r.samples), max_samples)} of {r.violating_count}):")
            cols = list(r.samples[0])
            sample_rows = [[_json_text(s.get(c)) for c in cols] for s in r.samples[:max_samples]]
            lines += ["    " + line for line in text_table(cols, sample_rows, rule=True).splitlines()]
    return "\n".join(lines)


def _observed(r: CheckResult) -> str:
    o = r.observed
    if o is None:
        return "-"
    if r.kind == "freshness" and isinstance(o, dict):
        from datetime import timedelta

        from airflow_opsflow.core.durations import format_duration

        return f"age {format_duration(timedelta(seconds=o.get('age_s', 0)))}"
    if r.kind == "between" and isinstance(o, dict):
        return f"min {_json_text(o.get('min'))}, max {_json_text(o.get('max'))}"
    if r.kind == "metric" and isinstance(o, dict):
        if "series" in o:
            return f"{o['anomalous']} of {o['series']} series anomalous"
        band = f" (expected {_json_text(o['low'])}..{_json_text(o['high'])})" if o.get("low") is not None else ""
        return f"{_json_text(o.get('value'))}{band}"
    if r.kind == "unique" and isinstance(o, dict):
        return f"{o.get('duplicate_keys')} duplicated keys"
    return _json_text(o)


def _json_text(value: Any, width: int = 40) -> str:
    """A value for the log, cut to ``width``: NULL for None, text as is, anything else as JSON."""
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return cut(text, width, "...")
