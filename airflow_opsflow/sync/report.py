"""What a sync run did (or, dry, would do): counts, rejected records, a readable summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

COUNT_NAMES = ("added", "changed", "deleted", "unchanged", "failed", "invalid", "skipped")


@dataclass
class SyncReport:
    """The outcome of one run.

    ``counts`` holds records ``added`` (new keys delivered), ``changed``, ``deleted``, ``unchanged``,
    ``failed`` (rejected by the destination or given up; retried next run), ``invalid`` (null/duplicate
    keys, uncastable values: never sent) and ``skipped`` (not sent because of the mode, or an update of a
    record the destination does not have).
    """

    sync_id: str
    mode: str
    diff: str  # pushdown | streaming
    full: bool  # a full diff (every row read), not an incremental read
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))
    failures: list[dict[str, str]] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    preview: list[dict[str, Any]] = field(default_factory=list)  # dry run: sample of what would change
    delete_keys: list[str] = field(default_factory=list)  # mirror: keys it would delete (first 100; dry or refused)
    requests: dict[str, int] = field(default_factory=dict)  # dry run: expected; else made
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait_s: float = 0.0
    splits: int = 0
    rows_read: int = 0
    seconds: float = 0.0
    refused: str | None = None
    # The planned operations (key, operation, row hash), hashed: equal in a dry run and in the real run that
    # follows on the same data. None when a real run stopped before it saw its whole plan.
    plan_hash: str | None = None  # dry runs, and real runs that count their plan first (approval, change guard)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        c = self.counts
        head = "DRY RUN (nothing sent, state untouched): would send" if self.dry_run else "sent"
        lines = [
            f"sync {self.sync_id!r} ({self.mode}, {self.diff} diff, {'full' if self.full else 'incremental'} read "
            f"of {self.rows_read:,} rows in {self.seconds:.1f} s): {head} {c['added']:,} added, "
            f"{c['changed']:,} changed, {c['deleted']:,} deleted; {c['unchanged']:,} unchanged, "
            f"{c['failed']:,} failed, {c['invalid']:,} invalid, {c['skipped']:,} skipped",
        ]
        if self.requests:
            what = "expected requests" if self.dry_run else "requests"
            lines.append(f"  {what}: " + ", ".join(f"{k} {v:,}" for k, v in self.requests.items()))
        if self.retries or self.rate_limited or self.splits:
            lines.append(f"  retries {self.retries}, rate-limited answers {self.rate_limited} "
                         f"(waited {self.rate_limit_wait_s:.1f} s), batches split {self.splits}")
        for reason, n in self.invalid_reasons.items():
            sample = ", ".join([str(i["key"]) for i in self.invalid if i["reason"] == reason][:5])
            lines.append(f"  invalid ({reason}): {n:,} rows, e.g. {sample}")
        for f in self.failures[:10]:
            lines.append(f"  failed {f['kind']} {f['key']}: {f['error']}")
        if len(self.failures) > 10:
            lines.append(f"  ... {c['failed'] - 10:,} more failed records (XCom 'failures' lists up to 100)")
        for p in self.preview[:10]:
            lines.append(f"  would {p['op']} {p['key']}: {p['diff']}")
        if self.delete_keys and not self.dry_run:  # refused: the count is in the refusal
            lines.append(f"  refused deletes, e.g. {', '.join(self.delete_keys[:10])}"
                         + (" (XCom 'delete_keys' lists up to 100)" if len(self.delete_keys) > 10 else ""))
        elif self.delete_keys:
            more = c["deleted"] - 10
            lines.append(f"  would delete {c['deleted']:,} record{'s' if c['deleted'] != 1 else ''}: "
                         f"{', '.join(self.delete_keys[:10])}"
                         + (f" and {more:,} more (XCom 'delete_keys' lists up to 100)" if more > 0 else ""))
        if self.refused:
            lines.append(f"  {'WOULD BE REFUSED' if self.dry_run else 'REFUSED'}: {self.refused}")
        return "\n".join(lines)


def plan_markdown(plan: dict[str, Any], *, rows: int = 20) -> str:
    """A dry run's report (``SyncReport.to_dict()``, as in XCom) as Markdown, for the person who approves it:
    counts, why a real run would be refused, expected requests, sample field diffs, the keys to delete."""
    c = plan.get("counts") or {}
    read = "full" if plan.get("full") else "incremental"
    lines = [f"**Sync `{plan.get('sync_id')}`** ({plan.get('mode')}, {read} read of {plan.get('rows_read', 0):,} "
             f"rows) would send **{c.get('added', 0):,} added, {c.get('changed', 0):,} changed, "
             f"{c.get('deleted', 0):,} deleted**; {c.get('unchanged', 0):,} unchanged, {c.get('invalid', 0):,} "
             f"invalid, {c.get('skipped', 0):,} skipped.", ""]
    if plan.get("refused"):
        lines += [f"**Guard:** {_md(str(plan['refused']))}", ""]
    if plan.get("requests"):
        lines += ["**Expected requests:** " + ", ".join(f"{k} {v:,}" for k, v in plan["requests"].items()), ""]
    preview = [p for p in plan.get("preview") or [] if p.get("op") != "delete"]
    if preview:
        lines += [f"**Sample changes** (first {len(preview)}):", "", "| operation | key | field | old | new |",
                  "|---|---|---|---|---|"]
        for p in preview:
            diff = p.get("diff")
            fields = diff.items() if isinstance(diff, dict) else [("", {"new": diff})]
            for name, change in list(fields)[:rows] or [("", {})]:
                old = change.get("old", "") if isinstance(change, dict) else ""
                new = change.get("new", "") if isinstance(change, dict) else change
                lines.append(f"| {p.get('op')} | `{_md(str(p.get('key')))}` | {_md(str(name))} | {_md(_cell(old))} "
                             f"| {_md(_cell(new))} |")
        lines.append("")
    keys = plan.get("delete_keys") or []
    if keys:
        more = c.get("deleted", 0) - len(keys)
        lines += [f"**Deletes** ({c.get('deleted', 0):,}): " + ", ".join(f"`{_md(str(k))}`" for k in keys)
                  + (f" and {more:,} more" if more > 0 else ""), ""]
    lines.append(f"Plan `{plan.get('plan_hash')}`: approving sends exactly this plan; if the source has changed by "
                 "then, nothing is sent and a new plan must be approved.")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _md(text: str) -> str:
    """Text safe in a Markdown table cell and inline code."""
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")
