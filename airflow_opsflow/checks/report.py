"""A plain-text report of check results, for task logs and the demo."""

from __future__ import annotations

import json
from typing import Any

from airflow_opsflow.core.results import CheckResult, worst
from airflow_opsflow.core.text import cut

_ICON = {"pass": "PASS", "skipped": "SKIP", "warn": "WARN", "fail": "FAIL", "error": "ERROR"}


def format_report(results: list[CheckResult], title: str = "", max_samples: int = 5) -> str:
    """A summary line, one table row per check, then the evidence for each check that did not pass."""
    counts = {s: sum(r.status == s for r in results) for s in _ICON}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = [f"{title + ': ' if title else ''}{len(results)} checks, {summary} -> {worst(results).upper()}"]
    rows = [["STATUS", "CHECK", "TABLE", "KIND", "OBSERVED", "EXPECTED", "VIOLATIONS"]]
    for r in results:
        violations = ""
        if r.violating_count is not None:
            violations = str(r.violating_count)
            if r.violating_share is not None and r.violating_count:
                violations += f" ({r.violating_share:.2%})"
        rows.append([_ICON[r.status], r.name, r.table or "-", r.kind,
                     _observed(r), r.expected, violations])
    lines += _table(rows)
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
            sample_rows = [cols] + [[_short(s.get(c)) for c in cols] for s in r.samples[:max_samples]]
            lines += ["    " + line for line in _table(sample_rows)]
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
        return f"min {_short(o.get('min'))}, max {_short(o.get('max'))}"
    if r.kind == "metric" and isinstance(o, dict):
        if "series" in o:
            return f"{o['anomalous']} of {o['series']} series anomalous"
        band = f" (expected {_short(o['low'])}..{_short(o['high'])})" if o.get("low") is not None else ""
        return f"{_short(o.get('value'))}{band}"
    if r.kind == "unique" and isinstance(o, dict):
        return f"{o.get('duplicate_keys')} duplicated keys"
    return _short(o)


def _short(value: Any, width: int = 40) -> str:
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return cut(text, width, "...")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
