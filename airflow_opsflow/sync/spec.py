"""A sync's settings, validated once (at DAG parse time when the operator is built)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from airflow_opsflow.sync.mapping import Mapping, MappingError, MappingSpec

Mode = Literal["upsert", "insert", "update", "mirror"]
MODES = ("upsert", "insert", "update", "mirror")
DiffWay = Literal["auto", "pushdown", "streaming"]


class SyncSpecError(ValueError):
    """A setting is wrong; the message names it."""


@dataclass(frozen=True)
class SyncSpec:
    """How one sync behaves.

    :param sync_id: names the sync's state (default in the operator: ``<dag_id>.<task_id>``).
    :param primary_key: the column(s) identifying a record.
    :param mode: ``upsert`` (new + changed), ``insert`` (new only), ``update`` (changed, and new keys as
        updates of records the destination may already have), ``mirror`` (upsert + delete keys that left).
    :param mapping: destination field -> source column (see :mod:`airflow_opsflow.sync.mapping`).
    :param cursor: an ``updated_at``-style column: later runs read only rows at or after the last run's
        maximum (minus ``cursor_lookback``); deletes are then found by the periodic full diff.
    :param cursor_lookback: re-read this far behind the watermark (late commits); a timedelta, or a number
        for numeric cursors.
    :param full_diff_every: with a cursor, read everything again when the last full diff is older.
    :param full_resync: send every row, whatever the state says.
    :param dry_run: report what would be sent; send nothing, leave state untouched.
    :param max_delete_share: mirror refuses to delete more than this share of the synced keys...
    :param max_delete_rows: ... unless they are at most this many (default 1: a single delete always goes,
        so a small sync can lose a key; beyond it the share applies). 0: the share alone.
    :param allow_empty_source: let mirror delete everything when the source returns no rows.
    :param max_change_share: refuse a run that would change (and delete) more than this share of the synced
        records; counted before anything is sent (None: no limit).
    :param approved_plan_hash: the ``plan_hash`` of a dry run a person approved: the run sends only if the
        source still yields exactly that plan, and then the guards above do not apply to it.
    :param max_failed: fail the task when more records than this are rejected (None: no count limit).
    :param max_failed_share: ... or when more than this share of the records sent is rejected.
    :param shard: ``(index, count)``: this task syncs only the keys whose hash falls in its shard.
    :param diff: ``pushdown`` (in the source database; needs the state there), ``streaming``, or ``auto``.
    :param preview_size: dry runs show field-level diffs for this many records.
    """

    sync_id: str
    primary_key: tuple[str, ...]
    mode: Mode = "upsert"
    mapping: Mapping | None = None
    cursor: str | None = None
    cursor_lookback: timedelta | int | float | None = None
    full_diff_every: timedelta | None = timedelta(days=1)
    full_resync: bool = False
    dry_run: bool = False
    max_delete_share: float = 0.2
    max_delete_rows: int = 1
    allow_empty_source: bool = False
    max_change_share: float | None = None
    approved_plan_hash: str | None = None
    max_failed: int | None = 0
    max_failed_share: float | None = None
    shard: tuple[int, int] | None = None
    diff: DiffWay = "auto"
    preview_size: int = 10

    @classmethod
    def build(cls, sync_id: str, primary_key: str | Sequence[str], mapping: MappingSpec | Mapping | None = None,
              **kwargs: Any) -> SyncSpec:
        """Validate user input; every error names the setting."""
        keys = (primary_key,) if isinstance(primary_key, str) else tuple(primary_key or ())
        if not keys or not all(isinstance(k, str) and k.strip() for k in keys):
            raise SyncSpecError(f"primary_key must name at least one column, got {primary_key!r}")
        if len(set(keys)) != len(keys):
            raise SyncSpecError(f"primary_key repeats a column: {list(keys)}")
        try:
            parsed = mapping if isinstance(mapping, Mapping) or mapping is None else Mapping.parse(mapping)
        except MappingError as e:
            raise SyncSpecError(f"mapping: {e}") from None
        spec = cls(sync_id=sync_id, primary_key=keys, mapping=parsed, **kwargs)
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.mode not in MODES:
            raise SyncSpecError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.diff not in ("auto", "pushdown", "streaming"):
            raise SyncSpecError(f"diff must be auto, pushdown or streaming, got {self.diff!r}")
        if not 0 <= self.max_delete_share <= 1:
            raise SyncSpecError(f"max_delete_share must be between 0 and 1, got {self.max_delete_share!r}")
        if isinstance(self.max_delete_rows, bool) or not isinstance(self.max_delete_rows, int) \
                or self.max_delete_rows < 0:
            raise SyncSpecError(f"max_delete_rows must be an integer >= 0, got {self.max_delete_rows!r}")
        if self.max_change_share is not None and (isinstance(self.max_change_share, bool) or not isinstance(
                self.max_change_share, (int, float)) or not 0 <= self.max_change_share <= 1):
            raise SyncSpecError(f"max_change_share must be between 0 and 1 or None, got {self.max_change_share!r}")
        if self.approved_plan_hash is not None and (not isinstance(self.approved_plan_hash, str)
                                                    or not self.approved_plan_hash.strip()):
            raise SyncSpecError(f"approved_plan_hash must be a plan_hash, got {self.approved_plan_hash!r}")
        if self.approved_plan_hash is not None and self.dry_run:
            raise SyncSpecError("approved_plan_hash is for the real run that applies an approved plan, not a dry run")
        if self.max_failed is not None and self.max_failed < 0:
            raise SyncSpecError(f"max_failed must be >= 0 or None, got {self.max_failed!r}")
        if self.max_failed_share is not None and not 0 <= self.max_failed_share <= 1:
            raise SyncSpecError(f"max_failed_share must be between 0 and 1, got {self.max_failed_share!r}")
        if self.shard is not None:
            ok = (isinstance(self.shard, (tuple, list)) and len(self.shard) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) for v in self.shard)
                  and self.shard[1] >= 1 and 0 <= self.shard[0] < self.shard[1])
            if not ok:
                raise SyncSpecError(f"shard must be (index, count) with 0 <= index < count, got {self.shard!r}")
        if self.cursor_lookback is not None and not isinstance(self.cursor_lookback, (timedelta, int, float)):
            raise SyncSpecError(f"cursor_lookback must be a timedelta or a number, got {self.cursor_lookback!r}")
        if self.cursor is not None and (not isinstance(self.cursor, str) or not self.cursor.strip()):
            raise SyncSpecError(f"cursor must be a column name, got {self.cursor!r}")
        if self.preview_size < 0:
            raise SyncSpecError("preview_size must be >= 0")
        if self.mode == "mirror" and self.cursor and self.full_diff_every is None:
            raise SyncSpecError("mirror with a cursor needs full_diff_every: deletes are only seen by a full diff")

    @property
    def state_id(self) -> str:
        """The state key: one per shard, so shards never see each other's keys."""
        if self.shard is None:
            return self.sync_id
        return f"{self.sync_id}#shard{self.shard[0]}of{self.shard[1]}"
