"""The one table renderer (core/tables.py): layout, escaping, fences, width caps, values of any type."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

from airflow_opsflow.core.tables import cell_text, html_table, text_table

ZWSP = "\u200b"


def test_text_table_lines_up_columns_without_trailing_spaces() -> None:
    table = text_table(["provider", "amount"], [["aaaaaaaaaa", "1,234.50"], ["b", "2.00"]], align=["left", "right"])
    assert table.splitlines() == ["provider      amount",
                                  "aaaaaaaaaa  1,234.50",
                                  "b               2.00"]
    assert text_table(["id", "n"], []) == "id  n"  # no rows: the header alone
    assert text_table(["a", "b"], [["x", "y"]], rule=True).splitlines()[1].strip("- ") == ""


def test_text_is_never_parsed_as_numbers() -> None:
    assert text_table(["key", "amount"], [["007", "1,234.50"], ["1e3", "NaN"]]).splitlines()[1:] == [
        "007  1,234.50", "1e3  NaN"]


def test_none_decimal_datetime_and_json_cells() -> None:
    row = [None, Decimal("1.50"), datetime(2026, 11, 1, 9, 30, tzinfo=UTC), date(2026, 11, 1), {"a": [1, "é"]}, True]
    assert [cell_text(v) for v in row] == ["", "1.50", "2026-11-01 09:30:00+00:00", "2026-11-01", '{"a": [1, "é"]}',
                                           "True"]
    assert text_table(["a", "b"], [[None, Decimal("0.10")]], null="NULL").splitlines()[1] == "NULL  0.10"
    assert "<td style=\"text-align:left\">NULL</td>" in html_table(["a"], [[None]], null="NULL")


def test_cells_are_one_line_and_capped() -> None:
    table = text_table(["note", "n"], [["line 1\nline 2\tend", "x" * 50]], max_width=12)
    assert table.splitlines() == ["note          n", "line 1 line…  xxxxxxxxxxx…"]
    assert cell_text("x" * 50, 10, ellipsis="...") == "xxxxxxx..."
    assert len(cell_text("y" * 50, 40)) == 40


def test_a_cell_cannot_close_the_code_block_around_the_table() -> None:
    table = text_table(["id", "note"], [[1, "a ``` b"], [2, "````"], [3, "ends in ``"]], fence="```")
    assert "```" not in f"```{table}```"[3:-3]
    assert "```" not in table.replace(ZWSP, "X") and table.replace(ZWSP, "").count("`") == 9
    assert f"```{table}```".replace(ZWSP, "|").endswith("``|```")  # the last cell does not run into the fence
    jira = text_table(["id", "note"], [[1, "oops {noformat} and {NOFORMAT}"]], fence="{noformat}")
    assert "{noformat}" not in jira.lower() and jira.replace(ZWSP, "").endswith("oops {noformat} and {NOFORMAT}")
    # Broken after layout: the zero-width space does not shift the columns.
    plain = text_table(["id", "note", "n"], [[1, "x```y", "2"]])
    assert text_table(["id", "note", "n"], [[1, "x```y", "2"]], fence="```").replace(ZWSP, "") == plain


def test_html_table_escapes_every_cell_and_header_and_styles_inline() -> None:
    html = html_table(["<b>", "n"], [['<script>alert("x")</script>', "1,000"], ["a & b", None]],
                      align=["left", "right"], table_style="border-collapse:collapse", th_style="padding:2px",
                      td_style="padding:4px;")
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<th style=\"padding:2px;text-align:left\">&lt;b&gt;</th>" in html
    assert "<td style=\"padding:4px;text-align:right\">1,000</td>" in html
    assert "a &amp; b</td>" in html and html.startswith('<table style="border-collapse:collapse">')
    assert html.count("<tr>") == 3 and not re.search(r">\s+[^<\s]|[^>\s]\s+</t[dh]>", html)  # trimmed cells


def test_html_caps_cells() -> None:
    html = html_table(["a"], [["z" * 100]], max_width=20)
    assert "z" * 19 + "…</td>" in html and "z" * 20 not in html
