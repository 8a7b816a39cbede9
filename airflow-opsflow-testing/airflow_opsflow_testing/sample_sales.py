"""Sample sales data: demo requests from the website, some not answered yet (scenario 9).

Deterministic for a given ``now``: of 6 requests, 2 were contacted; 4 wait, requested 20 min, 50 min, 2.5 h
and 5 h before ``now`` (the last two past a 2 h answer SLA).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_opsflow_testing.sample_data import _placeholder

_REQUESTS = (  # (id, company, email, minutes before now, contacted minutes before now)
    (1, "Acme Logistics", "ops@acme.example", 26 * 60, 25 * 60),
    (2, "Globex Payments", "cfo@globex.example", 8 * 60, 7 * 60 + 30),
    (3, "Initech", "it@initech.example", 300, None),
    (4, "Umbrella Retail", "buy@umbrella.example", 150, None),
    (5, "Hooli Freight", "team@hooli.example", 50, None),
    (6, "Stark Parcels", "pepper@stark.example", 20, None),
)


def seed_demo_requests(conn: Any, now: datetime | None = None) -> int:
    """(Re)create ``demo_requests`` (naive UTC timestamps as text). Returns the number of rows."""
    now = (now or datetime.utcnow()).replace(microsecond=0, tzinfo=None)
    ts = lambda minutes: None if minutes is None else (now - timedelta(minutes=minutes)).isoformat(sep=" ")  # noqa: E731
    rows = [(i, company, email, ts(asked), ts(done)) for i, company, email, asked, done in _REQUESTS]
    mark = _placeholder(conn)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS demo_requests")
    cur.execute("CREATE TABLE demo_requests (id INTEGER PRIMARY KEY, company VARCHAR(100), email VARCHAR(200), "
                "requested_at TIMESTAMP, contacted_at TIMESTAMP)")
    cur.executemany(f"INSERT INTO demo_requests VALUES ({mark}, {mark}, {mark}, {mark}, {mark})", rows)  # noqa: S608
    conn.commit()
    cur.close()
    return len(rows)


def contact(conn: Any, request_ids: list[int], at: datetime | None = None) -> None:
    """Sales answered these requests."""
    at = (at or datetime.utcnow()).replace(microsecond=0, tzinfo=None)
    mark = _placeholder(conn)
    cur = conn.cursor()
    cur.executemany(f"UPDATE demo_requests SET contacted_at = {mark} WHERE id = {mark}",  # noqa: S608
                    [(at.isoformat(sep=" "), i) for i in request_ids])
    conn.commit()
    cur.close()
