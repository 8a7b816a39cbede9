"""Marks on metric points and the incidents they close, in a real state store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from airflow_opsflow.flows.feedback import mark_expected, marks, unmark
from airflow_opsflow.incidents.lifecycle import Observation, Policy, fingerprint
from airflow_opsflow.incidents.repo import IncidentRepo, Subject
from airflow_opsflow.monitors.detect import Point
from airflow_opsflow.monitors.metric import Series
from airflow_opsflow.monitors.repo import MarkError, MetricRepo

BERLIN = ZoneInfo("Europe/Berlin")
KEY = "shop/daily_orders/orders_per_day"
DE, FR = Series(KEY, ("DE",)), Series(KEY, ("FR",))
MONDAY = datetime(2026, 6, 15, tzinfo=BERLIN)  # stored as 2026-06-14T22:00:00+00:00
NOW = datetime(2026, 6, 16, 9, tzinfo=UTC)
SLACK = "slack:slack_api_default/#data-quality"


def seed(history: MetricRepo, flagged: dict[Series, list[int]], days: int = 8, recovered: int | None = None) -> None:
    """``days`` Berlin days of points ending on MONDAY; ``flagged``: the days (0 = MONDAY, -1 = Sunday...) judged
    anomalous, per series."""
    rows = []
    for s in (DE, FR):
        for back in range(days - 1, -1, -1):
            at = MONDAY - timedelta(days=back)
            bad = -back in flagged.get(s, [])
            rows.append((s, Point(at, 20.0 if bad else 100.0, -8.0 if bad else 0.1, bad, False,
                                  recovered == -back)))
    history.save(KEY, rows)


def test_load_reads_recovered_and_marked(history: MetricRepo) -> None:
    seed(history, {DE: [0, -3]}, recovered=-2)
    loaded = history.load([DE, FR], NOW, 100, "Europe/Berlin")
    assert [p.recovered for p in loaded[DE.series_id]] == [False] * 5 + [True, False, False]
    assert not any(p.marked for pts in loaded.values() for p in pts)
    stored = history.find(KEY, "2026-06-15", {"country": "DE"})
    assert (stored.bucket, stored.value, stored.anomalous) == ("2026-06-14T22:00:00+00:00", 20.0, True)
    history.mark(stored, "alice", "Whit Monday", now=NOW)
    loaded = history.load([DE, FR], NOW, 100, "Europe/Berlin")
    assert [p.at.date() for p in loaded[DE.series_id] if p.marked] == [date(2026, 6, 15)]
    assert loaded[DE.series_id][-1].anomalous  # the verdict stays; the detector reads the mark
    assert not any(p.marked for p in loaded[FR.series_id])


def test_buckets_resolve_from_dates_times_and_instants(history: MetricRepo) -> None:
    seed(history, {DE: [0]})
    want = "2026-06-14T22:00:00+00:00"
    for bucket in ("2026-06-15", date(2026, 6, 15), datetime(2026, 6, 15), "2026-06-14T22:00:00+00:00",
                   "2026-06-14T22:00Z", datetime(2026, 6, 15, tzinfo=BERLIN)):
        assert history.find(KEY, bucket, ["DE"]).bucket == want, bucket
    assert history.find(KEY, "2026-06-15T00:00", ["DE"], timezone="Europe/Berlin").bucket == want


def test_unknown_check_segment_and_bucket_are_named(history: MetricRepo) -> None:
    seed(history, {DE: [0, -3]})
    with pytest.raises(MarkError, match=r"check 'nope'.*no metric history is stored"):
        history.find("shop/daily_orders/nope", "2026-06-15", ["DE"], label="check 'nope'")
    with pytest.raises(MarkError, match=r"field 'segment' must name one: DE; FR"):
        history.find(KEY, "2026-06-15")
    with pytest.raises(MarkError, match=r"field 'segment' 'IT' is not a stored series; stored: DE; FR"):
        history.find(KEY, "2026-06-15", {"country": "IT"})
    with pytest.raises(MarkError, match=r"segment DE: no stored bucket starts at '2026-07-01'; the nearest flagged "
                                        r"buckets \(starts, UTC\): 2026-06-14T22:00:00\+00:00, 2026-06-11T22:00:00"):
        history.find(KEY, "2026-07-01", ["DE"])
    with pytest.raises(MarkError, match=r"field 'bucket': '15/06/2026' is not a date"):
        history.find(KEY, "15/06/2026", ["DE"])
    with pytest.raises(MarkError, match=r"field 'timezone': unknown time zone 'Mars/Olympus'"):
        history.find(KEY, "2026-06-15", ["DE"], timezone="Mars/Olympus")
    with pytest.raises(MarkError, match=r"was not flagged \(value 100\)"):
        history.mark(history.find(KEY, "2026-06-14", ["DE"]), "alice")
    with pytest.raises(MarkError, match=r"field 'by'"):
        history.mark(history.find(KEY, "2026-06-15", ["DE"]), " ")


def test_hour_buckets_need_a_time_zone_or_an_offset(history: MetricRepo) -> None:
    start = datetime(2026, 6, 15, tzinfo=BERLIN)
    history.save(KEY, [(DE, Point(start + timedelta(hours=h), 5.0, 0.0, h == 9)) for h in range(24)])
    with pytest.raises(MarkError, match=r"matches 22 stored buckets .*give the bucket's start with its UTC offset"):
        history.find(KEY, "2026-06-15T09:00", ["DE"])
    assert history.find(KEY, "2026-06-15T09:00", ["DE"], timezone="Europe/Berlin").bucket == \
        "2026-06-15T07:00:00+00:00"
    assert history.find(KEY, "2026-06-15T07:00:00+00:00", ["DE"]).anomalous


def test_marks_are_idempotent_listed_and_removed(history: MetricRepo) -> None:
    seed(history, {DE: [0], FR: [0]})
    de = history.find(KEY, "2026-06-15", ["DE"])
    first, changed = history.mark(de, "alice", "Whit Monday", now=NOW)
    assert changed and (first.marked_by, first.note, first.marked_at) == ("alice", "Whit Monday", NOW)
    again, changed = history.mark(de, "alice", now=NOW + timedelta(hours=1))
    assert not changed and again == first  # the same person again: no error, the first time kept
    bob, changed = history.mark(history.find(KEY, "2026-06-15", ["FR"]), "bob", now=NOW + timedelta(hours=2))
    assert changed
    listed = history.marks_of(KEY)
    assert [(m.segment, m.bucket, m.marked_by, m.note) for m in listed] == [
        (("DE",), datetime(2026, 6, 14, 22, tzinfo=UTC), "alice", "Whit Monday"),
        (("FR",), datetime(2026, 6, 14, 22, tzinfo=UTC), "bob", None)]
    assert history.unmark(de) == first
    assert history.unmark(de) is None
    assert history.marks_of(KEY) == [bob]


def _open_incident(repo: IncidentRepo, check: str = "orders_per_day") -> str:
    fp = fingerprint("shop", "daily_orders", check)
    subject = Subject(fp, "shop", "daily_orders", check)
    [(_, [t])] = repo.record([(subject, Observation(True, "error", "run1", {"message": "20 for Mon"}))],
                                    Policy(), [SLACK, "email:ops"], now=NOW - timedelta(hours=1))
    assert t.kind == "new"
    for d in repo.pending([fp]):
        if d.route == SLACK:  # Slack confirmed; the email is still owed
            assert repo.claim(d)
            repo.mark_sent(d.delivery_id, {"ts": "1.0"})
    return fp


def test_marking_every_flagged_point_of_the_newest_bucket_resolves_the_incident(history: MetricRepo) -> None:
    seed(history, {DE: [0, -3], FR: [0]})
    incidents = IncidentRepo(history.store)
    fp = _open_incident(incidents)
    check = {"dag_id": "shop", "task_id": "daily_orders", "check": "orders_per_day"}
    older = mark_expected(history.store, **check, bucket="2026-06-12", segment=["DE"], by="alice", now=NOW)
    assert older.changed and not older.resolved and older.incident is not None and older.incident.status == "open"
    de = mark_expected(history.store, **check, bucket="2026-06-15", segment=["DE"], by="alice", now=NOW)
    assert not de.resolved and "stays open" in de.text()  # FR's drop that day is not explained yet
    fr = mark_expected(history.store, **check, bucket="2026-06-15", segment={"country": "FR"}, by="bob",
                       note="strike at the depot", now=NOW)
    assert fr.resolved and fr.routes == ("email:ops", SLACK)
    assert fr.incident is not None and fr.incident.status == "resolved"
    assert fr.incident.summary["dismissed"] == {
        "by": "bob", "at": NOW.isoformat(),
        "note": "bucket 2026-06-14T22:00:00+00:00 (segment FR) marked expected: strike at the depot"}
    owed = [(d.transition, d.route) for d in incidents.pending([fp])]
    assert owed == [("new", "email:ops"), ("resolved", "email:ops"), ("resolved", SLACK)]
    assert "the next run of the task sends the resolution to email:ops, slack:" in fr.text()
    # Marking again (or another point) does not dismiss twice.
    repeat = mark_expected(history.store, **check, bucket="2026-06-15", segment=["FR"], by="bob", now=NOW)
    assert not repeat.changed and not repeat.resolved and len(incidents.pending([fp])) == 3
    assert "was already marked expected by bob" in repeat.text()
    assert [m.bucket.date() for m in marks(history.store, **check)] == [date(2026, 6, 11), date(2026, 6, 14),
                                                                         date(2026, 6, 14)]
    taken_back = unmark(history.store, **check, bucket="2026-06-12", segment=["DE"])
    assert taken_back.mark is not None and taken_back.mark.marked_by == "alice"
    assert len(marks(history.store, **check)) == 2


def test_a_pending_incident_closes_without_an_alert_and_unknown_input_names_the_check(history: MetricRepo) -> None:
    history.save(KEY, [(Series(KEY, ()), Point(MONDAY, 20.0, -8.0, True))])
    incidents = IncidentRepo(history.store)
    fp = fingerprint("shop", "daily_orders", "orders_per_day")
    incidents.record([(Subject(fp, "shop", "daily_orders", "orders_per_day"), Observation(True, run_key="r1"))],
                     Policy(pending_runs=2), [SLACK], now=NOW)
    check = {"dag_id": "shop", "task_id": "daily_orders", "check": "orders_per_day"}
    done = mark_expected(history.store, **check, bucket="2026-06-15", by="alice", now=NOW)
    assert done.resolved and done.routes == () and incidents.pending([fp]) == []
    with pytest.raises(MarkError, match=r"^dag 'shop', task 'daily_orders', check 'orders_per_day': no stored bucket "
                                        r"starts at '2026-06-16'"):
        mark_expected(history.store, **check, bucket="2026-06-16", by="alice")
    with pytest.raises(MarkError, match=r"^dag 'shop', task 'daily_orders', check 'orders_per_day': field 'by'"):
        mark_expected(history.store, **check, bucket="2026-06-15", by="")
    with pytest.raises(MarkError, match=r"^dag 'shop', task 'other', check 'orders_per_day': no metric history"):
        mark_expected(history.store, **{**check, "task_id": "other"}, bucket="2026-06-15", by="alice")
    with pytest.raises(MarkError, match=r"field 'check' is empty"):
        mark_expected(history.store, **{**check, "check": ""}, bucket="2026-06-15", by="alice")
