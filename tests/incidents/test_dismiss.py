"""A person dismisses an incident: the pure transition (no database, no Airflow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow_opsflow.incidents.lifecycle import Incident, Observation, Policy, advance, dismiss, fingerprint

T0 = datetime(2026, 6, 16, 8, tzinfo=UTC)
FP = fingerprint("d", "t", "orders_per_day")


def failing(runs: int, policy: Policy | None = None) -> Incident:
    state = Incident(FP)
    for i in range(runs):
        state, _ = advance(state, Observation(True, "error", f"run{i}", {"message": "20 for Mon"}), policy or Policy(),
                           T0 + timedelta(hours=i))
    return state


def test_an_open_incident_resolves_with_who_and_why() -> None:
    opened = failing(1)
    assert opened.status == "open"
    later = T0 + timedelta(hours=3)
    state, [t] = dismiss(opened, "alice", later, "Whit Monday")
    assert (t.kind, t.incident_id, t.at) == ("resolved", opened.incident_id, later)
    assert (t.by, t.note) == ("alice", "Whit Monday")
    assert (state.status, state.resolved_at, state.last_alert_at, state.cycle) == ("resolved", later, later, 1)
    assert state.summary == {"message": "20 for Mon", "dismissed": {"by": "alice", "at": later.isoformat(),
                                                                    "note": "Whit Monday"}}
    assert state.recent_runs == opened.recent_runs  # a retry of the failing run stays a retry


def test_a_pending_incident_is_forgotten_quietly() -> None:
    pending = failing(1, Policy(pending_runs=2))
    assert pending.status == "pending"
    state, transitions = dismiss(pending, "alice", T0 + timedelta(hours=2))
    assert transitions == [] and state.status == "resolved" and state.occurrences == 0
    assert state.summary["dismissed"] == {"by": "alice", "at": (T0 + timedelta(hours=2)).isoformat()}


def test_dismissing_twice_or_a_resolved_incident_changes_nothing() -> None:
    state, _ = dismiss(failing(1), "alice", T0 + timedelta(hours=3))
    assert dismiss(state, "bob", T0 + timedelta(hours=4)) == (state, [])
    assert dismiss(Incident(FP), "bob", T0) == (Incident(FP), [])


def test_a_retry_of_the_failing_run_does_not_reopen_but_a_new_failure_does() -> None:
    state, _ = dismiss(failing(2), "alice", T0 + timedelta(hours=3))
    retried, transitions = advance(state, Observation(True, "error", "run1"), Policy(), T0 + timedelta(hours=4))
    assert (retried, transitions) == (state, [])
    again, [t] = advance(state, Observation(True, "error", "run9"), Policy(), T0 + timedelta(days=1))
    assert (t.kind, again.status, again.cycle) == ("new", "open", 2)
    assert "dismissed" not in again.summary  # a new occurrence carries its own evidence
