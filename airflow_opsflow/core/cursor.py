"""A DB-API cursor that speaks one placeholder style (``?``) on every driver: the state store and the
table destination write through it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


class Cursor:
    """A DB-API cursor that takes ``?`` placeholders whatever the driver's paramstyle."""

    def __init__(self, cur: Any, paramstyle: str) -> None:
        self._cur = cur
        self._paramstyle = paramstyle

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._paramstyle in ("format", "pyformat"):
            sql = sql.replace("%", "%%").replace("?", "%s")
        elif self._paramstyle == "numeric":
            parts = sql.split("?")
            sql = parts[0] + "".join(f":{i}{p}" for i, p in enumerate(parts[1:], start=1))
        self._cur.execute(sql, tuple(params)) if params else self._cur.execute(sql)

    @property
    def raw(self) -> Any:
        """The driver's cursor (for driver-specific fast paths such as COPY)."""
        return self._cur

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


def paramstyle_of(conn: Any) -> str:
    """The DB-API paramstyle of the driver that made ``conn``."""
    module = sys.modules.get(type(conn).__module__.split(".")[0])
    return str(getattr(module, "paramstyle", "qmark"))
