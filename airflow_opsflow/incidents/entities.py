"""Per-entity incidents: one pure function from (the entities open so far, the violating rows of this run)
to (the state to write, a report).

An entity (a payment, a delivery) opens the first run it violates a check, stays open while it keeps
violating, and resolves the first run it does not, when that run saw every violating row. A run is
counted once: an entity first seen by run R stays "new" and one resolved by R stays "resolved" when R is
retried, so a retried task reports (and alerts) the same thing.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from airflow_opsflow.checks.entity_spec import EntitySpec

LISTED = 10  # oldest open entities, and newest ones, listed in a report
MAX_KEY = 500  # the state store's key column holds 512 characters


@dataclass(frozen=True)
class Tracked:
    """The stored state of one entity of one check."""

    key: str  # JSON array of the key values: stable text
    status: Literal["open", "resolved"]
    first_seen: datetime
    first_run: str
    since: datetime | None = None
    amount: float | None = None
    resolved_at: datetime | None = None
    resolved_run: str | None = None


@dataclass(frozen=True)
class Seen:
    """One violating row of this run: its key (JSON text), amount and since values."""

    key: str
    amount: float | None = None
    since: datetime | None = None


@dataclass
class Changes:
    """What to write: entities to insert or update, keys to delete (resolutions of earlier runs)."""

    upsert: list[Tracked] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


@dataclass
class EntityReport:
    """What one run saw, for results and alerts (``to_dict`` is JSON)."""

    noun: str
    plural: str
    key_name: str = "key"
    new: int = 0
    still_open: int = 0
    resolved: int = 0
    complete: bool = True
    oldest_age_s: float | None = None
    sla_s: float | None = None
    past_sla: int = 0
    at_stake: float | None = None
    new_at_stake: float | None = None
    escalation: str | None = None  # why the check is an error, when an entity's age or the money says so
    listed: list[dict[str, Any]] = field(default_factory=list)
    resolved_keys: list[str] = field(default_factory=list)

    @property
    def open(self) -> int:
        return self.new + self.still_open

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"open": self.open, "text": self.text()}

    def text(self) -> str:
        """``3 new stuck deliveries, 12 still open (oldest 51 h, SLA 48 h: 2 past it) · 4,210.50 at stake``."""
        parts = []
        if self.new:
            parts.append(f"{self.new} new {self._noun(self.new)}")
        if self.still_open:
            parts.append(f"{self.still_open} still open" if self.new else
                         f"{self.still_open} {self._noun(self.still_open)} still open")
        if not parts:
            parts.append(f"no open {self.plural}")
        text = ", ".join(parts)
        detail = []
        if self.open and self.oldest_age_s is not None:
            detail.append(f"oldest {age_text(self.oldest_age_s)}")
        if self.sla_s is not None and self.open:
            detail.append(f"SLA {age_text(self.sla_s)}" + (f": {self.past_sla} past it" if self.past_sla else ""))
        if detail:
            text += f" ({', '.join(detail)})"
        if self.at_stake is not None and self.open:
            text += f" · {self.at_stake:,.2f} at stake"
        if self.resolved:
            text += f" · {self.resolved} resolved"
        if not self.complete:
            text += " · list cut at max_entities: some may have resolved"
        return text

    def _noun(self, n: int) -> str:
        return self.noun if n == 1 else self.plural


def age_text(seconds: float) -> str:
    """``35 min``, ``51 h``, ``4.2 d``: the unit an ops reader thinks in."""
    if seconds < 3600:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} d"


def key_text(values: list[Any]) -> str:
    """The stored key of an entity: its key values as a JSON array, or the array's hash when longer than
    the state store's column."""
    text = json.dumps(values, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_KEY else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def key_label(key: str) -> str:
    """How a key is shown: ``D-1001``, or ``EU / 1001`` for a compound key."""
    try:
        values = json.loads(key)
    except ValueError:
        return key
    return " / ".join("NULL" if v is None else str(v) for v in values) if isinstance(values, list) else str(values)


def track(previous: dict[str, Tracked], seen: list[Seen], complete: bool, run_key: str, now: datetime,
          rule: EntitySpec) -> tuple[Changes, EntityReport]:
    """Advance the entities of one check by one run.

    :param previous: the stored entities by key (open ones, and those resolved by earlier runs).
    :param seen: this run's violating rows (at most one per key; later duplicates are ignored).
    :param complete: ``seen`` holds every violating row (entities not in it have stopped violating).
    :param run_key: the run (DAG run id): a retry of the run reports what the first try did.
    :param now: the run's time, for ages.
    """
    changes = Changes()
    report = EntityReport(rule.noun, rule.plural_noun, "/".join(rule.key), complete=complete,
                          sla_s=rule.sla.total_seconds() if rule.sla else None)
    open_now: list[tuple[Tracked, bool]] = []  # (entity, new this run)
    seen_keys: set[str] = set()
    for s in seen:
        if s.key in seen_keys:
            continue
        seen_keys.add(s.key)
        p = previous.get(s.key)
        if p is not None and p.status == "open":
            current = replace(p, amount=s.amount, since=s.since)
            if current != p:
                changes.upsert.append(current)
            open_now.append((current, p.first_run == run_key))
        else:  # never seen, or resolved before: a new episode
            current = Tracked(s.key, "open", now, run_key, s.since, s.amount)
            changes.upsert.append(current)
            open_now.append((current, True))
    for key, p in previous.items():
        if key in seen_keys:
            continue
        if p.status == "open":
            if complete:
                changes.upsert.append(replace(p, status="resolved", resolved_at=now, resolved_run=run_key))
                _resolved(report, key)
            else:  # not fetched this run: it may still violate
                open_now.append((p, p.first_run == run_key))
        elif p.resolved_run == run_key:  # resolved by this very run (a retry)
            _resolved(report, key)
        else:
            changes.delete.append(key)  # its resolution was reported by an earlier run
    _summarise(report, open_now, now, rule)
    return changes, report


def _resolved(report: EntityReport, key: str) -> None:
    report.resolved += 1
    if len(report.resolved_keys) < 2 * LISTED:
        report.resolved_keys.append(key_label(key))


def _summarise(report: EntityReport, open_now: list[tuple[Tracked, bool]], now: datetime, rule: EntitySpec) -> None:
    aged = sorted(((_age(t, now), t, new) for t, new in open_now), key=lambda x: (-x[0], x[1].key))
    report.new = sum(1 for _, _, new in aged if new)
    report.still_open = len(aged) - report.new
    if aged:
        report.oldest_age_s = aged[0][0]
    if rule.sla is not None:
        report.past_sla = sum(1 for age, _, _ in aged if age >= rule.sla.total_seconds())
    if rule.amount is not None:
        report.at_stake = round(sum(t.amount or 0.0 for _, t, _ in aged), 2)
        report.new_at_stake = round(sum(t.amount or 0.0 for _, t, new in aged if new), 2)
    shown = aged[:LISTED] + [x for x in aged[LISTED:] if x[2]][:LISTED]  # the oldest, then new ones
    report.listed = [{"key": key_label(t.key), "state": "new" if new else "open", "age": age_text(age),
                      "age_s": round(age), **({"amount": t.amount} if rule.amount else {}),
                      **({"past_sla": age >= rule.sla.total_seconds()} if rule.sla else {})}
                     for age, t, new in shown]
    reasons = []
    limit = rule.escalation_age
    if limit is not None and report.oldest_age_s is not None and report.oldest_age_s >= limit.total_seconds():
        reasons.append(f"the oldest open {rule.noun} is {age_text(report.oldest_age_s)} old "
                       f"(escalates at {age_text(limit.total_seconds())})")
    if rule.escalate_above is not None and (report.at_stake or 0) > rule.escalate_above:
        reasons.append(f"{report.at_stake:,.2f} at stake (escalates above {rule.escalate_above:,.2f})")
    report.escalation = "; ".join(reasons) or None


def _age(t: Tracked, now: datetime) -> float:
    start = t.since or t.first_seen
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return max((now - start).total_seconds(), 0.0)


def to_since(value: Any) -> datetime | None:
    """A database value of the ``since`` column as an aware datetime (naive ones are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    if not isinstance(value, datetime):
        if not hasattr(value, "year"):  # an epoch number, say: say what is expected rather than guess a unit
            raise ValueError(f"the since value {value!r} is not a timestamp or date")
        value = datetime(value.year, value.month, value.day)  # a DATE
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_amount(value: Any) -> float | None:
    """A database value of the ``amount`` column as a float (raises ValueError for text)."""
    if value is None:
        return None
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "as_integer_ratio")):
        raise ValueError(f"the amount {value!r} is not a number")
    amount = float(value)
    return amount if math.isfinite(amount) else None  # NaN is no money at stake

