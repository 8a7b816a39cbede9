"""The incident lifecycle as a pure function (no database, no Airflow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_opsflow.incidents.lifecycle import Incident, Observation, Policy, advance, fingerprint

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def play(runs: str, policy: Policy | None = None, severities: str = "", step: timedelta = timedelta(minutes=15),
         ) -> tuple[Incident, list[str]]:
    """Run a sequence: F = failing run, P = passing run, R = a retry of the previous run."""
    state, out, run = Incident(fingerprint("d", "t", "c")), [], 0
    for i, r in enumerate(runs):
        if r != "R":
            run += 1
        severity = {"w": "warn", "e": "error"}.get(severities[i] if i < len(severities) else "e", "error")
        failing = r == "F" or (r == "R" and runs[i - 1] == "F")
        state, transitions = advance(state, Observation(failing, severity, f"run{run}"), policy or Policy(),
                                     T0 + step * i)
        out += [t.kind for t in transitions]
    return state, out


def test_fingerprint_is_stable_and_distinct() -> None:
    assert fingerprint("d", "t", "c") == fingerprint("d", "t", "c")
    assert len({fingerprint("d", "t", "c"), fingerprint("d", "t", "c", "42"), fingerprint("d", "t", "c2")}) == 3


def test_alert_once_per_incident_then_resolve() -> None:
    state, out = play("FFFP")
    assert out == ["new", "resolved"]
    assert (state.status, state.occurrences, state.cycle) == ("resolved", 3, 1)


def test_a_retry_never_counts_twice() -> None:
    state, out = play("FRRFRP")
    assert out == ["new", "resolved"]
    assert state.occurrences == 2


def test_pending_period() -> None:
    assert play("FFP", Policy(pending_runs=3))[1] == []  # flapped and recovered before alerting
    state, out = play("FFF", Policy(pending_runs=3))
    assert out == ["new"] and state.status == "open"
    assert play("FPFF", Policy(pending_runs=2))[1] == ["new"]  # the streak restarts


def test_resolve_period() -> None:
    assert play("FPFP", Policy(resolve_runs=2))[1] == ["new"]
    assert play("FPP", Policy(resolve_runs=2))[1] == ["new", "resolved"]


def test_reminders_by_runs_and_by_time() -> None:
    assert play("FFFFFFF", Policy(remind_every_runs=3))[1] == ["new", "reminder", "reminder"]
    # every 15 minutes; remind every hour
    assert play("F" * 10, Policy(remind_every=timedelta(hours=1)))[1] == ["new", "reminder", "reminder"]
    assert play("F" * 10)[1] == ["new"]  # off by default


def test_escalation_and_new_cycle() -> None:
    state, out = play("FFFPF", severities="wwe.e")
    assert out == ["new", "escalated", "resolved", "new"]
    assert state.cycle == 2 and state.incident_id.endswith("-2") and state.severity == "error"


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="pending_runs must be at least 1"):
        Policy(pending_runs=0)
    with pytest.raises(ValueError, match="remind_every must be positive"):
        Policy(remind_every=timedelta(0))
