"""Render the measurements as Markdown (printed, and spliced into docs/benchmarks.md between markers)."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from _imports import HEAVY, ImportCost

START, END = "<!-- bench:checks:start -->", "<!-- bench:checks:end -->"

# (peer key, peer name, minimum opsflow speed-up) from the project's performance targets.
SPEED_TARGETS = [
    ("soda", "Soda Core", 1.9),
    ("gx", "Great Expectations", 3.3),
    ("common_sql", "common-sql (both operators)", 3.5),
]
HAND_TUNED_TARGET = 1.2


@dataclasses.dataclass
class Outcome:
    key: str
    label: str
    status: str = "ok"  # ok | failed | not available yet | skipped
    detail: str = ""
    seconds: list[float] = dataclasses.field(default_factory=list)
    statements: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    known_statements: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _queries(outcome: Outcome) -> str:
    """Statements reading lineitem per run; in parentheses, other statements (catalog, BEGIN, ...)."""
    if not outcome.statements:
        return "?" if outcome.known_statements is None else str(outcome.known_statements)
    text = _span([scans for scans, _ in outcome.statements])
    others = [other for _, other in outcome.statements]
    return f"{text} (+{_span(others)})" if max(others) else text


def table(outcomes: list[Outcome]) -> str:
    by_key = {o.key: o for o in outcomes}
    hand, ours = by_key.get("hand_tuned"), by_key.get("opsflow")
    lines = [
        "| contender | median wall s | min-max s | queries issued | x hand-tuned | opsflow speed-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        if not o.ok:
            # Last line of the error only, and no pipes: it has to fit in one table cell.
            detail = o.detail.strip().splitlines()[-1][:160].replace("|", "/") if o.detail.strip() else ""
            lines.append(f"| {o.label} | {o.status}{': ' + detail if detail else ''} | | | | |")
            continue
        ratio = f"{o.median / hand.median:.2f}" if hand and hand.ok else "n/a"
        speedup = "—" if o.key == "opsflow" else (f"{o.median / ours.median:.2f}x" if ours and ours.ok else "n/a")
        lines.append(
            f"| {o.label} | {o.median:.3f} | {min(o.seconds):.3f}-{max(o.seconds):.3f} | {_queries(o)} "
            f"| {ratio} | {speedup} |"
        )
    return "\n".join(lines)


def targets(outcomes: list[Outcome]) -> str:
    """The project's performance targets, each with the measured figure and met / not met."""
    by_key = {o.key: o for o in outcomes}
    ours, hand = by_key.get("opsflow"), by_key.get("hand_tuned")
    missing = None if ours and ours.ok else f"opsflow {ours.status if ours else 'not run'}"
    lines = []
    head = f"- opsflow ≤ {HAND_TUNED_TARGET} x hand-tuned:"
    if missing or ours is None:
        lines.append(f"{head} n/a ({missing})")
    elif hand is None or not hand.ok:
        lines.append(f"{head} n/a (hand-tuned {hand.status if hand else 'not run'})")
    else:
        ratio = ours.median / hand.median
        lines.append(f"{head} {ratio:.3f} x — **{'met' if ratio <= HAND_TUNED_TARGET else 'not met'}**")
    for key, name, need in SPEED_TARGETS:
        peer = by_key.get(key)
        head = f"- opsflow ≥ {need}x faster than {name}:"
        if missing or ours is None:
            lines.append(f"{head} n/a ({missing})")
        elif peer is None or not peer.ok:
            lines.append(f"{head} n/a ({name} {peer.status if peer else 'not run'})")
        else:
            speedup = peer.median / ours.median
            lines.append(f"{head} {speedup:.3f}x — **{'met' if speedup >= need else 'not met'}**")
    return "\n".join(lines)


def imports_section(cost: ImportCost | None) -> str:
    if cost is None:
        return "Import cost was not measured."
    lines = [
        "| fresh interpreter imports | median ms | of " + " / ".join(HEAVY) + " loaded |",
        "| --- | ---: | --- |",
    ]
    for v in cost.variants:
        if v.error or not v.seconds:
            lines.append(f"| `{' + '.join(v.modules)}` | failed: {v.error or 'no samples'} | |")
        else:
            lines.append(f"| {v.label} | {v.median_ms:.0f} | {', '.join(v.heavy) or 'none'} |")
    base = cost.variants[0]
    ok = [v for v in cost.variants[1:] if v.seconds and not v.error]
    if base.seconds and ok:
        lines.append("")
        for v in ok:
            added = sorted(set(v.heavy) - set(base.heavy))
            lines.append(
                f"- {v.label}: **{v.median_ms - base.median_ms:+.0f} ms** over `airflow.sdk` alone; "
                f"heavy modules added by opsflow: {', '.join(added) or 'none'}"
            )
        spread = f"{min(base.seconds) * 1000:.0f}-{max(base.seconds) * 1000:.0f} ms"
        lines.append(f"- noise: `airflow.sdk` alone took {spread} across its samples")
        lines.append(f"- `airflow.sdk` by itself already loads: {', '.join(base.heavy) or 'none of them'}")
    if cost.missing:
        lines.append(f"- not measured yet (package missing): {', '.join(cost.missing)}")
    return "\n".join(lines)


_HEADER = """# Benchmarks

Each section below is generated by a script in `bench/` and replaced wholesale when it runs again
(`make bench` runs them). Figures depend on the machine; each section says what it ran on.
"""


def write_section(doc: Path, body: str) -> None:
    """Replace only our marked section, so other benchmarks can share the file."""
    section = f"{START}\n{body.rstrip()}\n{END}"
    text = doc.read_text() if doc.exists() else _HEADER
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
