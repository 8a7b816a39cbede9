"""How a metric check's series is judged: the detector's settings, declared with the check's spec and
read by :func:`airflow_opsflow.monitors.detect.judge`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["robust", "zscore"]
Direction = Literal["both", "spike", "drop"]
Seasonality = Literal["day_of_week", "hour_of_day", "hour_of_week"]


@dataclass(frozen=True)
class Detection:
    """How a metric series is judged.

    :param method: ``zscore`` (mean/standard deviation; the default: points flagged anomalous are left
        out of training, which removes most outliers, and it is the steadier estimate on short
        histories) or ``robust`` (median/MAD: for histories holding outliers nobody flagged, e.g. an
        outage before monitoring started; its band is noisier on a short window).
    :param sensitivity: how many standard deviations from the expected value make an anomaly (default 3).
    :param training: comparable points in the training window: per season with ``seasonality`` (14 days
        of the week = 14 weeks of daily points), else in all (default 14).
    :param min_training: fewer usable points than this (per season with ``seasonality``) and there is no
        verdict, only "insufficient history" (default 7).
    :param seasonality: ``day_of_week``, ``hour_of_day``, ``hour_of_week`` or None.
    :param direction: ``both``, ``spike`` (only rises are anomalous) or ``drop``.
    :param min_change: an absolute change from the expected value below which nothing is anomalous.
    :param min_relative_change: the same as a fraction of the expected value (0.05 for 5 %).
    :param trend: fit a linear trend (default True).
    :param adapt_after: after this many consecutive anomalies in one direction, the series is taken to
        have moved to a new level (None: never adapt; every later point stays anomalous).
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

    @property
    def period(self) -> int:
        """Seasons in one cycle (1 without seasonality)."""
        return {"day_of_week": 7, "hour_of_day": 24, "hour_of_week": 168, None: 1}[self.seasonality]

    @property
    def window(self) -> int:
        """History points the training window spans."""
        return self.training * self.period
