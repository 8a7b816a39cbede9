"""bench/anomaly.py's data and scoring on a few series (no Prophet): the labels say what was planted."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _anomaly_data import (  # noqa: E402
    RECOVERY_DAYS,
    SIZES,
    WARMUP,
    Series,
    calendar_events,
    real,
    real_sources,
    synthetic,
)
from anomaly import ELEMENTARY, Run, Score, _judge_elementary  # noqa: E402

from airflow_opsflow.core.calendar import BusinessCalendar, events_on  # noqa: E402

DAYS = 800


@pytest.fixture(scope="module")
def series() -> list[Series]:
    return [synthetic(3, i, DAYS) for i in range(8)]  # two of each kind


def test_planted_spikes_and_drops_are_k_sigma_of_the_noise_model(series: list[Series]) -> None:
    planted = 0
    for s in series:
        for i, label in enumerate(s.labels):
            if label.kind not in ("spike", "drop"):
                continue
            planted += 1
            assert label.k in SIZES and i >= WARMUP
            sign = 1 if label.kind == "spike" else -1
            size = (s.values[i] - s.mean[i]) / s.sigma[i] * sign
            rounding = 0.5 / s.sigma[i] if s.values[i].is_integer() else 1e-9  # counts are rounded
            assert abs(size - label.k) <= rounding + 1e-9, (s.name, i)
            assert label.size == pytest.approx(size)
    assert planted > 40


def test_outages_are_labelled_day_by_day_then_recovery(series: list[Series]) -> None:
    outages = 0
    for s in series:
        for i, label in enumerate(s.labels):
            if label.kind == "outage" and label.size == 1:
                outages += 1
                run = s.labels[i:i + label.length]
                assert [lab.size for lab in run] == list(range(1, label.length + 1))
                assert all(s.values[j] <= 0.71 * s.mean[j] + 0.5 for j in range(i, i + label.length))
                after = s.labels[i + label.length:i + label.length + RECOVERY_DAYS]
                assert [lab.kind for lab in after] == ["recovery"] * RECOVERY_DAYS
    assert outages >= 3


def test_event_days_are_flagged_as_events(series: list[Series]) -> None:
    payments = next(s for s in series if s.kind == "payments")
    christmas = payments.days.index(date(2023, 12, 25))
    assert "holiday" in payments.events[christmas]
    month_end = payments.days.index(date(2024, 1, 31))
    assert {"month_end", "last_business_day"} <= payments.events[month_end]
    assert payments.is_event(month_end)
    for i, day in enumerate(payments.days):
        assert payments.events[i] <= events_on(day, BusinessCalendar(timezone="Europe/Berlin", country="DE",
                                                                     subdivision=_subdivision(payments)),
                                               calendar_events())
    # Every day a payments series' calendar really moves (billing, first business day, weekday holidays)
    # is one the configured calendar names.
    assert payments.effect_days and all(payments.events[i] for i in payments.effect_days)
    retail = next(s for s in series if s.kind == "retail")
    assert any("campaign" in e for e in retail.events)
    misses = [i for s in series for i, lab in enumerate(s.labels) if lab.kind == "event_miss"]
    assert misses
    for s in series:
        for i, lab in enumerate(s.labels):
            if lab.kind == "event_miss":
                assert i in s.effect_days and lab.size >= 3


def _subdivision(s: Series) -> str | None:
    place = s.name.split("(")[1].split(",")[0]
    return place.split("-")[1] if "-" in place else None


def test_real_series_keep_their_own_days_as_normal() -> None:
    sources, _ = real_sources()
    if not sources:
        pytest.skip("no real-data package installed (make bench installs them)")
    s = real(sources[0], 0, 3)
    raw = sources[0].values
    normal = [i for i, lab in enumerate(s.labels) if lab.kind == "normal"]
    first_change = next((i for i, lab in enumerate(s.labels) if lab.kind == "shift"), len(raw))
    assert all(s.values[i] == raw[i] for i in normal if i < first_change)
    assert any(lab.anomalous for lab in s.labels)


def test_scoring_counts_what_elementary_flags(series: list[Series]) -> None:
    import anomaly

    anomaly._SERIES[:] = series[:2]
    score = Score()
    for index, s in enumerate(series[:2]):
        run: Run = _judge_elementary(index)
        assert run.contender == ELEMENTARY and min(run.status) == WARMUP
        score.add(s, run)
    planted = sum(1 for s in series[:2] for lab in s.labels if lab.kind in ("spike", "drop"))
    assert sum(score.recall[f"size:{k}"][1] for k in SIZES if f"size:{k}" in score.recall) == planted
    assert score.alarms["normal"][1] > 500
    assert 0 <= score.per_100("normal") <= 100
