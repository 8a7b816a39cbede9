"""Field mapping: which source column feeds which destination field, cast to which JSON-friendly type.

A mapping is written ``{"destination_field": "source_column"}`` or, to cast,
``{"amount": {"column": "total", "type": "decimal"}}`` (or ``Field("total", "decimal")``). Without a
mapping every source column is sent under its own name with the ``auto`` cast. Only mapped columns are
read from the source and hashed, so a change in an unmapped column sends nothing.

Casts (``None`` always stays ``None``/JSON null):

* ``auto``: dates/datetimes to ISO-8601, decimals to strings (no float rounding), bytes to hex,
  everything else as the driver returned it;
* ``string``, ``integer``, ``float``, ``decimal`` (a string, exact), ``number`` (a float from a decimal),
  ``boolean`` (also ``"yes"/"no"/"t"/"f"/1/0``), ``date`` (ISO date), ``datetime`` (ISO-8601, naive
  values taken as UTC), ``timestamp_ms`` (epoch milliseconds, as HubSpot's date properties want),
  ``json`` (parse a JSON text column).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from airflow_opsflow.core.numbers import to_decimal
from airflow_opsflow.core.truth import truth

Caster = Callable[[Any], Any]


class MappingError(ValueError):
    """A mapping refers to a column the source lacks, or asks for an unknown cast."""


def _auto(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (date, time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, (list, dict)):
        return v
    return str(v)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _date(v: Any) -> str:
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return date.fromisoformat(str(v)[:10]).isoformat()


def _aware(v: Any) -> datetime:
    if isinstance(v, datetime):
        value = v
    elif isinstance(v, date):
        value = datetime.combine(v, time())
    else:
        value = datetime.fromisoformat(str(v))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _decimal(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(to_decimal(v))


def _integer(v: Any) -> int:
    if isinstance(v, (int, bool)):
        return int(v)
    value = to_decimal(v)
    if value != value.to_integral_value():
        raise ValueError(f"{v!r} is not a whole number")
    return int(value)


CASTS: dict[str, Caster] = {
    "auto": _auto,
    "string": lambda v: v if isinstance(v, str) else str(_auto(v)),
    "integer": _integer,
    "float": float,
    "number": float,
    "decimal": _decimal,
    "boolean": truth,  # never given None (None stays None)
    "date": _date,
    "datetime": lambda v: _aware(v).isoformat(),
    "timestamp_ms": lambda v: int(_aware(v).timestamp() * 1000),
    "json": lambda v: json.loads(v) if isinstance(v, (str, bytes)) else v,
}


@dataclass(frozen=True)
class Field:
    """One destination field: the source ``column`` it comes from and the ``type`` it is cast to.

    :param column: the source column (as the query names it).
    :param type: a cast name (see the module docstring); ``auto`` by default.
    """

    column: str
    type: str = "auto"

    def __post_init__(self) -> None:
        if self.type not in CASTS:
            raise MappingError(f"unknown type {self.type!r} for column {self.column!r}: use one of {', '.join(CASTS)}")


MappingSpec = MappingABC[str, "str | Field | MappingABC[str, str]"]


@dataclass(frozen=True)
class Mapping:
    """An ordered, validated mapping ``destination field -> Field``."""

    fields: tuple[tuple[str, Field], ...]

    @classmethod
    def parse(cls, spec: MappingSpec | None, columns: Sequence[str] | None = None) -> Mapping | None:
        """Validate a user mapping; ``None`` means "every source column" (resolved by :meth:`identity`)."""
        if spec is None:
            return None
        if not isinstance(spec, MappingABC) or not spec:
            raise MappingError("mapping must be a non-empty dict {destination_field: source_column}")
        out: list[tuple[str, Field]] = []
        for dest, src in spec.items():
            if not isinstance(dest, str) or not dest:
                raise MappingError(f"mapping key {dest!r} must be a destination field name")
            if isinstance(src, str):
                out.append((dest, Field(src)))
            elif isinstance(src, Field):
                out.append((dest, src))
            elif isinstance(src, MappingABC) and isinstance(src.get("column"), str):
                unknown = set(src) - {"column", "type"}
                if unknown:
                    raise MappingError(f"mapping of {dest!r}: unknown keys {sorted(unknown)} (use column, type)")
                try:
                    out.append((dest, Field(src["column"], str(src.get("type", "auto")))))
                except MappingError as e:
                    raise MappingError(f"mapping of {dest!r}: {e}") from None
            else:
                raise MappingError(f"mapping of {dest!r} must be a column name, Field(...) or "
                                   f"{{'column': ..., 'type': ...}}, not {src!r}")
        mapping = cls(tuple(out))
        if columns is not None:
            mapping.check_columns(columns)
        return mapping

    @classmethod
    def identity(cls, columns: Sequence[str]) -> Mapping:
        return cls(tuple((c, Field(c)) for c in columns))

    @property
    def source_columns(self) -> list[str]:
        """The distinct source columns the mapping reads, in mapping order."""
        return list(dict.fromkeys(f.column for _, f in self.fields))

    def check_columns(self, columns: Sequence[str]) -> None:
        missing = [f"{dest} <- {f.column}" for dest, f in self.fields if f.column not in columns]
        if missing:
            raise MappingError(f"mapped columns missing from the source: {', '.join(missing)} "
                               f"(the source has: {', '.join(columns)})")

    def compile(self, columns: Sequence[str],
                plain: Collection[str] = ()) -> Callable[[Sequence[Any]], dict[str, Any]]:
        """A function turning a source row (values in ``columns`` order) into the destination record.

        Raises ``ValueError`` naming the field when a value cannot be cast (the record is then invalid).
        The function is generated once per run (a sync calls it for every changed row): plain values
        and datetimes pass through ``auto`` without a call, every other cast is one call. ``plain``: columns
        whose values are known to be JSON-ready (str, int, float, bool or None: from the source's column
        types), read as they are.
        """
        # Hand-generated code on the sync's hot path (every changed row): bench/sync.py, docs/benchmarks.md.
        index = {c: i for i, c in enumerate(columns)}
        env: dict[str, Any] = {"_PLAIN": _PLAIN, "_auto": _auto, "_datetime": datetime}
        reads, items = [], []
        for j, (dest, f) in enumerate(self.fields):
            if f.type == "auto" and f.column in plain:
                items.append(f"{dest!r}: row[{index[f.column]}]")
                continue
            reads.append(f"    v{j} = row[{index[f.column]}]")
            if f.type == "auto":
                items.append(f"{dest!r}: v{j} if v{j}.__class__ in _PLAIN else v{j}.isoformat() "
                             f"if v{j}.__class__ is _datetime else _auto(v{j})")
            else:
                env[f"c{j}"] = CASTS[f.type]
                items.append(f"{dest!r}: None if v{j} is None else c{j}(v{j})")
        source = "def fast(row):\n" + "".join(r + "\n" for r in reads) + "    return {" + ", ".join(items) + "}\n"
        exec(compile(source, "<opsflow mapping>", "exec"), env)  # generated from repr()'d names and ints only
        fast: Callable[[Sequence[Any]], dict[str, Any]] = env["fast"]
        names = [dest for dest, _ in self.fields]
        picks = [index[f.column] for _, f in self.fields]
        casts = [CASTS[f.type] for _, f in self.fields]

        def to_record(row: Sequence[Any]) -> dict[str, Any]:
            try:
                return fast(row)
            except (ValueError, TypeError, ArithmeticError):
                for n, c, i in zip(names, casts, picks, strict=True):
                    try:
                        None if row[i] is None else c(row[i])
                    except (ValueError, TypeError, ArithmeticError) as e:
                        raise ValueError(f"field {n!r}: {e}") from None
                raise

        return to_record

    def describe(self) -> list[list[str]]:
        """A stable, JSON-able form (part of the sync's configuration digest)."""
        return [[dest, f.column, f.type] for dest, f in self.fields]
