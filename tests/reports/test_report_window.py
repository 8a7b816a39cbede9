"""The report periods of the example DAGs (``report_window``) at the instants where UTC and Berlin disagree:
just after Berlin's midnight (UTC still on the day before), both DST switches, Feb 29 and New Year's Eve.
Bounds are [since, until) in UTC text, as the sample tables store timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.helpers import EXAMPLES, load_module

report_window = load_module(EXAMPLES / "reports.py").report_window

CASES = [
    # 00:45 on Mon 7 Dec in Berlin, still Sun 6 Dec in UTC: the 30 days are up to yesterday in Berlin
    ("2026-12-06 23:45", "last_30_days", "2026-11-06 23:00:00", "2026-12-06 23:00:00", "2026-11-07 to 2026-12-06",
     "2026-11-07"),
    ("2026-12-06 23:45", "last_1_days", "2026-12-05 23:00:00", "2026-12-06 23:00:00", "2026-12-06", "2026-12-06"),
    ("2026-12-06 23:45", "previous_month", "2026-10-31 23:00:00", "2026-11-30 23:00:00", "November 2026",
     "2026-11-01"),
    # an hour earlier (23:45 in Berlin) it is still the 6th there: the period ends a day earlier
    ("2026-12-06 22:45", "last_30_days", "2026-11-05 23:00:00", "2026-12-05 23:00:00", "2026-11-06 to 2026-12-05",
     "2026-11-06"),
    # spring forward (Sun 29 Mar 2026, 01:00 UTC): just before and just after
    ("2026-03-29 00:59", "last_1_days", "2026-03-27 23:00:00", "2026-03-28 23:00:00", "2026-03-28", "2026-03-28"),
    ("2026-03-29 01:00", "last_1_days", "2026-03-27 23:00:00", "2026-03-28 23:00:00", "2026-03-28", "2026-03-28"),
    # ... and the 23-hour day itself, reported at 00:30 CEST on Monday (22:30 UTC on Sunday)
    ("2026-03-29 22:30", "last_1_days", "2026-03-28 23:00:00", "2026-03-29 22:00:00", "2026-03-29", "2026-03-29"),
    ("2026-03-29 22:30", "last_7_days", "2026-03-22 23:00:00", "2026-03-29 22:00:00", "2026-03-23 to 2026-03-29",
     "2026-03-23"),
    # fall back (Sun 25 Oct 2026, 01:00 UTC): just before and just after, then the 25-hour day
    ("2026-10-25 00:59", "last_1_days", "2026-10-23 22:00:00", "2026-10-24 22:00:00", "2026-10-24", "2026-10-24"),
    ("2026-10-25 01:00", "last_1_days", "2026-10-23 22:00:00", "2026-10-24 22:00:00", "2026-10-24", "2026-10-24"),
    ("2026-10-25 23:30", "last_1_days", "2026-10-24 22:00:00", "2026-10-25 23:00:00", "2026-10-25", "2026-10-25"),
    ("2026-10-31 23:30", "previous_month", "2026-09-30 22:00:00", "2026-10-31 23:00:00", "October 2026",
     "2026-10-01"),
    # Feb 29: the day itself at 00:30 on 1 March in Berlin, and February as the previous month
    ("2028-02-29 23:30", "last_1_days", "2028-02-28 23:00:00", "2028-02-29 23:00:00", "2028-02-29", "2028-02-29"),
    ("2028-02-29 23:30", "previous_month", "2028-01-31 23:00:00", "2028-02-29 23:00:00", "February 2028",
     "2028-02-01"),
    ("2028-03-30 12:00", "last_30_days", "2028-02-28 23:00:00", "2028-03-29 22:00:00", "2028-02-29 to 2028-03-29",
     "2028-02-29"),
    # New Year's Eve 23:30 UTC is 00:30 on 1 January in Berlin: December is over, the year too
    ("2026-12-31 23:30", "previous_month", "2026-11-30 23:00:00", "2026-12-31 23:00:00", "December 2026",
     "2026-12-01"),
    ("2026-12-31 23:30", "last_7_days", "2026-12-24 23:00:00", "2026-12-31 23:00:00", "2026-12-25 to 2026-12-31",
     "2026-12-25"),
    ("2026-12-31 22:30", "previous_month", "2026-10-31 23:00:00", "2026-11-30 23:00:00", "November 2026",
     "2026-11-01"),
]


@pytest.mark.parametrize(("at", "period", "since", "until", "label", "first_day"), CASES,
                         ids=[f"{c[0]}Z-{c[1]}" for c in CASES])
def test_periods_are_whole_berlin_days_before_the_run(at: str, period: str, since: str, until: str, label: str,
                                                      first_day: str) -> None:
    end = datetime.fromisoformat(at).replace(tzinfo=UTC)
    assert report_window(end, period) == (since, until, label, first_day)


def test_the_period_depends_on_the_run_not_its_hour() -> None:
    """A scheduled run at 07:00 Berlin and its retry at 23:59 report on the same days; a naive time is UTC."""
    morning = report_window(datetime(2026, 12, 7, 6, 0, tzinfo=UTC), "last_30_days")
    assert report_window(datetime(2026, 12, 7, 22, 59, tzinfo=UTC), "last_30_days") == morning
    assert report_window(datetime(2026, 12, 7, 6, 0), "last_30_days") == morning
    assert report_window(datetime(2026, 12, 7, 23, 0, tzinfo=UTC), "last_30_days") != morning  # Berlin's 8th
