"""Incremental reads with a cursor column, on PostgreSQL (state in the same database: pushdown)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg2
import pytest

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.state.store import StateStore
from airflow_opsflow.sync.deliver import DeliveryPolicy
from airflow_opsflow.sync.engine import SyncRun
from airflow_opsflow.sync.plan import source_query
from airflow_opsflow.sync.spec import SyncSpec
from tests.sync.test_engine import Store


@pytest.fixture
def uri(pg_uri: str) -> Iterator[str]:
    conn = psycopg2.connect(pg_uri)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cursor_items")
        cur.execute("CREATE TABLE cursor_items (id INT PRIMARY KEY, v TEXT, updated_at TIMESTAMP NOT NULL)")
        cur.execute("INSERT INTO cursor_items SELECT i, 'v' || i, TIMESTAMP '2024-01-01' + i * INTERVAL '1 minute' "
                    "FROM generate_series(1, 500) i")
        if _has_state(cur):
            cur.execute("DELETE FROM opsflow_sync_keys WHERE sync_id LIKE 'cursor%'")
            cur.execute("DELETE FROM opsflow_sync_meta WHERE sync_id LIKE 'cursor%'")
    conn.commit()
    conn.close()
    yield pg_uri


def _has_state(cur: Any) -> bool:
    cur.execute("SELECT to_regclass('opsflow_sync_meta') IS NOT NULL")
    return bool(cur.fetchone()[0])


def sql(uri: str, statement: str) -> None:
    conn = psycopg2.connect(uri)
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.commit()
    conn.close()


def run(uri: str, dest: Store, fetch_size: int = 10_000, **settings: Any) -> Any:
    settings = {"cursor": "updated_at", "cursor_lookback": timedelta(minutes=5), **settings}
    spec = SyncSpec.build("cursor-test", "id", {"id": "id", "v": "v"}, max_failed=None, **settings)
    return SyncRun(spec, SqlSource(lambda: psycopg2.connect(uri), "postgres", fetch_size=fetch_size),
                   source_query("postgres", None, "cursor_items", "t"),
                   lambda: StateStore(lambda: psycopg2.connect(uri), "postgres"), dest,
                   DeliveryPolicy(batch_size=50, concurrency=2, backoff=0.01), pushdown_ok=True,
                   source_table="cursor_items").run()


def test_cursor_reads_only_recent_rows_and_retries_rejected_keys(uri: str) -> None:
    dest = Store()
    first = run(uri, dest)
    assert first.full and first.counts["added"] == 500 and first.diff == "pushdown"
    quiet = run(uri, dest)
    assert not quiet.full and quiet.rows_read == 6  # the last 5 minutes of lookback, re-read and unchanged
    assert quiet.counts["unchanged"] == 6

    dest.reject = {"3"}
    sql(uri, "UPDATE cursor_items SET v = 'new', updated_at = TIMESTAMP '2024-02-01' WHERE id IN (3, 4)")
    changed = run(uri, dest)
    assert (changed.counts["changed"], changed.counts["failed"]) == (1, 1)
    sql(uri, "UPDATE cursor_items SET v = 'later', updated_at = TIMESTAMP '2024-03-01' WHERE id = 10")
    dest.reject = set()
    retried = run(uri, dest)  # key 3 is behind the watermark now, but rejected before: re-read by key
    assert retried.counts["changed"] == 2 and dest.rows["3"]["v"] == "new" and dest.rows["10"]["v"] == "later"


def test_mirror_with_cursor_finds_deletes_in_the_periodic_full_diff(uri: str) -> None:
    dest = Store()
    spec_args = {"mode": "mirror", "full_diff_every": timedelta(days=1)}
    run(uri, dest, **spec_args)
    sql(uri, "DELETE FROM cursor_items WHERE id = 7")
    incremental = run(uri, dest, **spec_args)
    assert not incremental.full and incremental.counts["deleted"] == 0 and "7" in dest.rows
    full = run(uri, dest, mode="mirror", full_diff_every=timedelta(0))
    assert full.full and full.counts["deleted"] == 1 and "7" not in dest.rows


def test_streaming_diff_reads_ahead_in_chunks(uri: str) -> None:
    dest = Store()
    first = run(uri, dest, fetch_size=64, diff="streaming", cursor=None, mode="mirror")
    assert first.diff == "streaming" and first.counts["added"] == 500 and len(dest.rows) == 500
    sql(uri, "UPDATE cursor_items SET v = 'x' WHERE id % 100 = 0")
    sql(uri, "DELETE FROM cursor_items WHERE id > 495")
    again = run(uri, dest, fetch_size=64, diff="streaming", cursor=None, mode="mirror")
    assert (again.counts["changed"], again.counts["deleted"], again.counts["unchanged"]) == (4, 5, 491)
    assert dest.rows["100"]["v"] == "x" and "496" not in dest.rows


def test_streamed_values_are_what_the_auto_cast_makes_of_the_driver_values(uri: str) -> None:
    # The data stream reads NUMERIC, DATE and timestamps as text (no Decimal/datetime per value): the
    # text must be exactly what `auto` would have made of psycopg2's own values.
    values = ("SELECT ts, ts AT TIME ZONE 'UTC' AS tstz, CASE WHEN isfinite(ts) THEN ts::date END AS d, n FROM (VALUES "
              "(TIMESTAMP '2024-01-02 03:04:05', 1.50::numeric), (TIMESTAMP '2024-01-02 03:04:05.1', 0.001), "
              "(TIMESTAMP '2024-12-31 23:59:59.999999', -7), (TIMESTAMP '1999-01-01 00:00:00.000001', 1e20), "
              "(TIMESTAMP '0044-03-15 12:00:00.5', NULL), (NULL, 2), (TIMESTAMP 'infinity', 3)) AS t(ts, n)")
    from airflow_opsflow.sync.mapping import CASTS

    with SqlSource(lambda: psycopg2.connect(uri), "postgres") as src:
        streamed = [row for _, rows in src.stream(values, "t") for row in rows]
        _, typed = src.query(values, "t")
    auto = CASTS["auto"]
    assert streamed == [tuple(auto(v) for v in row) for row in typed]
    assert streamed[0][:2] == ("2024-01-02T03:04:05", "2024-01-02T03:04:05+00:00")
    assert streamed[1][0] == "2024-01-02T03:04:05.100000"


def test_values_the_database_formats_are_exactly_what_auto_makes_of_the_driver_values(uri: str) -> None:
    # The data queries read numeric and date columns as their text and timestamps formatted by PostgreSQL
    # as isoformat() writes them (a driver-side conversion costs a Python call per value): the values must
    # be exactly what `auto` makes of the driver's Decimal, date and datetime (infinities included). BC
    # dates, which a datetime cannot hold (the driver fails on them), keep PostgreSQL's text.
    finite = ("(1, TIMESTAMP '2024-01-02 03:04:05'), (2, TIMESTAMP '2024-01-02 03:04:05.1'), "
              "(3, TIMESTAMP '2024-12-31 23:59:59.999999'), (4, TIMESTAMP '1999-01-01 00:00:00.000001'), "
              "(5, TIMESTAMP '0044-03-15 12:00:00.5'), (6, TIMESTAMP '0001-01-01 00:00:00'), "
              "(7, TIMESTAMP '9999-12-31 23:59:59.999999'), (8, NULL), (9, TIMESTAMP '2024-06-01 00:00:00.120'), "
              "(10, TIMESTAMP 'infinity'), (11, TIMESTAMP '-infinity')")  # the driver: datetime.max and .min
    odd = "(12, TIMESTAMP '0044-03-15 12:00:00 BC')"
    from airflow_opsflow.sync.mapping import CASTS, Mapping
    from airflow_opsflow.sync.plan import Plan

    def source(rows: str) -> str:
        # (An infinite date stays 'infinity', as the driver-side text caster always left it.)
        return (f"SELECT i, ts, ts AT TIME ZONE 'UTC' AS tstz, i * 1.50 AS n, "
                f"CASE WHEN isfinite(ts) THEN CAST(ts AS DATE) END AS d FROM (VALUES {rows}) AS t(i, ts)")

    columns = ["ts", "tstz", "n", "d"]
    with SqlSource(lambda: psycopg2.connect(uri), "postgres") as src:
        types = src.column_types(f"SELECT * FROM ({source(finite)}) AS s WHERE 1 = 0", "t")
        as_text, stamps, zoned = src.text_columns(types)
        assert (as_text, stamps, zoned) == ({"n", "d"}, {"ts", "tstz"}, {"tstz"})
        assert src.plain_columns(types) == {"i", *columns}

        def records(rows: str) -> list[dict[str, object]]:
            plan = Plan("postgres", source(rows), ("i",), tuple(columns), "x", as_text=as_text, timestamps=stamps,
                        zoned=zoned, plain=src.plain_columns(types))
            to_record = Mapping.identity(columns).compile(plan.selected, plan.plain)
            at = plan.selected.index("i")
            got = [(r[at], to_record(r)) for _, chunk in src.stream(plan.select_sql(), "t") for r in chunk]
            return [record for _, record in sorted(got, key=lambda pair: pair[0])]

        _, typed = src.query(source(finite), "t")
        auto = CASTS["auto"]
        expected = [dict(zip(columns, (auto(v) for v in row[1:]), strict=True)) for row in sorted(typed)]
        assert records(finite) == expected
        assert records(finite)[1] == {"ts": "2024-01-02T03:04:05.100000", "tstz": "2024-01-02T03:04:05.100000+00:00",
                                      "n": "3.00", "d": "2024-01-02"}
        assert records(finite)[9]["tstz"] == "9999-12-31T23:59:59.999999+00:00"
        assert [(r["ts"], r["tstz"]) for r in records(odd)] == [("0044-03-15 12:00:00 BC", "0044-03-15 12:00:00+00 BC")]


def test_the_source_session_raises_work_mem_for_the_diff_never_lowers_it(uri: str) -> None:
    # The pushed-down diff hashes the sync's stored keys: at PostgreSQL's default 4 MB they spill to disk.
    with SqlSource(lambda: psycopg2.connect(uri), "postgres") as src:
        assert src.query("SHOW work_mem", "t")[1] == [("32MB",)]

    def generous() -> object:
        conn = psycopg2.connect(uri)
        with conn.cursor() as cur:
            cur.execute("SET work_mem = '256MB'")
        conn.commit()
        return conn

    with SqlSource(generous, "postgres") as src:
        assert src.query("SHOW work_mem", "t")[1] == [("256MB",)]
    with SqlSource(lambda: psycopg2.connect(uri), "postgres", work_mem=None) as src:
        assert src.query("SHOW work_mem", "t")[1] == [("4MB",)]


def test_a_rejected_key_read_again_by_the_cursor_is_handled_and_counted_once(uri: str) -> None:
    # A cursor run re-reads rejected keys by key, then what changed since the watermark: a key in both
    # reads (here: now with a value the mapping cannot cast) is one invalid record, not two.
    dest = Store()
    sql(uri, "UPDATE cursor_items SET v = CAST(id AS TEXT)")
    mapping = {"id": "id", "n": {"column": "v", "type": "integer"}}

    def go() -> Any:
        spec = SyncSpec.build("cursor-once", "id", mapping, max_failed=None, cursor="updated_at",
                              cursor_lookback=timedelta(minutes=5))
        return SyncRun(spec, SqlSource(lambda: psycopg2.connect(uri), "postgres"),
                       source_query("postgres", None, "cursor_items", "t"),
                       lambda: StateStore(lambda: psycopg2.connect(uri), "postgres"), dest,
                       DeliveryPolicy(batch_size=50, concurrency=2, backoff=0.01), pushdown_ok=True,
                       source_table="cursor_items").run()

    assert go().counts["added"] == 500
    dest.reject = {"3"}
    sql(uri, "UPDATE cursor_items SET v = '33', updated_at = TIMESTAMP '2024-02-01' WHERE id = 3")
    assert go().counts["failed"] == 1
    dest.reject = set()
    sql(uri, "UPDATE cursor_items SET v = 'x', updated_at = TIMESTAMP '2024-02-02' WHERE id = 3")
    again = go()
    assert again.counts["invalid"] == 1 and again.invalid == [
        {"key": "3", "reason": "uncastable value", "detail": again.invalid[0]["detail"]}]
    assert "field 'n'" in again.invalid[0]["detail"] and again.counts["failed"] == 0
