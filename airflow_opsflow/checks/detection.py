"""How a metric check's series is judged: the detector's settings, declared with the check's spec and
read by :func:`airflow_opsflow.monitors.detect.judge`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["robust", "zscore"]
Direction = Literal["both", "spike", "drop"]
Seasonality = Literal["day_of_week", "hour_of_day", "hour_of_week"]
Transform = Literal["auto", "none", "log", "sqrt"]


@dataclass(frozen=True)
class Detection:
    """How a metric series is judged.

    :param method: ``zscore`` (mean/standard deviation; the default: points flagged anomalous are left
        out of training, which removes most outliers, and it is the steadier estimate on short
        histories) or ``robust`` (median/MAD: for histories holding outliers nobody flagged, e.g. an
        outage before monitoring started; its band is noisier on a short window).
    :param sensitivity: how many standard deviations from the expected value make an anomaly (default 3).
    :param training: comparable points in the training window: per season with ``seasonality`` (14 days
        of the week = 14 weeks of daily points), else in all (default 14: longer windows estimate the
        noise better, but lag behind yearly curves and level changes; measured in bench/anomaly.py).
    :param min_training: fewer usable points than this (per season with ``seasonality``) and there is no
        verdict, only "insufficient history" (default 7).
    :param seasonality: ``day_of_week``, ``hour_of_day``, ``hour_of_week`` or None.
    :param direction: ``both``, ``spike`` (only rises are anomalous) or ``drop``.
    :param min_change: an absolute change from the expected value below which nothing is anomalous.
    :param min_relative_change: the same as a fraction of the expected value (0.05 for 5 %).
    :param trend: fit a linear trend (default True).
    :param adapt_after: after this many consecutive anomalies in one direction, the series is taken to
        have moved to a new level (None: never adapt; every later point stays anomalous). A drop to near
        zero is an outage, never a level; a level the series leaves again for the one before is unlearnt.
    :param transform: ``auto`` (default: the log scale when every value is positive and the spread grows
        with the level, as it does for sums; the square root for counts whose variance grows with their
        mean; chosen from the data at each verdict), ``none``, ``sqrt`` or ``log``.
    :param season_noise: a noise scale per season (weekday, hour), pooled with the others in proportion
        to the evidence (default True); False: one scale for all.
    :param min_event_history: earlier occurrences of a calendar event needed to learn its effect; until
        then a point on it gets no verdict (default 2).
    """

    method: Method = "zscore"
    sensitivity: float = 3.0
    training: int = 14
    min_training: int = 7
    seasonality: Seasonality | None = None
    direction: Direction = "both"
    min_change: float = 0.0
    min_relative_change: float = 0.0
    trend: bool = True
    adapt_after: int | None = 3
    transform: Transform = "auto"
    season_noise: bool = True
    min_event_history: int = 2

    def __post_init__(self) -> None:
        if self.sensitivity <= 0:
            raise ValueError("sensitivity must be positive")
        if self.min_training < 2:
            raise ValueError("min_training must be at least 2")
        if self.training < self.min_training:
            raise ValueError(f"training ({self.training}) must be at least min_training ({self.min_training})")
        if self.min_change < 0 or self.min_relative_change < 0:
            raise ValueError("min_change and min_relative_change must be >= 0")
        if self.adapt_after is not None and self.adapt_after < 2:
            raise ValueError("adapt_after must be at least 2 (or None)")
        if self.min_event_history < 1:
            raise ValueError("min_event_history must be at least 1")

    @property
    def period(self) -> int:
        """Seasons in one cycle (1 without seasonality)."""
        return {"day_of_week": 7, "hour_of_day": 24, "hour_of_week": 168, None: 1}[self.seasonality]

    @property
    def window(self) -> int:
        """History points the training window spans."""
        return self.training * self.period
