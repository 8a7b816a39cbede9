"""Anomaly detection on one metric series: a pure function from history to a verdict.

The model, fitted on the training window every time (no state but the points themselves):

* **trend**: the Theil-Sen slope (median of pairwise slopes), taken over pairs of the same season so
  that weekly swings do not read as a trend, and within one level (see level shifts);
* **season**: with ``seasonality``, each season's (weekday's, hour's) median offset from the level;
* **level**: the median of the detrended, deseasonalised points (the mean for ``method="zscore"``);
* **scale**: 1.4826 x the median absolute residual (robust), or their standard deviation (``zscore``),
  widened by the uncertainty of the estimates so a short history does not cry wolf.

``expected = level + season + slope x (t - now)``; the point is anomalous when ``|x - expected|`` exceeds
``sensitivity x scale`` in the watched ``direction`` *and* the minimum absolute and relative changes.

Points flagged anomalous earlier are left out of training (an outage must not teach the model that
outages are normal). When the last ``adapt_after`` points were all anomalous in the same direction the
series has moved to a new level: those points form a new level, and the model measures the new point
against it (so a lasting change alerts, then settles, rather than alerting forever).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from airflow_opsflow.checks.detection import Detection, Seasonality

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation
_TRIM = 3.0  # residuals beyond this many robust sigmas are left out of the scale
_TRIMMED_VARIANCE = 0.9733  # the variance of a standard normal truncated at +/-3
_MAX_PAIRS = 20_000  # Theil-Sen pairs per fit (enough for a stable median; bounded cost)
_LOOKBACK = 4  # history read per verdict, in windows: room to skip over flagged points


def season_of(at: datetime, seasonality: Seasonality | None) -> int:
    """The season of a (local) bucket start."""
    if seasonality == "day_of_week":
        return at.weekday()
    if seasonality == "hour_of_day":
        return at.hour
    if seasonality == "hour_of_week":
        return at.weekday() * 24 + at.hour
    return 0


@dataclass(frozen=True)
class Point:
    """One stored point: when (a bucket start, local time), its value and its earlier verdict.

    :param z: the signed score it got when it was judged (None: no verdict then).
    :param anomalous: it was judged anomalous (left out of later training, unless it began a new level).
    :param new_level: it was judged against a level the series had just moved to; the anomalies right
        before it started that level.
    """

    at: datetime
    value: float
    z: float | None = None
    anomalous: bool = False
    new_level: bool = False


@dataclass(frozen=True)
class Verdict:
    """The judgement of one point.

    :param status: ``ok``, ``anomalous`` or ``insufficient`` (no verdict: too little history).
    :param expected: the model's value for the point; ``low``/``high`` the band around it.
    :param z: ``(value - expected) / scale``, signed.
    :param training_size: usable points behind the verdict (in the point's season when seasonal).
    :param new_level: the point completed a run of same-direction anomalies and was judged against the
        level the series moved to.
    """

    status: Literal["ok", "anomalous", "insufficient"]
    value: float
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    z: float | None = None
    training_size: int = 0
    new_level: bool = False
    reason: str = ""

    @property
    def anomalous(self) -> bool:
        return self.status == "anomalous"


def judge(history: Sequence[Point], at: datetime, value: float, d: Detection) -> Verdict:
    """Judge ``value`` at ``at`` against ``history`` (older points, oldest first). Training uses the last
    ``d.window`` usable points among the last ``4 x d.window``."""
    if not math.isfinite(value):
        raise ValueError(f"the metric value {value!r} is not a finite number")
    recent = list(history[-_LOOKBACK * d.window:])
    starts = _accepted_levels(recent)
    verdict = _judge(recent, starts, at, value, d)
    run = _trailing_run(recent, starts)
    if (verdict.anomalous and d.adapt_after is not None and run is not None
            and run[1] >= d.adapt_after - 1 and (verdict.z or 0) * run[2] > 0):
        # This point completes ``adapt_after`` anomalies in one direction: the series has moved.
        moved = _judge(recent, [*starts, run[0]], at, value, d)
        before = f"{verdict.expected:.6g}" if verdict.expected is not None else "?"
        return Verdict(moved.status, value, moved.expected, moved.low, moved.high, moved.z,
                       moved.training_size, True, moved.reason or f"it was about {before} before")
    return verdict


def _sign(p: Point) -> int:
    return 0 if not p.anomalous or p.z is None else (1 if p.z > 0 else -1)


def _accepted_levels(recent: list[Point]) -> list[int]:
    """Indexes where an accepted level starts: the run of anomalies just before each ``new_level`` point."""
    starts = []
    for k, p in enumerate(recent):
        if p.new_level:
            j, sign = k, _sign(recent[k - 1]) if k else 0
            while sign and j > 0 and _sign(recent[j - 1]) == sign:
                j -= 1
            starts.append(j)
    return starts


def _trailing_run(recent: list[Point], starts: list[int]) -> tuple[int, int, int] | None:
    """(start, length, sign) of the same-direction anomalies ending the history, after the last level."""
    floor = max(starts, default=0)
    run, sign = 0, 0
    for p in reversed(recent[floor:]):
        s = _sign(p)
        if s == 0 or (sign and s != sign):
            break
        sign, run = s, run + 1
    return (len(recent) - run, run, sign) if run else None


def _judge(recent: list[Point], starts: list[int], at: datetime, value: float, d: Detection) -> Verdict:
    # Segments: the history split where a level was accepted; anomalies are left out of training except
    # the runs that started a level.
    bounds = sorted(set([0, *starts, len(recent)]))
    segments: list[list[Point]] = []
    for lo, hi in itertools.pairwise(bounds):
        run_end = lo
        if lo in starts:
            while run_end < hi and recent[run_end].anomalous:
                run_end += 1
        seg = [p for i, p in enumerate(recent[lo:hi], start=lo) if i < run_end or not p.anomalous]
        if seg:
            segments.append(seg)
    # The newest ``window`` usable points: flagged ones do not count, so a long outage still leaves the
    # model its normal history to compare against.
    room = d.window
    for k in range(len(segments) - 1, -1, -1):
        segments[k] = segments[k][-room:] if room else []
        room -= len(segments[k])
    segments = [seg for seg in segments if seg]
    training = [p for seg in segments for p in seg]
    season = season_of(at, d.seasonality)
    in_season = sum(1 for p in training if season_of(p.at, d.seasonality) == season)
    if in_season < d.min_training or len(training) < d.min_training:
        return Verdict("insufficient", value, training_size=in_season,
                       reason=f"{in_season} of {d.min_training} training points"
                              + (" in this season" if d.seasonality else ""))
    model = _fit(segments, at, d)
    expected, scale = model.expected(at, d), model.scale
    diff = value - expected
    z = diff / scale if scale > 0 else 0.0
    low, high = expected - d.sensitivity * scale, expected + d.sensitivity * scale
    outside = (d.direction != "drop" and z > d.sensitivity) or (d.direction != "spike" and z < -d.sensitivity)
    change = abs(diff)
    big_enough = change >= d.min_change and change >= d.min_relative_change * abs(expected)
    status: Literal["ok", "anomalous"] = "anomalous" if outside and big_enough else "ok"
    reason = ""
    if abs(z) > d.sensitivity and not outside:
        reason = f"only {d.direction}s are watched"
    elif outside and not big_enough:
        floors = [f"{d.min_change:g}" if d.min_change else "",
                  f"{d.min_relative_change:.0%}" if d.min_relative_change else ""]
        rel = f", {diff / expected:+.1%}" if expected else ""
        reason = (f"the change of {diff:+.4g}{rel} is below the minimum change of "
                  + " and ".join(f for f in floors if f))
    return Verdict(status, value, expected, low, high, z, in_season, False, reason)


@dataclass
class _Model:
    level: dict[int, float]  # each season's expected value at the judged time
    scale: float

    def expected(self, at: datetime, d: Detection) -> float:
        return self.level[season_of(at, d.seasonality)]


def _fit(segments: list[list[Point]], at: datetime, d: Detection) -> _Model:
    """Each season's value at ``at``: the center of its points carried along the trend to ``at``, at the
    newest level. The trend is a compound growth rate when the series is positive (weekends grow with
    weekdays, in proportion), else a slope; either is shared by all seasons."""
    center = statistics.median if d.method == "robust" else statistics.fmean
    offsets = [0.0] * len(segments)  # each segment's level relative to the others
    tagged = [(k, season_of(p.at, d.seasonality), p) for k, seg in enumerate(segments) for p in seg]
    seasons = {s for _, s, _ in tagged}
    for _ in range(2):  # fit, measure each segment's offset from the fit, fit again without them
        adjusted = [(k, s, p.at, p.value - offsets[k]) for k, s, p in tagged]
        growth = _growth(adjusted, d) if d.trend else None
        carried = [(k, s, _carry(v, _seconds(at, t), growth)) for k, s, t, v in adjusted]
        level = {s: center([v for _, s2, v in carried if s2 == s]) for s in seasons}
        resid = [(k, v - level[s]) for k, s, v in carried]
        if len(segments) == 1:
            break
        offsets = [offsets[k] + center([e for j, e in resid if j == k]) for k in range(len(segments))]
    errors = [e for _, e in resid]
    if d.method == "robust":
        # The MAD resists outliers but is a noisy estimate (37 % efficient); the standard deviation of
        # the residuals within 3 MADs is as resistant and nearly as steady as a plain one.
        rough = _MAD_TO_SIGMA * statistics.median([abs(e) for e in errors])
        kept = [e for e in errors if abs(e) <= _TRIM * rough] if rough > 0 else []
        scale = math.sqrt(statistics.fmean([e * e for e in kept]) / _TRIMMED_VARIANCE) if kept else rough
    else:
        scale = statistics.pstdev(errors) if len(errors) > 1 else 0.0
    # Residuals around fitted centers understate the noise (one degree of freedom per season and
    # segment); and a new point also carries the error of its season's estimated value: a median of n_s
    # points varies pi/2 times more than their mean.
    n, fitted = len(errors), len(level) + len(segments) - 1
    scale *= math.sqrt(n / max(1, n - fitted))
    spread = math.pi / 2 if d.method == "robust" else 1.0
    n_season = max(1, n // max(1, len(level)))
    extrapolation = _extrapolation(tagged, at, d) if d.trend else 0.0
    scale *= math.sqrt(1 + spread / n_season + (spread / len(segments[-1]) if len(segments) > 1 else 0)
                       + extrapolation)
    # A scale learnt from few points is itself uncertain: widen the band as a Student-t interval would,
    # so that "sensitivity" keeps its meaning (the same false-alarm rate) on a short history.
    scale *= _t_ratio(d.sensitivity, n - fitted)
    if scale == 0:  # a constant series: any change is anomalous, but a zero band says nothing useful
        scale = 1e-9 * max(1.0, max(abs(v) for v in level.values()))
    return _Model({s: v + offsets[-1] for s, v in level.items()}, scale)


def _extrapolation(tagged: list[tuple[int, int, Point]], at: datetime, d: Detection) -> float:
    """The trend's share of a prediction's variance, in units of the noise's: as for a least-squares
    line, ``(at - mean time of the season's points)^2 / sum of squared time deviations`` (the slope is
    learnt from every season and segment, the level of ``at``'s season from its own points)."""
    groups: dict[tuple[int, int], list[float]] = {}
    for k, s, p in tagged:
        groups.setdefault((k, s), []).append(_seconds(p.at, at))
    sxx = 0.0
    for ts in groups.values():
        mean = statistics.fmean(ts)
        sxx += sum((t - mean) ** 2 for t in ts)
    own = [t for (_, s), ts in groups.items() if s == season_of(at, d.seasonality) for t in ts]
    return statistics.fmean(own) ** 2 / sxx if sxx > 0 and own else 0.0


def _seconds(later: datetime, earlier: datetime) -> float:
    """Elapsed seconds (aware datetimes in one zone subtract as wall-clock time, wrong across DST)."""
    return later.timestamp() - earlier.timestamp()


def _t_ratio(z: float, dof: int) -> float:
    """Student-t quantile / normal quantile at the same tail probability (Cornish-Fisher expansion)."""
    if dof < 1:
        return 1.0
    v = float(dof)
    t = (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
         + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))
    return t / z


def _carry(value: float, seconds: float, growth: tuple[str, float] | None) -> float:
    """``value`` carried ``seconds`` forward along the trend."""
    if growth is None:
        return value
    kind, rate = growth
    return value * math.exp(rate * seconds) if kind == "rate" else value + rate * seconds


def _growth(points: list[tuple[int, int, datetime, float]], d: Detection) -> tuple[str, float]:
    """Theil-Sen over pairs of the same season and level segment: the median log-ratio per second
    (compound growth) when every value is positive, else the median slope."""
    groups: dict[tuple[int, int], list[tuple[datetime, float]]] = {}
    for k, s, t, v in points:
        groups.setdefault((k, s), []).append((t, v))
    kind = "rate" if all(v > 0 for *_, v in points) else "slope"
    per_group = max(1, _MAX_PAIRS // max(1, len(groups)))
    slopes: list[float] = []
    for pts in groups.values():
        n = len(pts)
        step = max(1, n * (n - 1) // 2 // per_group)
        for i in range(n):
            ti, vi = pts[i]
            for j in range(i + 1, n, step):
                tj, vj = pts[j]
                dt = _seconds(tj, ti)
                if dt:
                    slopes.append((math.log(vj / vi) if kind == "rate" else vj - vi) / dt)
    return kind, statistics.median(slopes) if slopes else 0.0
