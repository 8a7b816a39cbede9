"""Anomaly-detection quality: precision and recall on labelled synthetic metric series.

    python bench/anomaly.py [--series 120] [--days 364] [--seed 7] [--no-doc]

Each series is a daily business metric: a level (50 to 50,000), a linear trend (-0.2 % to +0.3 % a day),
weekly seasonality (weekends 20-45 % lower, Mondays a little higher), Gaussian noise (sigma 2-8 % of the
level) and planted anomalies: single-day spikes and drops of 3, 4, 5 and 6 sigma, and lasting level
shifts of 6-10 sigma. A planted anomaly *replaces* the point with ``clean value +/- k sigma`` (the
point's own noise is not added on top: a "4 sigma" anomaly is 4 sigma from what the day should have
been). The onset of a level shift is labelled anomalous; the days after it are normal (the new level),
and the two days after it are *adapting*: the series is mid-change, so those days count neither as
normal nor as anomalous, and the share a detector flags is reported on its own (with opsflow's default
``adapt_after=3`` an open incident stays open over them and resolves once the new level is accepted).

Every series is run through the detector point by point, as daily DAG runs would, each verdict stored
with its point (so flagged points are left out of later training), after a 98-day warm-up (the history
a first run backfills). Contenders: opsflow's detector with day-of-week seasonality (the configuration
the docs recommend for daily business metrics) with its default z-score method, the same with the
robust (median/MAD) method, and a
z-score baseline without seasonality or trend (mean and standard deviation of the last 14 days,
threshold 3: the classic open-source default). Quality is measured, not timed. Figures go to stdout and
to the ``bench:anomaly`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _doc import write_section  # noqa: E402

from airflow_opsflow.monitors.detect import Detection, Point, judge  # noqa: E402

SIZES = (3, 4, 5, 6)
WARMUP = 98
ADAPTING = 2  # days after a level shift's onset that are neither normal nor anomalous (see the docstring)
TARGET_RECALL, TARGET_FALSE_PER_100 = 0.95, 1.0
S = "\u03c3"  # sigma, in the report

CONTENDERS = {
    "opsflow z-score, day-of-week (default method)": Detection(method="zscore", seasonality="day_of_week"),
    "opsflow robust, day-of-week": Detection(method="robust", seasonality="day_of_week"),
    "baseline z-score, no seasonality": Detection(method="zscore", seasonality=None, trend=False, training=14,
                                                  min_training=7, adapt_after=None),
}


@dataclass
class Series:
    days: list[datetime]
    values: list[float]
    labels: list[str | None]  # None (normal), "spike:4", "drop:5", "shift:8"


def generate(rng: random.Random, days: int) -> Series:
    start = datetime(2025, 1, 6)  # a Monday
    level = 10 ** rng.uniform(math.log10(50), math.log10(50_000))
    trend = rng.uniform(-0.002, 0.003)
    weekend = rng.uniform(0.55, 0.8)
    monday = rng.uniform(1.0, 1.1)
    sigma_share = rng.uniform(0.02, 0.08)
    shift_at = {d: rng.choice((-1, 1)) * rng.uniform(6, 10) for d in range(WARMUP + 20, days - 10)
                if rng.random() < 1 / 150}  # no planted spike/drop in the week after an onset (see below)
    offset = 0.0
    out = Series([], [], [])
    for d in range(days):
        day = start + timedelta(days=d)
        base = level * (1 + trend) ** d
        sigma = base * sigma_share  # noise grows with the business, not with the weekday
        if d in shift_at:
            offset += shift_at[d] * sigma
        seasonal = base * ((weekend if day.weekday() >= 5 else monday if day.weekday() == 0 else 1.0) - 1)
        clean = base + seasonal + offset
        label = None
        since_shift = min((d - at for at in shift_at if at < d), default=None)
        if d in shift_at:
            label, value = f"shift:{abs(shift_at[d]):.0f}", clean + rng.gauss(0, sigma)
        elif d >= WARMUP and rng.random() < 0.02 and (since_shift is None or since_shift > ADAPTING + 5):
            k = rng.choice(SIZES)
            sign = rng.choice((-1, 1))
            label, value = f"{'spike' if sign > 0 else 'drop'}:{k}", clean + sign * k * sigma
        else:
            value = clean + rng.gauss(0, sigma)
            if since_shift is not None and since_shift <= ADAPTING:
                label = "adapting:0"
        out.days.append(day)
        out.values.append(value)
        out.labels.append(label)
    return out


@dataclass
class Score:
    detected: dict[str, list[int]] = field(default_factory=dict)  # kind:size -> [found, planted]
    normal: int = 0
    false_alarms: int = 0
    flagged: int = 0
    true_flags: int = 0
    no_verdict: int = 0
    adapting: list[int] = field(default_factory=lambda: [0, 0])  # [flagged, points]
    seconds: float = 0.0

    def add(self, label: str | None, flagged: bool) -> None:
        if label == "adapting:0":
            self.adapting[0] += flagged
            self.adapting[1] += 1
            return
        if label is None:
            self.normal += 1
            self.false_alarms += flagged
        else:
            kind, size = label.split(":")
            key = "shift" if kind == "shift" else f"{size}"
            found = self.detected.setdefault(key, [0, 0])
            found[0] += flagged
            found[1] += 1
            self.true_flags += flagged
        self.flagged += flagged

    def recall(self, key: str) -> float:
        found, planted = self.detected.get(key, [0, 0])
        return found / planted if planted else float("nan")

    def recall_at_least(self, size: int) -> float:
        found = [self.detected.get(str(k), [0, 0]) for k in SIZES if k >= size]
        planted = sum(n for _, n in found)
        return sum(f for f, _ in found) / planted if planted else float("nan")

    @property
    def precision(self) -> float:
        return self.true_flags / self.flagged if self.flagged else float("nan")

    @property
    def false_per_100(self) -> float:
        return 100 * self.false_alarms / self.normal if self.normal else float("nan")


def run(series: list[Series], d: Detection) -> Score:
    score = Score()
    started = time.perf_counter()
    for s in series:
        history: list[Point] = []
        for i, (day, value, label) in enumerate(zip(s.days, s.values, s.labels, strict=True)):
            v = judge(history, day, value, d)
            if i >= WARMUP:
                if v.status == "insufficient":
                    score.no_verdict += 1
                score.add(label, v.anomalous)
            history.append(Point(day, value, v.z, v.anomalous, v.new_level))
    score.seconds = time.perf_counter() - started
    return score


def report(results: dict[str, Score], n_series: int, days: int, seed: int) -> str:
    lines = [
        f"Anomaly detection quality (`bench/anomaly.py --series {n_series} --days {days} --seed {seed}`): "
        f"{n_series} daily series, {days - WARMUP} judged days each after a {WARMUP}-day warm-up; weekly "
        "seasonality, trend, noise, planted spikes/drops of k sigma and lasting level shifts (onset labelled). "
        "Measured, not timed.",
        "",
        f"| detector | recall 3{S} | recall 4{S} | recall 5{S} | recall 6{S} | recall >= 4{S} | recall shift onset | "
        "false alarms / 100 normal points | precision | flagged while adapting | no verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in results.items():
        cells = [f"{s.recall(str(k)):.3f}" for k in SIZES] + [f"{s.recall_at_least(4):.3f}", f"{s.recall('shift'):.3f}"]
        lines.append(f"| {name} | {' | '.join(cells)} | {s.false_per_100:.2f} | {s.precision:.3f} | "
                     f"{s.adapting[0] / max(1, s.adapting[1]):.2f} | {s.no_verdict} |")
    ours = results[next(iter(results))]
    planted = {k: ours.detected.get(str(k), [0, 0])[1] for k in SIZES}
    lines += ["", f"Planted per size: {', '.join(f'{k}{S}: {n}' for k, n in planted.items())}; level shifts: "
              f"{ours.detected.get('shift', [0, 0])[1]}; normal points: {ours.normal}."]
    recall4 = ours.recall_at_least(4)
    met = recall4 >= TARGET_RECALL and ours.false_per_100 <= TARGET_FALSE_PER_100
    lines.append(
        f"Targets (first row): recall >= {TARGET_RECALL} for anomalies >= 4{S}: {recall4:.3f}; at most "
        f"{TARGET_FALSE_PER_100:g} false alarm per 100 normal points: {ours.false_per_100:.2f} -> "
        f"{'met' if met else 'NOT met'}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=120)
    ap.add_argument("--days", type=int, default=364)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    series = [generate(rng, args.days) for _ in range(args.series)]
    results = {name: run(series, d) for name, d in CONTENDERS.items()}
    text = report(results, args.series, args.days, args.seed)
    print(text)
    if not args.no_doc:
        write_section("anomaly", text, "Anomaly detection")


if __name__ == "__main__":
    main()
