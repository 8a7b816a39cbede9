"""The diff: which source rows the destination does not have yet, and which keys left the source.

Two ways, same answers:

* **pushdown** (the state store lives in the source database): one query joins the source with the
  stored hashes and returns only new and changed rows; a second (anti-join) lists keys that left the
  source. Nothing but the changes crosses the wire.
* **streaming** (state elsewhere): the source is streamed in chunks; each chunk's keys are looked up in
  the state store with one query. Keys that left the source are found by walking the stored keys
  against a compact in-memory set of this run's key hashes (8 bytes a key; a hash collision can only
  keep a key, never delete one).

Rows with a null key, a duplicate key or a value that cannot be cast are *invalid*: counted, sampled
with the reason, never sent. The changes come out as the records to deliver (mapped, with their
operation): a full sync turns over a million rows into records here, one object each.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_opsflow.core.sql_source import SqlSource
from airflow_opsflow.sync.deliver import Item
from airflow_opsflow.sync.destinations.base import Operation
from airflow_opsflow.sync.plan import (
    HASH,
    KEY,
    OLD_HASH,
    OLD_REF,
    OLD_STATUS,
    OLD_WRITE,
    Plan,
    py_hash,
    py_key,
    py_shard,
)
from airflow_opsflow.sync.repo import PENDING, RESEND, KeyState, SyncRepo

MAX_KEY_LENGTH = 512
SMALL_DIFF = 20_000  # changes fetched in one go (with parallel workers) before falling back to a cursor


@dataclass
class DiffCounts:
    read: int = 0
    unchanged: int = 0
    skipped: int = 0  # changes the mode does not send (insert mode: changed rows)
    invalid: Counter[str] = field(default_factory=Counter)  # reason -> rows
    invalid_samples: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, reason: str, key: Any, detail: str = "") -> None:
        self.invalid[reason] += 1
        if len(self.invalid_samples) < 50:
            self.invalid_samples.append({"key": key, "reason": reason, **({"detail": detail} if detail else {})})


class Differ:
    """Compute changes for one run.

    :param plan: the source plan.
    :param source: the open source session.
    :param repo: the sync's state (lookups in streaming mode).
    :param state_table: the qualified ``sync_keys`` table when the diff runs in the source database.
    :param duplicates: key texts present more than once in the source (found beforehand), never sent.
    :param to_record: maps a row (the plan's selected columns first) to the destination record; raises
        ValueError for a value it cannot cast.
    :param ops: the operation for each kind of change (``added``, ``changed``); None: not sent.
    :param resend_all: treat every row as changed (a forced full resync).
    :param track_keys: remember every key seen (streaming mode, for deletes).
    """

    def __init__(self, plan: Plan, source: SqlSource, repo: SyncRepo, state_table: str | None,
                 duplicates: dict[str, int], to_record: Callable[[Any], dict[str, Any]],
                 ops: Mapping[str, Operation | None], resend_all: bool = False, track_keys: bool = False) -> None:
        self.plan = plan
        self.to_record = to_record
        self.ops = ops
        self.source = source
        self.repo = repo
        self.state_table = state_table
        self.duplicates = duplicates
        self.resend_all = resend_all
        self.counts = DiffCounts()
        self.exclude: set[str] = set()  # keys already handled this run (retried by key): passed over
        self._seen: array[int] | None = array("q") if track_keys else None
        sel = plan.selected
        self._key_idx = [sel.index(k) for k in plan.key]
        self._val_idx = [sel.index(v) for v in plan.values]
        self._width = len(sel)

    # -- changes -------------------------------------------------------------------------------------

    def changes(self, since: Any = None, keys: list[str] | None = None,
                role: str = "the source query") -> Iterator[list[Item]]:
        """The records to send, a chunk (list) per fetch: a full sync handles 1.5M rows here, so per-row work
        is kept to a list comprehension's worth."""
        if self.state_table is not None and keys is None:
            yield from self._pushdown(since, role)
        else:
            yield from self._stream(since, keys, role)

    def _pushdown(self, since: Any, role: str) -> Iterator[list[Item]]:
        sql = self.plan.pushdown_sql(self.state_table or "", self.repo.sync_id, since, self.resend_all, RESEND)
        for names, rows in self.source.stream(sql, role, small=SMALL_DIFF):
            at = {n: i for i, n in enumerate(names)}
            ki, hi, oh, orf, ost, ow = at[KEY], at[HASH], at[OLD_HASH], at[OLD_REF], at[OLD_STATUS], at[OLD_WRITE]
            if self._plain():  # the common case, in one tight loop
                yield self._plain_items(rows, ki, hi, oh, orf, ost, ow)
                continue
            out: list[Item] = []
            for row in rows:
                status = row[ost]
                old = KeyState(row[oh], row[orf], status, row[ow]) if status is not None else None
                self._classify(out, row, row[ki], row[hi], old)
            yield out

    def _plain(self) -> bool:
        """No duplicate keys, no key tracking: only the checks every row needs."""
        return not self.duplicates and self._seen is None

    def _plain_items(self, rows: list[tuple[Any, ...]], ki: int, hi: int, oh: int, orf: int, ost: int,
                     ow: int) -> list[Item]:
        c, kidx, resend, resend_all = self.counts, self._key_idx, RESEND, self.resend_all
        to_record, new_op, exclude = self.to_record, self.ops["added"], self.exclude
        single = kidx[0] if len(kidx) == 1 else None
        c.read += len(rows)
        out: list[Item] = []
        add = out.append
        for row in rows:
            key = row[ki]
            if exclude and key in exclude:
                continue
            status = row[ost]
            if key is None or len(key) > MAX_KEY_LENGTH:
                self._classify(out, row, key, row[hi], None if status is None else
                               KeyState(row[oh], row[orf], status, row[ow]), counted=True)
                continue
            if status is None:  # never sent
                if new_op is None:
                    c.skipped += 1
                    continue
                try:
                    fields = to_record(row)
                except ValueError as e:
                    c.reject("uncastable value", key, str(e))
                    continue
                add(Item(key, (row[single],) if single is not None else tuple([row[i] for i in kidx]), fields,
                         row[hi], None, False, "", op=new_op, kind="added"))
                continue
            row_hash, old_hash = row[hi], row[oh]
            again = status in resend
            if old_hash == row_hash and not again and not resend_all:
                c.unchanged += 1
                continue
            self._emit(out, row, key, row_hash, old_hash is not None, row[orf], True, row[ow] if again else None,
                       status == PENDING)
        return out

    def _stream(self, since: Any, keys: list[str] | None, role: str) -> Iterator[list[Item]]:
        plan, sql_side = self.plan, self.plan.in_sql
        wanted = set(keys) if keys is not None and not sql_side else None  # Python-side keys: filter here
        for _names, rows in self.source.stream(plan.select_sql(since, keys), role):
            batch: list[tuple[tuple[Any, ...], str | None, str]] = []
            for row in rows:
                if sql_side:
                    key, row_hash = row[self._width], row[self._width + 1]
                else:
                    key = py_key([row[i] for i in self._key_idx])
                    if plan.shard and key is not None and py_shard(key, plan.shard[1]) != plan.shard[0]:
                        continue
                    if wanted is not None and key not in wanted:
                        continue
                    row_hash = py_hash(plan.digest, [row[i] for i in self._val_idx])
                batch.append((row, key, row_hash))
            known = self.repo.lookup([k for _, k, _ in batch if k is not None])
            out: list[Item] = []
            for row, key, row_hash in batch:
                self._classify(out, row, key, row_hash, known.get(key) if key is not None else None)
            yield out

    def _classify(self, out: list[Item], row: tuple[Any, ...], key: str | None, row_hash: str,
                  old: KeyState | None, counted: bool = False) -> None:
        c = self.counts
        if not counted:
            c.read += 1
        if key is None:
            c.reject("null key", [row[i] for i in self._key_idx])
            return
        if key in self.exclude:
            return
        if self._seen is not None:
            self._seen.append(hash(key))
        if key in self.duplicates:
            c.reject("duplicate key", key, f"{self.duplicates[key]} rows share this key")
            return
        if len(key) > MAX_KEY_LENGTH:
            c.reject("key too long", key[:80] + "...", f"over {MAX_KEY_LENGTH} characters")
            return
        again = old is not None and old.status in RESEND
        if old is not None and old.row_hash == row_hash and not again and not self.resend_all:
            c.unchanged += 1
            return
        self._emit(out, row, key, row_hash, old is not None and old.row_hash is not None,
                   old.dest_ref if old else None, old is not None, old.write_id if again and old else None,
                   old is not None and old.status == PENDING)

    def _emit(self, out: list[Item], row: tuple[Any, ...], key: str, row_hash: str, confirmed: bool,
              ref: str | None, stored: bool, write_id: str | None, pending: bool = False) -> None:
        """Append the record for a change: ``changed`` when the destination confirmed a value before, else
        ``added``; ``write_id``: an earlier write to repeat (failed, or maybe applied by a killed run: ``pending``)."""
        kind = "changed" if confirmed else "added"
        op = self.ops[kind]
        if op is None:
            self.counts.skipped += 1
            return
        try:
            fields = self.to_record(row)
        except ValueError as e:
            self.counts.reject("uncastable value", key, str(e))
            return
        out.append(Item(key, tuple([row[i] for i in self._key_idx]), fields, row_hash, ref, stored, write_id or "",
                        pending, op=op, kind=kind))

    # -- deletes ---------------------------------------------------------------------------------------

    def deletes(self) -> Iterator[tuple[str, str | None, str | None, str]]:
        """Stored (key, confirmed hash, destination ref, status) whose key the source no longer has."""
        if self.state_table is not None:
            sql = self.plan.deletes_sql(self.state_table, self.repo.sync_id)
            for _names, rows in self.source.stream(sql, "the deletes query"):
                yield from ((r[0], r[1], r[2], r[3]) for r in rows)
            return
        if self._seen is None:
            raise RuntimeError("deletes need track_keys=True in streaming mode")
        import numpy as np  # only mirror syncs in streaming mode pay for it

        seen = np.sort(np.frombuffer(self._seen, dtype=np.int64))
        page: list[tuple[str, str | None, str | None, str]] = []
        for entry in self.repo.iter_keys():
            page.append(entry)
            if len(page) >= 10_000:
                yield from _absent(seen, page)
                page = []
        yield from _absent(seen, page)


def _absent(seen: Any, page: list[tuple[str, str | None, str | None, str]]
            ) -> Iterator[tuple[str, str | None, str | None, str]]:
    import numpy as np

    if not page:
        return
    wanted = np.fromiter((hash(e[0]) for e in page), dtype=np.int64, count=len(page))
    pos = np.searchsorted(seen, wanted)
    pos[pos >= len(seen)] = 0
    found = seen[pos] == wanted if len(seen) else np.zeros(len(page), dtype=bool)
    for entry, present in zip(page, found.tolist(), strict=True):
        if not present:
            yield entry

