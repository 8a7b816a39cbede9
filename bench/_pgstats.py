"""Count the statements a contender sends, via pg_stat_statements (preloaded by the throwaway server)."""

from __future__ import annotations

import psycopg2

_COUNT = r"""
SELECT coalesce(sum(calls) FILTER (WHERE query ~* '\mlineitem\M'), 0),
       coalesce(sum(calls) FILTER (WHERE query !~* '\mlineitem\M'), 0)
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT ILIKE '%pg_stat_statements%'
"""


class StatementCounter:
    """``reset()`` before a run, ``read()`` after: (statements reading lineitem, other statements).

    "Other" is catalog look-ups, session settings and BEGIN/ROLLBACK: round trips, not scans. Disabled
    (``enabled`` False) when the server lacks the extension, e.g. a ``--pg-uri`` server without it.
    """

    def __init__(self, uri: str) -> None:
        self._conn = psycopg2.connect(uri)
        self._conn.autocommit = True
        self.enabled = True
        try:
            with self._conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                cur.execute("SELECT pg_stat_statements_reset()")
        except psycopg2.Error:
            self.enabled = False

    def reset(self) -> None:
        if self.enabled:
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_stat_statements_reset()")

    def read(self) -> tuple[int, int] | None:
        if not self.enabled:
            return None
        with self._conn.cursor() as cur:
            cur.execute(_COUNT)
            row = cur.fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def close(self) -> None:
        self._conn.close()
