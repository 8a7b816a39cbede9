"""The report engine on its own: steps, their errors (naming the step), rendering for people."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_opsflow.reports.build import ReportBuildError, build
from airflow_opsflow.reports.render import cell, html_table, text_table
from airflow_opsflow.reports.spec import parse

SALES = pd.DataFrame({"month": ["2026-09", "2026-09", "2026-10", "2026-10"], "country": ["DE", "FR", "DE", "FR"],
                      "revenue": [100.0, 50.0, 120.5, 70.0]})
COSTS = pd.DataFrame({"month": ["2026-09", "2026-10"], "costs": [90.0, 100.0]})


def test_steps_read_top_to_bottom() -> None:
    spec = parse({"sales": "q1", "costs": "q2"}, [
        {"op": "group", "by": ["month"], "agg": {"revenue": "sum", "countries": ["country", "nunique"]},
         "into": "monthly"},
        {"op": "merge", "right": "costs", "on": ["month"]},
        {"op": "compute", "columns": {"margin": "revenue - costs"}},
        {"op": "select", "columns": ["month", "revenue", "costs", "margin"]},
        {"op": "total"},
    ])
    frames = build(spec, {"sales": SALES, "costs": COSTS})
    out = frames[spec.result_frame]
    assert spec.result_frame == "monthly"
    assert out.to_dict("records") == [
        {"month": "2026-09", "revenue": 150.0, "costs": 90.0, "margin": 60.0},
        {"month": "2026-10", "revenue": 190.5, "costs": 100.0, "margin": 90.5},
        {"month": "Total", "revenue": 340.5, "costs": 190.0, "margin": 150.5}]


def test_pivot_filter_sort_head_rename_concat() -> None:
    spec = parse({"sales": "q"}, [
        {"op": "filter", "query": "revenue > 60"},
        {"op": "pivot", "index": ["month"], "columns": "country", "values": "revenue", "fill_value": 0},
        {"op": "sort", "by": ["month"], "ascending": False},
        {"op": "rename", "columns": {"DE": "Germany"}},
        {"op": "head", "n": 1},
        {"op": "concat", "frames": ["sales", "sales"], "into": "twice"},
    ], output="sales")
    frames = build(spec, {"sales": SALES})
    assert frames["sales"].to_dict("records") == [{"month": "2026-10", "Germany": 120.5, "FR": 70.0}]
    assert len(frames["twice"]) == 2


def test_a_failing_step_names_itself_and_the_columns() -> None:
    spec = parse({"sales": "q"}, [{"op": "sort", "by": ["month"]}, {"op": "group", "by": ["region"],
                                                                   "agg": {"revenue": "sum"}}])
    with pytest.raises(ReportBuildError, match=r"step #2 \(group\) on frame 'sales' failed: no column 'region' "
                                               r"\(columns: month, country, revenue\)"):
        build(spec, {"sales": SALES})
    bad = parse({"sales": "q"}, [{"op": "compute", "columns": {"x": "revenue +* 2"}}])
    with pytest.raises(ReportBuildError, match=r"step #1 \(compute\) on frame 'sales' failed"):
        build(bad, {"sales": SALES})


def test_rendering_for_people() -> None:
    df = pd.DataFrame({"provider": ["a" * 10, "b"], "amount": [1234567.891, 2.0], "n": [3, 40000]})
    table, shown = text_table(df, 10, 3000)
    assert table.splitlines() == ["provider          amount       n",
                                  "aaaaaaaaaa  1,234,567.89       3",
                                  "b                   2.00  40,000"] and shown == 2
    assert text_table(df, 10, 60)[1] == 1  # fewer rows when it does not fit
    html = html_table(df, 1)
    assert html.count("<tr>") == 2 and "aaaaaaaaaa" in html and "40,000" not in html
    assert (cell(None), cell(float("nan")), cell(pd.Timestamp("2026-11-01"))) == ("", "", "2026-11-01")
