"""The incident lifecycle: one pure function from (state, observation) to (new state, transitions).

An incident is keyed by a fingerprint that is stable across runs and retries (DAG, task, check and an
optional entity key; never a run id or try number). Its life::

    (none) --fail--> pending --K fails--> open ("new") --fail--> open (ongoing: "escalated", "reminder")
                      |  |                   |  |
                      |  +--pass--> (none)   |  +--N passes--> resolved ("resolved") --fail--> pending ...
                      |                      |                       ^
                      +--dismissed--> (none) +--dismissed------------+  (a person marked it expected)

* pending period (``pending_runs``, K): fail K consecutive runs before alerting (default 1: at once);
* resolve period (``resolve_runs``, N): pass N consecutive runs before resolving (default 1);
* reminders for open incidents every ``remind_every_runs`` failing runs or ``remind_every`` time (off by
  default);
* a person can dismiss a pending or open incident (:func:`dismiss`: they marked what it is about
  expected); it resolves at once, with who and why in its summary, and the next failure starts anew;
* a run is counted once: observing one of the last 20 ``run_key`` again (a task retry, even after a
  later run) changes nothing and emits nothing, so a retried task never duplicates an alert.

Alerts go out on transitions only: ``new``, ``escalated``, ``updated`` (an open incident of a check
tracking entities saw new ones), ``reminder``, ``resolved``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Status = Literal["pending", "open", "resolved"]
TransitionKind = Literal["new", "escalated", "updated", "reminder", "resolved"]
SEVERITY_RANK = {"warn": 1, "error": 2}
RECENT_RUNS = 20  # run keys remembered per incident, to ignore retries of recent runs


def fingerprint(dag_id: str, task_id: str, check: str, entity: str | None = None) -> str:
    """A stable id for an incident: the same inputs give the same 32 hex characters on every run."""
    parts = [dag_id, task_id, check] + ([entity] if entity is not None else [])
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Policy:
    """When an incident opens, reminds and resolves.

    :param pending_runs: consecutive failing runs before the incident opens and alerts (K, default 1).
    :param resolve_runs: consecutive passing runs before an open incident resolves (N, default 1).
    :param remind_every_runs: remind every N failing runs while open (default off).
    :param remind_every: remind when the last alert is older than this while open (default off).
    """

    pending_runs: int = 1
    resolve_runs: int = 1
    remind_every_runs: int | None = None
    remind_every: timedelta | None = None

    @classmethod
    def of(cls, value: Policy | dict[str, Any] | None) -> Policy:
        """A Policy from itself, a dict of its fields (``remind_every`` may be ``"4h"``) or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Policy):
            return value
        values = dict(value)
        if values.get("remind_every") is not None:
            from airflow_opsflow.core.durations import parse_duration

            values["remind_every"] = parse_duration(values["remind_every"])
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("pending_runs", "resolve_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.remind_every_runs is not None and self.remind_every_runs < 1:
            raise ValueError("remind_every_runs must be at least 1")
        if self.remind_every is not None and self.remind_every <= timedelta(0):
            raise ValueError("remind_every must be positive")


@dataclass(frozen=True)
class Observation:
    """What one run saw for one fingerprint.

    :param failing: the check did not pass (status warn or fail).
    :param severity: ``warn`` or ``error`` (for escalation).
    :param run_key: identifies the run (DAG run id); the same key observed twice counts once.
    :param summary: evidence to keep with the incident (counts, message, samples...).
    :param news: something new failed within the incident (new entities): an open incident says so.
    """

    failing: bool
    severity: str = "error"
    run_key: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    news: bool = False


@dataclass(frozen=True)
class Incident:
    """The stored state of one fingerprint. ``cycle`` increments each time it opens anew."""

    fingerprint: str
    status: Status = "resolved"
    cycle: int = 0
    severity: str = "warn"
    fail_streak: int = 0
    pass_streak: int = 0
    occurrences: int = 0
    failing_runs_since_alert: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    last_alert_at: datetime | None = None
    recent_runs: tuple[str, ...] = ()  # the runs already counted (bounded): a retry of any is ignored
    summary: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)  # where alerts/tickets live (Slack ts, ticket key)

    @property
    def incident_id(self) -> str:
        """This occurrence of the incident (fingerprint + cycle): a dedup key for alerts and tickets."""
        return f"{self.fingerprint}-{self.cycle}"


@dataclass(frozen=True)
class Transition:
    """One change alerts go out for; ``by``/``note``: the person behind it and why (a dismissal)."""

    kind: TransitionKind
    incident_id: str
    at: datetime
    by: str | None = None
    note: str | None = None


def advance(current: Incident, obs: Observation, policy: Policy, now: datetime) -> tuple[Incident, list[Transition]]:
    """Apply one run's observation. Returns the new state and the transitions to alert on."""
    if obs.run_key and obs.run_key in current.recent_runs:
        return current, []  # a retry of a run already counted (even after later runs)
    if not obs.failing and current.status == "resolved":
        return current, []  # nothing to track: no state is written for healthy checks
    s = replace(current, recent_runs=(*current.recent_runs, obs.run_key)[-RECENT_RUNS:]) if obs.run_key else current
    if obs.failing:
        return _on_failure(s, obs, policy, now)
    return _on_pass(s, obs, policy, now)


def _on_failure(s: Incident, obs: Observation, policy: Policy, now: datetime) -> tuple[Incident, list[Transition]]:
    if s.status == "resolved":  # a new occurrence starts pending
        s = replace(s, status="pending", fail_streak=0, pass_streak=0, occurrences=0, first_seen=now,
                    severity=obs.severity, refs={}, failing_runs_since_alert=0)
    s = replace(s, fail_streak=s.fail_streak + 1, pass_streak=0, occurrences=s.occurrences + 1, last_seen=now,
                summary=obs.summary)
    if s.status == "pending":
        if s.fail_streak < policy.pending_runs:
            return s, []
        s = replace(s, status="open", cycle=s.cycle + 1, opened_at=now, resolved_at=None,
                    severity=obs.severity, last_alert_at=now, failing_runs_since_alert=0)
        return s, [Transition("new", s.incident_id, now)]
    # open: ongoing
    s = replace(s, failing_runs_since_alert=s.failing_runs_since_alert + 1)
    if SEVERITY_RANK.get(obs.severity, 0) > SEVERITY_RANK.get(s.severity, 0):
        s = replace(s, severity=obs.severity, last_alert_at=now, failing_runs_since_alert=0)
        return s, [Transition("escalated", s.incident_id, now)]
    if obs.news:
        s = replace(s, last_alert_at=now, failing_runs_since_alert=0)
        return s, [Transition("updated", s.incident_id, now)]
    if _reminder_due(s, policy, now):
        s = replace(s, last_alert_at=now, failing_runs_since_alert=0)
        return s, [Transition("reminder", s.incident_id, now)]
    return s, []


def _reminder_due(s: Incident, policy: Policy, now: datetime) -> bool:
    by_runs = policy.remind_every_runs is not None and s.failing_runs_since_alert >= policy.remind_every_runs
    by_time = (policy.remind_every is not None and s.last_alert_at is not None
               and now - s.last_alert_at >= policy.remind_every)
    return by_runs or by_time


def _on_pass(s: Incident, obs: Observation, policy: Policy, now: datetime) -> tuple[Incident, list[Transition]]:
    if s.status == "pending":  # never alerted: forget it quietly
        return replace(s, status="resolved", fail_streak=0, pass_streak=0, occurrences=0), []
    if s.status == "resolved":
        return s, []
    s = replace(s, pass_streak=s.pass_streak + 1, fail_streak=0)
    if s.pass_streak < policy.resolve_runs:
        return s, []
    # The resolving run's evidence (what cleared) replaces the failing one's.
    s = replace(s, status="resolved", resolved_at=now, last_alert_at=now, summary=obs.summary or s.summary)
    return s, [Transition("resolved", s.incident_id, now)]


def dismiss(current: Incident, by: str, now: datetime, note: str | None = None) -> tuple[Incident, list[Transition]]:
    """A person dismissed the incident (what it is about is expected): a pending one is forgotten, an open
    one resolves and owes a ``resolved`` alert; a resolved one stays as it is (dismissing twice is no
    error). Who, when and why go into the summary. Seen runs are kept, so a retry of the failing run does
    not reopen it; the next failing run opens a new occurrence."""
    if current.status == "resolved":
        return current, []
    dismissed = {"by": by, "at": now.isoformat(), **({"note": note} if note else {})}
    s = replace(current, status="resolved", fail_streak=0, pass_streak=0, summary={**current.summary,
                                                                                  "dismissed": dismissed})
    if current.status == "pending":  # never alerted: nothing to tell
        return replace(s, occurrences=0), []
    s = replace(s, resolved_at=now, last_alert_at=now)
    return s, [Transition("resolved", s.incident_id, now, by=by, note=note)]
