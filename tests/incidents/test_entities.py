"""The per-entity engine on its own: new / still open / resolved, retries, cut lists, ages, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_opsflow.checks.entity_spec import EntitySpec
from airflow_opsflow.incidents.entities import Seen, Tracked, age_text, key_label, key_text, to_amount, track

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
RULE = EntitySpec(key=["payment_id"], amount="amount", sla="48h", noun="failed payment")


def state(previous: dict[str, Tracked], changes: object) -> dict[str, Tracked]:
    out = dict(previous)
    for key in changes.delete:  # type: ignore[attr-defined]
        out.pop(key)
    for t in changes.upsert:  # type: ignore[attr-defined]
        out[t.key] = t
    return out


def k(v: object) -> str:
    return key_text([v])


def test_new_then_still_open_then_resolved() -> None:
    changes, r = track({}, [Seen(k(1), 10.0), Seen(k(2), 5.5)], True, "run1", NOW, RULE)
    assert (r.new, r.still_open, r.resolved, r.at_stake) == (2, 0, 0, 15.5)
    s1 = state({}, changes)
    changes, r = track(s1, [Seen(k(2), 5.5), Seen(k(3), 1.0)], True, "run2", NOW + timedelta(hours=1), RULE)
    assert (r.new, r.still_open, r.resolved, r.resolved_keys, r.new_at_stake) == (1, 1, 1, ["1"], 1.0)
    assert [t.key for t in changes.upsert] == [k(3), k(1)]  # the unchanged one is not rewritten
    s2 = state(s1, changes)
    changes, r = track(s2, [], True, "run3", NOW + timedelta(hours=2), RULE)
    assert (r.open, r.resolved, changes.delete) == (0, 2, [k(1)])  # run1's resolution was reported: dropped
    assert r.text() == "no open failed payments · 2 resolved"


def test_a_retry_of_the_same_run_reports_the_same() -> None:
    changes, first = track({}, [Seen(k(1))], True, "run1", NOW, RULE)
    s1 = state({}, changes)
    changes2, again = track(s1, [Seen(k(1))], True, "run1", NOW, RULE)
    assert (again.new, again.still_open) == (first.new, first.still_open) == (1, 0)
    assert changes2.upsert == [] and changes2.delete == []
    changes3, closing = track(s1, [], True, "run2", NOW, RULE)
    s3 = state(s1, changes3)
    _, retried = track(s3, [], True, "run2", NOW, RULE)
    assert closing.resolved == retried.resolved == 1


def test_a_cut_list_resolves_nothing_it_did_not_see() -> None:
    s1 = state({}, track({}, [Seen(k(i)) for i in range(5)], True, "run1", NOW, RULE)[0])
    _, r = track(s1, [Seen(k(0)), Seen(k(9))], False, "run2", NOW, RULE)
    assert (r.new, r.still_open, r.resolved, r.complete) == (1, 5, 0, False)
    assert "list cut at max_entities" in r.text()


def test_ages_from_since_or_first_seen_and_escalation() -> None:
    rule = EntitySpec(key=["id"], amount="amount", since="failed_at", sla="48h", escalate_above=1000, noun="payment")
    old = NOW - timedelta(hours=51)
    _, r = track({}, [Seen(k("a"), 20.0, old), Seen(k("b"), 30.0, old.replace(tzinfo=None) + timedelta(hours=40))],
                 True, "run1", NOW, rule)
    assert r.oldest_age_s == 51 * 3600 and r.past_sla == 1
    assert r.listed[0] == {"key": "a", "state": "new", "age": "51 h", "age_s": 183600, "amount": 20.0,
                           "past_sla": True}
    assert r.escalation == "the oldest open payment is 51 h old (escalates at 48 h)"
    assert r.text() == "2 new payments (oldest 51 h, SLA 48 h: 1 past it) · 50.00 at stake"
    _, money = track({}, [Seen(k("c"), 1500.0)], True, "run1", NOW, rule)
    assert money.escalation == "1,500.00 at stake (escalates above 1,000.00)"
    later = EntitySpec(key=["id"], sla="2h", escalate_after="1d")
    _, r = track({}, [Seen(k("x"), None, NOW - timedelta(hours=3))], True, "r", NOW, later)
    assert r.past_sla == 1 and r.escalation is None  # past its SLA, not yet escalated


def test_first_seen_ages_count_from_the_first_run() -> None:
    s1 = state({}, track({}, [Seen(k(1))], True, "run1", NOW, RULE)[0])
    _, r = track(s1, [Seen(k(1))], True, "run2", NOW + timedelta(hours=50), RULE)
    assert (r.oldest_age_s, r.past_sla, r.escalation is not None) == (50 * 3600, 1, True)


def test_labels_and_values() -> None:
    assert key_label(key_text(["EU", 1001])) == "EU / 1001"
    assert key_text(["x" * 600]).startswith("sha256:")
    assert (age_text(300), age_text(51 * 3600), age_text(4 * 86400)) == ("5 min", "51 h", "4.0 d")
    assert EntitySpec(key="id", noun="delivery").plural_noun == "deliveries"
    assert EntitySpec(key="id", noun="box").plural_noun == "boxes"
    with pytest.raises(ValueError, match="not a number"):
        to_amount("12.50 EUR")


def test_duplicate_and_null_keys_are_one_entity_each_on_a_real_database(tmp_path: object) -> None:
    """Several rows of one key are one entity (amounts summed, the earliest since); NULL keys are none; the
    cut is counted in entities, not rows."""
    import sqlite3
    from pathlib import Path

    from airflow_opsflow.checks.loader import load_suite
    from airflow_opsflow.flows.check_suite import EntityTracking, run_suite
    from airflow_opsflow.incidents.entity_repo import EntityRepo
    from airflow_opsflow.state.store import StateStore

    path = Path(str(tmp_path))
    data = sqlite3.connect(path / "ops.db")
    data.execute("CREATE TABLE lines (pid TEXT, amount NUMERIC, failed_at TEXT)")
    data.executemany("INSERT INTO lines VALUES (?, ?, ?)", [
        ("A", 10, "2026-03-01 10:00:00"), ("A", 5, "2026-03-01 08:00:00"), ("B", 1, "2026-03-02 00:00:00"),
        (None, 7, "2026-03-01 00:00:00"), (None, 8, "2026-03-01 00:00:00")])
    data.commit()
    suite = load_suite([{"kind": "sql", "name": "failed", "sql": "SELECT * FROM lines",
                         "entity": {"key": "pid", "amount": "amount", "since": "failed_at", "max_entities": 2}}])
    store = StateStore(lambda: sqlite3.connect(path / "state.db"), "sqlite")
    tracking = EntityTracking(EntityRepo(store), "run1", lambda check: f"subject-{check}")
    [r] = run_suite(data, suite, "sqlite", history=None, metrics_at=NOW, entities=tracking)
    e = r.entities or {}
    assert (e["new"], e["complete"], e["at_stake"]) == (2, True, 16.0)  # A (10 + 5) and B; the NULLs are none
    earliest = datetime(2026, 3, 1, 8, tzinfo=UTC)  # A's earliest failed_at
    assert e["listed"][0]["key"] == "A" and e["oldest_age_s"] == (NOW - earliest).total_seconds()
    store.close()
