"""The detector on hand-made series: verdicts, bands, seasonality, floors, exclusion and level shifts."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from airflow_opsflow.monitors.detect import Detection, Point, judge

START = datetime(2026, 1, 5)  # a Monday


def daily(values: list[float], d: Detection) -> list[Point]:
    """Judge each value in turn, as daily runs would, keeping the verdicts with the points."""
    out: list[Point] = []
    for i, v in enumerate(values):
        at = START + timedelta(days=i)
        verdict = judge(out, at, v, d)
        out.append(Point(at, v, verdict.z, verdict.anomalous, verdict.new_level, verdict.recovered))
    return out


def noisy(n: int, level: float = 1000, sigma: float = 20, weekend: float = 1.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    days = [START + timedelta(days=i) for i in range(n)]
    return [level * (weekend if d.weekday() >= 5 else 1) + rng.gauss(0, sigma) for d in days]


def test_no_verdict_before_min_training() -> None:
    d = Detection(min_training=7, training=14)
    history = daily(noisy(6), d)
    v = judge(history, START + timedelta(days=6), 5000, d)
    assert v.status == "insufficient" and not v.anomalous
    assert v.reason == "6 of 7 training points"
    assert all(p.z is None for p in history)


def test_spike_and_drop_are_flagged_with_the_band() -> None:
    d = Detection()
    history = daily(noisy(30), d)
    at = START + timedelta(days=30)
    normal = judge(history, at, 1010, d)
    assert normal.status == "ok" and normal.low is not None and normal.high is not None
    assert normal.low < 1000 < normal.high
    assert 30 < normal.high - normal.low < 400  # about 6 sigma of 20
    spike, drop = judge(history, at, 1300, d), judge(history, at, 700, d)
    assert spike.anomalous and spike.z is not None and spike.z > 3
    assert drop.anomalous and drop.z is not None and drop.z < -3


def test_direction_limits_what_is_anomalous() -> None:
    spikes = Detection(direction="spike")
    history = daily(noisy(30), spikes)
    at = START + timedelta(days=30)
    assert not judge(history, at, 600, spikes).anomalous
    assert judge(history, at, 1400, spikes).anomalous
    drops = Detection(direction="drop")
    assert not judge(history, at, 1400, drops).anomalous


def test_minimum_changes_silence_small_deviations() -> None:
    # A very steady series: 1,050 is many sigmas away but only 5 % off.
    d = Detection()
    history = daily(noisy(30, sigma=2), d)
    at = START + timedelta(days=30)
    assert judge(history, at, 1050, d).anomalous
    quiet = judge(history, at, 1050, Detection(min_relative_change=0.1))
    assert quiet.status == "ok" and "below the minimum" in quiet.reason
    assert judge(history, at, 1050, Detection(min_change=60)).status == "ok"
    assert judge(history, at, 1200, Detection(min_change=60, min_relative_change=0.1)).anomalous


def test_weekly_seasonality_expects_quiet_weekends() -> None:
    values = noisy(12 * 7, weekend=0.5)
    seasonal, flat = Detection(seasonality="day_of_week"), Detection()
    saturday = START + timedelta(days=12 * 7 + 5)
    s_hist, f_hist = daily(values, seasonal), daily(values, flat)
    v = judge(s_hist, saturday, 505, seasonal)
    assert v.status == "ok" and v.expected is not None and abs(v.expected - 500) < 30
    assert sum(p.anomalous for p in s_hist[7 * 7:]) <= 1
    # A Saturday at a weekday's level is an anomaly once the season is known; without seasonality the
    # weekly swing widens the band until it is blind to it.
    assert judge(s_hist, saturday, 1000, seasonal).anomalous
    assert not judge(f_hist, saturday, 1000, flat).anomalous


def test_growth_is_a_trend_not_an_anomaly() -> None:
    rng = random.Random(3)
    values = [1000 * 1.01**i * (1 + rng.gauss(0, 0.01)) for i in range(60)]
    d = Detection()
    history = daily(values, d)
    assert sum(p.anomalous for p in history) <= 2
    at = START + timedelta(days=60)
    v = judge(history, at, 1000 * 1.01**60, d)
    assert v.status == "ok" and v.expected is not None and abs(v.expected / 1000 / 1.01**60 - 1) < 0.02
    flat = judge(history, at, 1000 * 1.01**60, Detection(trend=False))
    assert flat.expected is not None and flat.expected < 0.95 * 1000 * 1.01**60  # lags the growth


def test_anomalies_are_left_out_of_training() -> None:
    d = Detection()
    values = noisy(30)
    values[25] = 5000  # an outage-sized spike, flagged when it happened
    history = daily(values, d)
    assert history[25].anomalous
    at = START + timedelta(days=30)
    kept = judge(history, at, 1000, d)
    unflagged = [Point(p.at, p.value, p.z, False) for p in history]
    polluted = judge(unflagged, at, 1000, Detection(method="zscore"))
    clean = judge(history, at, 1000, Detection(method="zscore"))
    assert kept.status == "ok"
    assert polluted.high is not None and clean.high is not None
    assert polluted.high - clean.high > 100  # the spike would have widened the z-score band a lot


def test_a_lasting_change_alerts_then_settles() -> None:
    d = Detection(adapt_after=3)
    values = noisy(30) + [v - 400 for v in noisy(10, seed=9)]
    history = daily(values, d)
    # Held for three days, the change is the new level from the fourth on (the three days stay flagged).
    assert [p.anomalous for p in history[30:34]] == [True, True, True, False]
    assert history[33].new_level and not any(p.new_level for p in history[34:])
    assert not any(p.anomalous for p in history[34:])  # judged against the new level from then on
    never = daily(values, Detection(adapt_after=None))
    assert all(p.anomalous for p in never[30:])


def test_a_two_day_outage_does_not_become_the_norm() -> None:
    d = Detection(adapt_after=3)
    values = noisy(40)
    values[30] = values[31] = 300
    history = daily(values, d)
    assert [p.anomalous for p in history[30:32]] == [True, True]
    assert not any(p.anomalous or p.new_level for p in history[32:])


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="training"):
        Detection(training=5, min_training=7)
    with pytest.raises(ValueError, match="sensitivity"):
        Detection(sensitivity=0)
    with pytest.raises(ValueError, match="adapt_after"):
        Detection(adapt_after=1)
    with pytest.raises(ValueError, match="finite"):
        judge([], START, float("nan"), Detection())


def judged_series(values: list[float], d: Detection, events: dict[int, frozenset[str]] | None = None) -> list[Point]:
    """Like daily(), with calendar events on some days and the recovered flag kept."""
    out: list[Point] = []
    for i, v in enumerate(values):
        at, ev = START + timedelta(days=i), (events or {}).get(i, frozenset())
        verdict = judge(out, at, v, d, ev)
        out.append(Point(at, v, verdict.z, verdict.anomalous, verdict.new_level, verdict.recovered, events=ev))
    return out


def test_a_calendar_event_is_skipped_until_learnt_then_judged_with_its_effect() -> None:
    d = Detection()
    values = noisy(120)
    billing = {i: frozenset({"billing"}) for i in range(20, 120, 30)}  # a Saturday-free day every 30 days
    for i in billing:
        values[i] *= 2.5
    history = judged_series(values, d, billing)
    first, second, third = (judge(history[:i], START + timedelta(days=i), values[i], d, billing[i])
                            for i in (20, 50, 80))
    assert first.status == second.status == "insufficient"
    assert first.reason == "billing has 0 earlier occurrences in the history, 2 needed to learn its effect"
    assert third.status == "ok" and third.expected is not None and 2000 < third.expected < 3000
    # A billing day that did not bill is anomalous; the same value on a normal day is not.
    assert judge(history, START + timedelta(days=120), 1000, d, frozenset({"billing"})).anomalous
    assert not judge(history, START + timedelta(days=120), 1000, d).anomalous
    unaware = judged_series(values, d)
    assert all(p.anomalous for i, p in enumerate(unaware) if i in billing and i > 30)


def test_log_scale_when_the_noise_grows_with_the_level() -> None:
    d = Detection(seasonality="day_of_week")
    rng = random.Random(3)
    days = [START + timedelta(days=i) for i in range(140)]
    b2b = [(2000 if day.weekday() < 5 else 200) * rng.lognormvariate(0, 0.1) for day in days]
    history = judged_series(b2b, d)
    monday = START + timedelta(days=140)
    assert judge(history, monday, 2000, d).transform == "log"
    flat = judge(judged_series(noisy(140, weekend=0.3), d), monday, 1000, d)
    assert flat.transform == "none"  # the same noise on weekdays and weekends: no reason to transform
    # On the log scale a quiet Saturday's band is a tenth of a weekday's, as its noise is.
    saturday = monday + timedelta(days=5)
    sat = judge(history, saturday, 200, d)
    assert sat.low is not None and sat.high is not None and sat.high - sat.low < 150
    assert judge(history, saturday, 120, d).anomalous  # -40 %: invisible in a band as wide as a weekday's
    assert not judge(history, saturday, 120, replace(d, transform="none", season_noise=False)).anomalous


def test_an_outage_to_near_zero_never_becomes_the_new_level() -> None:
    d = Detection(adapt_after=3)
    values = noisy(60)
    values[40:46] = [3.0] * 6
    history = judged_series(values, d)
    assert all(p.anomalous and not p.new_level for p in history[40:46])
    assert not any(p.anomalous for p in history[46:])  # back to normal: not a spike against a learnt outage


def test_a_partial_outage_learnt_as_a_level_is_unlearnt_when_the_series_comes_back() -> None:
    d = Detection(adapt_after=3)
    values = noisy(70)
    values[40:46] = [v * 0.5 for v in values[40:46]]  # six days at half: a level after three
    history = judged_series(values, d)
    assert [p.anomalous for p in history[40:44]] == [True, True, True, False] and history[43].new_level
    assert history[46].recovered and not history[46].anomalous
    assert not any(p.anomalous for p in history[46:])
    # The half-level days do not train: the band after the recovery is the one before the outage.
    before = judge(history[:40], START + timedelta(days=70), 1000, d)
    after = judge(history, START + timedelta(days=70), 1000, d)
    assert before.expected is not None and after.expected is not None
    assert abs(after.expected - before.expected) < 30


def test_a_point_marked_expected_trains_as_normal() -> None:
    d = Detection(adapt_after=None)
    values = noisy(60)
    values[50] = 1600
    history = judged_series(values, d)
    assert history[50].anomalous
    at = START + timedelta(days=60)
    unmarked = judge(history, at, 1000, d)
    marked = judge([replace(p, marked=True) if i == 50 else p for i, p in enumerate(history)], at, 1000, d)
    assert marked.high is not None and unmarked.high is not None and marked.high > unmarked.high + 20


# -- the seasons' shape, learnt from the longer history ----------------------------------------------------

WEEK = [1.0, 1.1, 0.95, 1.05, 1.2, 0.4, 0.3]  # Monday..Sunday factors of a B2B-like series


def _weekly(n: int, seed: int, start: datetime = START, step: timedelta = timedelta(days=1)) -> list[Point]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = start + i * step
        out.append(Point(at, 1000 * WEEK[at.weekday()] * (1 + rng.gauss(0, 0.05))))
    return out


def test_season_shape_is_learnt_from_every_point_read() -> None:
    """40 weeks teach each weekday's factor far better than the 14 points of the judged weekday in the
    training window: the shared level + factor lands nearer the truth than the weekday's own mean."""
    from airflow_opsflow.monitors.detect import _season_shape

    d = Detection(seasonality="day_of_week")
    points = _weekly(280, seed=5)
    shape = _season_shape([[(p.at, p.value) for p in points]], d, ratio=True)
    assert shape is not None and shape.ratio and set(shape.offset) == set(range(7))
    mean_factor = sum(WEEK) / 7
    for season, factor in shape.offset.items():
        assert factor == pytest.approx(WEEK[season] / mean_factor, rel=0.02)
    assert min(shape.points.values()) >= 35  # every complete week around a point taught it

    at = START + timedelta(days=280)  # a Monday
    verdict = judge(points, at, 1000, d)
    assert verdict.status == "ok" and verdict.expected == pytest.approx(1000, rel=0.03)
    # The band is the noise's (5 % of 1000 on a Monday), widened a little for estimation, not 1.5x.
    assert verdict.low is not None and verdict.high is not None
    assert 6 * 50 * 0.95 < verdict.high - verdict.low < 6 * 50 * 1.25
    assert judge(points, at, 1000 + 4.2 * 50, d).anomalous  # a 4-sigma spike on a weekday is found


def test_season_shape_across_dst_and_in_hour_buckets() -> None:
    """Local days 23 or 25 hours apart (Berlin's March and October switches) are still one day each, and
    hour buckets with a day-of-week season take a week of hours as the cycle."""
    from zoneinfo import ZoneInfo

    from airflow_opsflow.monitors.detect import _season_shape

    d = Detection(seasonality="day_of_week")
    berlin = datetime(2026, 1, 5, tzinfo=ZoneInfo("Europe/Berlin"))
    days = [Point(berlin + timedelta(days=i), p.value) for i, p in enumerate(_weekly(300, seed=8))]
    assert {(b.at - a.at).total_seconds() / 3600 for a, b in itertools.pairwise(days)
            if b.at.utcoffset() != a.at.utcoffset()} == {24.0}  # same wall-clock step, 23/25 h of real time
    shape = _season_shape([[(p.at, p.value) for p in days]], d, ratio=True)
    assert shape is not None and set(shape.offset) == set(range(7))
    assert shape.offset[4] / shape.offset[6] == pytest.approx(WEEK[4] / WEEK[6], rel=0.05)

    hours = _weekly(24 * 7 * 6, seed=9, step=timedelta(hours=1))
    hourly = _season_shape([[(p.at, p.value) for p in hours]], d, ratio=True)
    assert hourly is not None and set(hourly.offset) == set(range(7))
    assert hourly.offset[1] / hourly.offset[5] == pytest.approx(WEEK[1] / WEEK[5], rel=0.05)
