"""Anomaly detection on one metric series: a pure function from history to a verdict.

The model, fitted on the training window every time (no state but the points themselves):

* **scale**: values are judged as they are, on the square root or on the log scale, whichever makes the
  noise most alike across seasons (``transform="auto"``; a positive volume with no evidence either way
  goes on the log scale, where its shifts and seasons scale with it);
* **trend**: the Theil-Sen slope (median of pairwise slopes), taken over pairs of the same season so
  that weekly swings do not read as a trend, and within one level (see level shifts);
* **season**: with ``seasonality``, each season's (weekday's, hour's) center carried to now;
* **noise**: the residuals' standard deviation (``zscore``) or trimmed MAD (``robust``), the judged
  season's own pooled with the others' (``season_noise``), widened by the uncertainty of the estimates
  so a short history does not cry wolf;
* **calendar events**: a point on a holiday, a billing day... gets its events' effects, learnt from
  their earlier occurrences against the same season's neighbours (no verdict until there are enough).

The point is anomalous when it is more than ``sensitivity`` x noise from the expected value in the
watched ``direction`` *and* beyond the minimum absolute and relative changes.

Points flagged anomalous earlier are left out of training (an outage must not teach the model that
outages are normal); a person's mark (``marked``) puts one back. When a change has held for
``adapt_after`` points in one direction (unflagged points clearly on its side do not break it) the
series has moved: those points start a new level and the next point is measured against it, so a
lasting change alerts, then settles. A drop to near zero is an outage and never a level; a level the
series leaves again, soon after, for the one before is unlearnt (``recovered``).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from airflow_opsflow.checks.detection import Detection, Seasonality

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution x this = its standard deviation
_TRIM = 3.0  # residuals beyond this many robust sigmas are left out of the scale
_TRIMMED_VARIANCE = 0.9733  # the variance of a standard normal truncated at +/-3
_MAX_PAIRS = 20_000  # Theil-Sen pairs per fit (enough for a stable median; bounded cost)
_LOOKBACK = 4  # history read per verdict, in windows: room to skip over flagged points
_NEAR_ZERO = 0.1  # a drop below this share of the expected value is an outage, never a new level
_LEAN = 1.5  # an unflagged point this many sigmas to the side of a change it sits in continues it
_SEASON_PRIOR = 7  # a season's own noise counts against the pooled noise as if this many points held it
_EVENT_PRIOR = 3  # likewise for a calendar event's noise against the base scale
_SPREAD_CONTRAST = 1.5  # seasons' levels must differ this much for "auto" to read how noise grows with them
_LOG_FLOOR = 20  # below this median a series with no evidence either way is judged as it is
_PREFER_NONE = 0.8  # a transform must make the noise this much more alike across seasons to be chosen
_CYCLE_SECONDS = {"day_of_week": 7 * 86400, "hour_of_day": 86400, "hour_of_week": 7 * 86400}


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
    :param recovered: it was back at the level before the last accepted one, which is then unlearnt.
    :param marked: a person marked it expected: it trains as normal (and its events' effects).
    :param events: the calendar events it falls on (read from the check's calendar, not stored).
    """

    at: datetime
    value: float
    z: float | None = None
    anomalous: bool = False
    new_level: bool = False
    recovered: bool = False
    marked: bool = False
    events: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    """The judgement of one point.

    :param status: ``ok``, ``anomalous`` or ``insufficient`` (no verdict: too little history, or a
        calendar event not learnt yet: ``unlearnt_event``).
    :param expected: the model's value for the point; ``low``/``high`` the band around it (in the
        metric's units, whatever ``transform`` it was judged on).
    :param z: the signed distance from the expected value in noise units, on the ``transform`` scale.
    :param training_size: usable points behind the verdict (in the point's season when seasonal).
    :param new_level: a change had held ``adapt_after`` points and the point was judged against the
        level the series moved to.
    :param recovered: the point was back at the level before the last one, which is unlearnt.
    :param events: the calendar events the point falls on (their effects are in ``expected``).
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
    recovered: bool = False
    transform: str = "none"
    events: frozenset[str] = frozenset()
    unlearnt_event: bool = False  # no verdict: the point falls on a calendar event not learnt yet

    @property
    def anomalous(self) -> bool:
        return self.status == "anomalous"


def judge(history: Sequence[Point], at: datetime, value: float, d: Detection,
          events: frozenset[str] = frozenset()) -> Verdict:
    """Judge ``value`` at ``at`` (falling on the calendar ``events``) against ``history`` (older points,
    oldest first). Training uses the last ``d.window`` usable points among the last ``4 x d.window``;
    event effects are learnt from all of ``history``."""
    if not math.isfinite(value):
        raise ValueError(f"the metric value {value!r} is not a finite number")
    h = list(history)
    levels, excluded = _labels(h)
    lo = max(0, len(h) - _LOOKBACK * d.window)
    verdict, model = _judge(h, lo, levels, excluded, at, value, d, events)
    if not verdict.anomalous:
        return verdict
    last = levels[-1][0] if levels else None
    if (last is not None and last >= lo and len(h) - last <= max(2 * d.period, 4 * (d.adapt_after or 1))
            and (verdict.z or 0) * _sign(h[last]) < 0):
        # Back where it was before a level accepted only lately: that level was an outage (or a burst);
        # unlearn it, and this point is normal.
        back, _ = _judge(h, lo, levels[:-1], excluded | set(range(last, len(h))), at, value, d, events)
        if back.status == "ok":
            return replace(back, recovered=True,
                           reason=f"back at the level before {_when(h[last].at)}; the change then is not learnt")
    run = _trailing_run(h, levels[-1][1] if levels else 0)
    if (d.adapt_after is not None and run is not None and run[1] >= d.adapt_after
            and (verdict.z or 0) * run[2] > 0 and model is not None
            and not (run[2] < 0 and _near_zero([p.at for p in h[run[0]:]], [p.value for p in h[run[0]:]],
                                               at, value, model, d))):
        # The change has held for ``adapt_after`` points and is not an outage to (near) zero: the series
        # has moved; judge this point against the new level.
        moved, _ = _judge(h, lo, [*levels, (run[0], len(h))], excluded, at, value, d, events)
        before = f"{verdict.expected:.6g}" if verdict.expected is not None else "?"
        return replace(moved, new_level=True, reason=moved.reason or f"it was about {before} before")
    return verdict


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d}" if (at.hour, at.minute) == (0, 0) else f"{at:%Y-%m-%d %H:%M}"


def _flagged(p: Point) -> bool:
    """Judged anomalous and not marked expected by a person since."""
    return p.anomalous and not p.marked


def _sign(p: Point) -> int:
    return 0 if not _flagged(p) or p.z is None else (1 if p.z > 0 else -1)


def _labels(h: list[Point]) -> tuple[list[tuple[int, int]], set[int]]:
    """The accepted levels, as (start, end) of the run of anomalies that started each (it ends at its
    ``new_level`` point), and the points of levels a later ``recovered`` point unlearnt (they are out of
    training, as outages)."""
    levels: list[tuple[int, int]] = []
    excluded: set[int] = set()
    for k, p in enumerate(h):
        if p.recovered and levels:
            last, _ = levels.pop()
            excluded.update(range(last, k))
        if p.new_level:
            floor = levels[-1][1] if levels else 0
            run = _trailing_run(h[:k], floor)
            levels.append((run[0] if run else k, k))
    return levels, excluded


def _trailing_run(h: list[Point], floor: int) -> tuple[int, int, int] | None:
    """(start, length, sign) of the change ending the history after ``floor``: points flagged in one
    direction, and unflagged ones clearly on the same side between them (a quiet weekend inside a drop,
    whose wider band held it), from the first flagged one on."""
    sign, start = 0, len(h)
    for i in range(len(h) - 1, floor - 1, -1):
        p = h[i]
        if _flagged(p):
            s = _sign(p)
        elif p.z is not None and abs(p.z) >= _LEAN and not (p.new_level or p.recovered):
            s = 1 if p.z > 0 else -1
        else:
            break
        if sign and s != sign:
            break
        sign, start = s, i
    while start < len(h) and not _flagged(h[start]):
        start += 1  # a change starts with an anomaly
    if start == len(h):
        return None
    return start, len(h) - start, sign


def _near_zero(times: list[datetime], values: list[float], at: datetime, value: float, model: _Model,
               d: Detection) -> bool:
    """Every point of the drop (and this one) is below a tenth of its season's expected value."""
    pairs = [*zip(times, values, strict=True), (at, value)]
    return all(v <= _NEAR_ZERO * model.expected_in(season_of(t, d.seasonality)) for t, v in pairs)


def _judge(h: list[Point], lo: int, levels: list[tuple[int, int]], excluded: set[int], at: datetime,
           value: float, d: Detection, events: frozenset[str]) -> tuple[Verdict, _Model | None]:
    # Segments: the recent history split where a level was accepted; anomalies are left out of training
    # except the runs that started a level; calendar-event points train their events, not the base.
    runs = {a: end for a, end in levels if a >= lo}
    bounds = sorted(set([lo, *runs, len(h)]))
    segments: list[list[Point]] = []
    for a, b in itertools.pairwise(bounds):
        run_end = runs.get(a, a)
        seg = [p for i, p in enumerate(h[a:b], start=a)
               if i not in excluded and not p.events and (i < run_end or not _flagged(p))]
        if seg:
            segments.append(seg)
    # Every usable point read (up to _LOOKBACK windows) teaches the seasons' shape; the newest ``window``
    # of them the level, trend and noise.
    everything = list(segments)
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
        return Verdict("insufficient", value, training_size=in_season, events=events,
                       reason=f"{in_season} of {d.min_training} training points"
                              + (" in this season" if d.seasonality else "")), None
    tf = choose_transform(training, value, d)
    # Seasons learnt over levels far apart must scale with them: as factors, or differences on the log scale.
    ratio = _ratio_scale(training, tf)
    shape = (_season_shape([[(p.at, tf.forward(p.value)) for p in seg] for seg in everything], d, ratio)
             if ratio or tf.name == "log" else None)
    model = _fit([[replace(p, value=tf.forward(p.value)) for p in seg] for seg in segments], at, d, tf, shape)
    expected_t, scale = model.expected(at, d), model.scale
    if events:
        effect = _event_effects(h, excluded, events, tf, model, d)
        if isinstance(effect, str):
            return Verdict("insufficient", value, training_size=in_season, transform=tf.name, events=events,
                           reason=effect, unlearnt_event=True), model
        shift, scale = effect
        expected_t += shift
    y = tf.forward(value)
    z = (y - expected_t) / scale if scale > 0 else 0.0
    expected = tf.inverse(expected_t)
    low, high = tf.inverse(expected_t - d.sensitivity * scale), tf.inverse(expected_t + d.sensitivity * scale)
    outside = (d.direction != "drop" and z > d.sensitivity) or (d.direction != "spike" and z < -d.sensitivity)
    diff = value - expected
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
    return Verdict(status, value, expected, low, high, z, in_season, False, reason, transform=tf.name,
                   events=events), model


# -- the scale the noise is judged on -------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How values are transformed before fitting: ``none``, ``sqrt`` (counts whose variance grows with
    their mean) or ``log`` (spread in proportion to the level; ``log(x + shift)``, so a zero still maps to
    a finite, very low value)."""

    name: Literal["none", "sqrt", "log"]
    shift: float = 0.0

    def forward(self, x: float) -> float:
        if self.name == "log":
            return math.log(max(x + self.shift, self.shift * 1e-3))
        if self.name == "sqrt":
            return math.copysign(math.sqrt(abs(x)), x)
        return x

    def inverse(self, y: float) -> float:
        if self.name == "log":
            return math.exp(y) - self.shift
        if self.name == "sqrt":
            return math.copysign(y * y, y)
        return y


_NONE = Scale("none")


def choose_transform(training: list[Point], value: float, d: Detection) -> Scale:
    """The scale ``d.transform`` asks for, or with ``auto`` the one under which the noise is most alike
    across seasons (or, without seasonality, across weeks of points): Guerrero's method over none, square
    root and log. Log and square root need non-negative values (log: positive training values)."""
    values = [p.value for p in training]
    lowest = min([*values, value])
    positive = min(values) > 0 and value >= 0
    shift = 0.01 * statistics.median(values) if positive else 0.0
    if d.transform == "none" or lowest < 0:
        return _NONE
    if d.transform == "log":
        return Scale("log", shift) if positive else _NONE
    groups: dict[int, list[float]] = {}
    if d.seasonality:
        for p in training:
            groups.setdefault(season_of(p.at, d.seasonality), []).append(p.value)
    if len([g for g in groups.values() if len(g) >= 4]) < 2:
        groups = {i: values[i:i + 7] for i in range(0, len(values), 7)}
    stats = []
    for g in groups.values():
        if len(g) < 4:
            continue
        center = statistics.median(g)
        # Successive differences (von Neumann): free of the trend, and steadier than a MAD on a few points.
        noise = math.sqrt(statistics.fmean((b - a) ** 2 for a, b in itertools.pairwise(g)) / 2)
        if center > 0 and noise > 0:
            stats.append((center, noise))
    if len(stats) < 2 or max(c for c, _ in stats) < _SPREAD_CONTRAST * min(c for c, _ in stats):
        # The levels are too alike to tell how the noise grows with them. A positive volume is then judged
        # on the log scale all the same: its trend, level shifts and seasons scale with it (a -70 % shift
        # takes the weekend down with the weekdays), which additive offsets get wrong. Small counts stay
        # as they are (the log of a handful is lopsided).
        return Scale("log", shift) if positive and statistics.median(values) >= _LOG_FLOOR else _NONE
    def variation(power: float) -> float:
        ratios = [noise / center ** power for center, noise in stats]
        return statistics.pstdev(ratios) / statistics.fmean(ratios)
    scores = {"none": variation(0.0), "sqrt": variation(0.5), "log": variation(1.0) if positive else math.inf}
    best = min(scores, key=lambda k: scores[k])
    if best == "none" or scores[best] > _PREFER_NONE * scores["none"]:
        return _NONE
    return Scale("log", shift) if best == "log" else Scale("sqrt")


# -- calendar events ------------------------------------------------------------------------------


def _event_effects(h: list[Point], excluded: set[int], events: frozenset[str], tf: Scale, model: _Model,
                   d: Detection) -> tuple[float, float] | str:
    """The judged events' joint effect (on the transformed scale) and the scale to judge the point with,
    learnt from earlier occurrences against their neighbours of the same season; or why there is no
    verdict (too few occurrences)."""
    reach = 2 * d.period  # neighbours: the same season up to two cycles away (two weeks of weekdays)
    samples: list[tuple[frozenset[str], float]] = []
    days: dict[str, set[object]] = {}
    for i, p in enumerate(h):
        if not p.events or i in excluded or _flagged(p):
            continue
        season = season_of(p.at, d.seasonality)
        around = [tf.forward(q.value) for j in range(max(0, i - reach), min(len(h), i + reach + 1))
                  if not (q := h[j]).events and j not in excluded and not _flagged(q)
                  and season_of(q.at, d.seasonality) == season]
        if len(around) < 2:
            continue
        samples.append((p.events, tf.forward(p.value) - statistics.median(around)))
        for e in p.events:
            days.setdefault(e, set()).add(p.at.date())
    short = [e for e in sorted(events) if len(days.get(e, ())) < d.min_event_history]
    if short:
        seen = len(days.get(short[0], ()))
        return (f"{short[0]} has {seen} earlier occurrence{'s' if seen != 1 else ''} in the history, "
                f"{d.min_event_history} needed to learn its effect")
    center = statistics.median if d.method == "robust" else statistics.fmean
    effect = dict.fromkeys(days, 0.0)
    for _ in range(3):  # backfitting: days holding two events (a holiday at month end) share them
        for e in effect:
            effect[e] = center([r - sum(effect[f] for f in evs if f != e) for evs, r in samples if e in evs])
    relevant = [r - sum(effect[f] for f in evs) for evs, r in samples if evs & events]
    learnt = {e for evs, _ in samples if evs & events for e in evs}
    # The event's own noise (its effect varies from one occurrence to the next), pooled with the base
    # scale as a prior worth _EVENT_PRIOR points, widened for the error of the learnt effect.
    dof = len(relevant) - len(learnt) + _EVENT_PRIOR
    var = (sum(r * r for r in relevant) + _EVENT_PRIOR * model.scale ** 2) / max(1, dof)
    fewest = min(len(days[e]) for e in events)
    scale = math.sqrt(var * (1 + 1 / fewest)) * _t_ratio(d.sensitivity, dof)
    return sum(effect[e] for e in events), max(scale, model.scale)


@dataclass
class _Model:
    level: dict[int, float]  # each season's expected value at the judged time (transformed scale)
    scale: float  # the noise of the judged time's season (transformed scale)
    transform: Scale

    def expected(self, at: datetime, d: Detection) -> float:
        return self.level[season_of(at, d.seasonality)]

    def expected_in(self, season: int) -> float:
        """A season's expected value in the metric's own units (the judged season's when unknown)."""
        level = self.level.get(season)
        return self.transform.inverse(level if level is not None else statistics.fmean(self.level.values()))


def _fit(segments: list[list[Point]], at: datetime, d: Detection, tf: Scale = _NONE,
         shape: _Shape | None = None) -> _Model:
    """Each season's value at ``at``. With the seasons' ``shape`` learnt from the longer history, one
    level shared by all seasons (every training point informs it, not only the judged season's) times
    or plus the season's offset; else each season's own center. Either is carried along the trend to
    ``at``, at the newest level. The trend is a compound growth rate when the series is positive
    (weekends grow with weekdays, in proportion), else a slope (on the log scale a slope is that rate);
    it is shared by all seasons. The noise is the judged season's, pooled with the other seasons'
    (``season_noise``)."""
    center = statistics.median if d.method == "robust" else statistics.fmean
    tagged = [(k, season_of(p.at, d.seasonality), p) for k, seg in enumerate(segments) for p in seg]
    seasons = {s for _, s, _ in tagged}
    # Each segment's level relative to the others: a factor for a positive series not on the log scale
    # (a -70 % shift takes the quiet weekend down with the weekdays), else a difference.
    ratio = _ratio_scale([p for _, _, p in tagged], tf)
    pooled = shape is not None and shape.ratio == ratio and seasons <= shape.offset.keys()
    off = shape.offset if shape is not None and pooled else {}

    def deseason(s: int, v: float) -> float:
        return v if not pooled else (v / off[s] if ratio else v - off[s])

    def reseason(s: int, v: float) -> float:
        return v if not pooled else (v * off[s] if ratio else v + off[s])

    offsets = [1.0 if ratio else 0.0] * len(segments)
    for _ in range(2):  # fit, measure each segment's offset from the fit, fit again without them
        adjusted = [(k, s, p.at, deseason(s, p.value / offsets[k] if ratio else p.value - offsets[k]))
                    for k, s, p in tagged]
        growth = _growth(adjusted, d, rate=tf.name != "log") if d.trend else None
        carried = [(k, s, _carry(v, _seconds(at, t), growth)) for k, s, t, v in adjusted]
        if pooled:
            common = center([v for _, _, v in carried])
            level = {s: reseason(s, common) for s in seasons}
        else:
            level = {s: center([v for _, s2, v in carried if s2 == s]) for s in seasons}
        resid = [(k, s, reseason(s, v) - level[s]) for k, s, v in carried]
        if len(segments) == 1:
            break
        if ratio:
            offsets = [offsets[k] * center([reseason(s, v) / level[s] for j, s, v in carried if j == k])
                       for k in range(len(segments))]
        else:
            offsets = [offsets[k] + center([e for j, _, e in resid if j == k]) for k in range(len(segments))]
    errors = [e for _, _, e in resid]
    n, fitted = len(errors), (1 if pooled else len(level)) + len(segments) - 1
    if d.method == "robust":
        # The MAD resists outliers but is a noisy estimate (37 % efficient); the standard deviation of
        # the residuals within 3 MADs is as resistant and nearly as steady as a plain one.
        rough = _MAD_TO_SIGMA * statistics.median([abs(e) for e in errors])
        kept = [(s, e) for _, s, e in resid if abs(e) <= _TRIM * rough] if rough > 0 else []
        correction = _TRIMMED_VARIANCE
    else:
        rough = 0.0
        kept = [(s, e) for _, s, e in resid]
        correction = 1.0
    # Residuals around fitted centers understate the noise: one degree of freedom per season and segment.
    var = statistics.fmean([e * e for _, e in kept]) / correction * n / max(1, n - fitted) if kept else rough**2
    dof = n - fitted
    season = season_of(at, d.seasonality)
    own = [e for s, e in kept if s == season]
    if d.season_noise and len(level) > 1 and len(own) > 1:
        # The judged season's own noise (quiet weekends are not as noisy as weekdays, nor as calm), worth
        # its points against _SEASON_PRIOR points of the pooled noise.
        # (Around its own center a season's residuals lose a degree of freedom; around the pooled fit not.)
        own_dof = len(own) if pooled else len(own) - 1
        own_var = statistics.fmean([e * e for e in own]) / correction * len(own) / own_dof
        w = len(own) / (len(own) + _SEASON_PRIOR)
        var = w * own_var + (1 - w) * var
        # Degrees of freedom of the blend (Welch-Satterthwaite): more than the season's own, fewer than all.
        dof = max(1, round(1 / (w * w / max(1, own_dof) + (1 - w) ** 2 / max(1, dof))))
    scale = math.sqrt(var)
    # A new point also carries the error of its season's estimated value: a median of n_s points varies
    # pi/2 times more than their mean. Pooled, that is the shared level's error and the season offset's.
    spread = math.pi / 2 if d.method == "robust" else 1.0
    if pooled and shape is not None:
        center_var = spread / n + 1 / max(1, shape.points.get(season, 1))
    else:
        center_var = spread / max(1, n // max(1, len(level)))
    extrapolation = _extrapolation(tagged, at, d) if d.trend else 0.0
    scale *= math.sqrt(1 + center_var + (spread / len(segments[-1]) if len(segments) > 1 else 0)
                       + extrapolation)
    # A scale learnt from few points is itself uncertain: widen the band as a Student-t interval would,
    # so that "sensitivity" keeps its meaning (the same false-alarm rate) on a short history.
    scale *= _t_ratio(d.sensitivity, dof)
    if scale == 0:  # a constant series: any change is anomalous, but a zero band says nothing useful
        scale = 1e-9 * max(1.0, max(abs(v) for v in level.values()))
    return _Model({s: v * offsets[-1] if ratio else v + offsets[-1] for s, v in level.items()}, scale, tf)


def _ratio_scale(points: Sequence[Point], tf: Scale) -> bool:
    """Seasons and levels act as factors (a positive series not on the log scale), else as differences."""
    return tf.name != "log" and all(p.value > 0 for p in points)


@dataclass(frozen=True)
class _Shape:
    """The seasons' shape: each season's factor (``ratio``) or difference from the series' local level,
    and how many points taught it."""

    offset: dict[int, float]
    points: dict[int, int]
    ratio: bool


def _season_shape(segments: list[list[tuple[datetime, float]]], d: Detection, ratio: bool) -> _Shape | None:
    """Each season's offset from the local level, learnt from every usable point read (up to
    ``_LOOKBACK`` windows, where the per-season centers see only one): the level around a point is the
    mean of one full cycle centered on it (one point per season, within one level segment), and the
    offsets and levels are refined in turn (backfitting), so gaps left by flagged or calendar-event
    points do not bias them. None without seasonality or with too few complete cycles."""
    if not d.seasonality:
        return None
    pts = [(k, season_of(t, d.seasonality), t.timestamp(), y) for k, seg in enumerate(segments) for t, y in seg]
    steps = [b[2] - a[2] for a, b in itertools.pairwise(pts) if a[0] == b[0] and b[2] > a[2]]
    if not steps or (ratio and any(y <= 0 for *_, y in pts)):
        return None
    bucket = statistics.median(steps)
    per_cycle = max(1, round(_CYCLE_SECONDS[d.seasonality] / bucket))
    # One cycle of buckets around a point, half on either side (a quarter bucket of slack: DST).
    before, after = (per_cycle // 2 + 0.25) * bucket, (per_cycle - 1 - per_cycle // 2 + 0.25) * bucket
    least = per_cycle // 2 + 1
    center = statistics.median if d.method == "robust" else statistics.fmean
    offset: dict[int, float] = {}
    samples: dict[int, list[float]] = {}
    for _ in range(3):
        z = [y / offset.get(s, 1.0) if ratio else y - offset.get(s, 0.0) for _, s, _, y in pts]
        samples = {}
        lo = hi = 0
        total = 0.0
        # One pass with a sliding window (two pointers): a cycle's mean around every point in O(n).
        for k, s, t, y in pts:
            while hi < len(pts) and pts[hi][2] <= t + after:
                total += z[hi]
                hi += 1
            while pts[lo][2] < t - before:
                total -= z[lo]
                lo += 1
            count = hi - lo
            if count >= least and pts[lo][0] == k and pts[hi - 1][0] == k:
                local = total / count
                if not ratio or local > 0:
                    samples.setdefault(s, []).append(y / local if ratio else y - local)
        if len(samples) < 2:
            return None
        raw = {s: center(v) for s, v in samples.items()}
        mid = statistics.fmean(raw.values())
        if ratio and mid <= 0:
            return None
        offset = {s: v / mid if ratio else v - mid for s, v in raw.items()}
    return _Shape(offset, {s: len(v) for s, v in samples.items()}, ratio)


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


def _growth(points: list[tuple[int, int, datetime, float]], d: Detection, rate: bool = True) -> tuple[str, float]:
    """Theil-Sen over pairs of the same season and level segment: the median log-ratio per second
    (compound growth) when every value is positive, else the median slope."""
    groups: dict[tuple[int, int], list[tuple[datetime, float]]] = {}
    for k, s, t, v in points:
        groups.setdefault((k, s), []).append((t, v))
    kind = "rate" if rate and all(v > 0 for *_, v in points) else "slope"
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
