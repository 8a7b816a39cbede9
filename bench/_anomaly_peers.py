"""The peers bench/anomaly.py measures opsflow against, each as its own project implements it.

* **elementary** (dbt-data-reliability, ``get_anomaly_scores_query``): with ``seasonality: day_of_week`` the
  14-day training period is stretched x7 to 98 days and the training set is the metrics of the same
  weekday in it; ``training_avg``/``training_stddev`` are a window ``avg``/``stddev`` (sample) over
  ``rows between unbounded preceding and current row``, so the judged value is in its own training set,
  and so are earlier anomalies (only a user's ``anomaly_exclude_metrics`` expression leaves any out).
  ``anomaly_score = (value - avg) / stddev`` (0 when stddev is 0, none for a training set of one); the
  bucket is anomalous when ``|score| > anomaly_sensitivity`` (default 3) with at least
  ``min_training_set_size`` (7) points.
* **Soda** (soda-core, ``anomaly_detection_v2`` ``ProphetDetector``): per scan, the last up-to-1000
  measurements (``window_length``), none left out (only points a user marked in Soda Cloud are skipped),
  more than ``min_number_of_data_points`` (4) needed; ``Prophet(**ProphetDefaultHyperparameters)`` =
  ``seasonality_mode="multiplicative"``, ``seasonality_prior_scale=0.01``, ``changepoint_prior_scale=0.001``,
  ``interval_width=0.999`` (others Prophet's defaults: yearly/weekly "auto", 25 changepoints over 80 %),
  no holidays unless ``holidays_country_code`` is set (it is not by default), fitted on every point but
  the newest, which is predicted; the band is widened to at least +/-0.1 % of ``yhat``
  (``min_confidence_interval_ratio``), floored/ceiled when every value is an integer, and a value outside
  it is an anomaly (warn or fail).
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from datetime import date

ELEMENTARY_SENSITIVITY = 3.0
ELEMENTARY_TRAINING_DAYS = 14 * 7  # training_period 14 days, x7 with day_of_week seasonality
ELEMENTARY_MIN_TRAINING = 7
SODA_WINDOW = 1000
SODA_MIN_POINTS = 4
SODA_MIN_CI_RATIO = 0.001
SODA_HYPERPARAMETERS = {
    "seasonality_mode": "multiplicative",
    "seasonality_prior_scale": 0.01,
    "changepoint_prior_scale": 0.001,
    "interval_width": 0.999,
    "uncertainty_samples": 1000,
}


def elementary(values: list[float], i: int) -> str:
    """elementary's verdict on day ``i``: anomalous, ok or insufficient."""
    same = [values[j] for j in range(i, i - ELEMENTARY_TRAINING_DAYS, -7) if j >= 0]  # includes day i
    if len(same) < max(2, ELEMENTARY_MIN_TRAINING):
        return "insufficient"
    avg = statistics.fmean(same)
    sd = statistics.stdev(same)
    score = 0.0 if sd == 0 else (values[i] - avg) / sd
    return "anomalous" if abs(score) > ELEMENTARY_SENSITIVITY else "ok"


def quiet_prophet() -> None:
    """Silence cmdstanpy and prophet (each fit logs two lines)."""
    from cmdstanpy.utils import get_logger

    get_logger()  # cmdstanpy sets its logger to DEBUG when it first builds it: build it first, then quiet it
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
        logging.getLogger(name).propagate = False


def soda_prophet(days: list[date], values: list[float], i: int) -> str:
    """Soda's verdict on day ``i`` from the measurements up to it."""
    import numpy as np
    import pandas as pd
    from prophet import Prophet

    lo = max(0, i + 1 - SODA_WINDOW)
    window = values[lo:i + 1]
    if len(window) <= SODA_MIN_POINTS:
        return "insufficient"
    df = pd.DataFrame({"ds": pd.to_datetime(days[lo:i + 1]), "y": window})
    model = Prophet(**SODA_HYPERPARAMETERS)  # type: ignore[arg-type]
    np.random.seed(0)
    random.seed(0)
    model.fit(df.iloc[:-1])
    # Soda predicts every row and keeps the last (n_points=1); predicting only it gives the same band.
    row = model.predict(df.iloc[-1:]).iloc[-1]
    yhat, lower, upper = float(row["yhat"]), float(row["yhat_lower"]), float(row["yhat_upper"])
    lower = min(lower, yhat * (1 - SODA_MIN_CI_RATIO))
    upper = max(upper, yhat * (1 + SODA_MIN_CI_RATIO))
    if all(float(v).is_integer() for v in window):
        lower, upper = math.floor(lower), math.ceil(upper)
    value = values[i]
    return "anomalous" if value > upper or value < lower else "ok"
