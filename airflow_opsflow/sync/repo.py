"""Reverse-ETL sync state: one row per sync (meta, lease) and one per key the sync ever sent.

A key's ``row_hash`` is the hash of the mapped fields the destination *confirmed*; it advances only in
:meth:`SyncRepo.record`, called after the destination answered. A rejected record keeps its last
confirmed hash (so the next diff sends it again) and its error. Writes are batched multi-row upserts, one
transaction per group of confirmed batches.

Before a record is sent its key is *marked* (:meth:`SyncRepo.mark`, committed first) with the write's
id. A completed run clears its marks; the next run after a crash turns each mark whose write was never
recorded into a ``pending`` key (:meth:`SyncRepo.resolve_marks`): the destination may or may not hold
that write, so the key is sent again whatever its value, and deleted if it left the source. A re-sent
write keeps its write id, so an endpoint that stores idempotency keys applies it once.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_opsflow.core.cursor import Cursor
from airflow_opsflow.core.dberrors import describe, is_connection_lost, is_driver_error
from airflow_opsflow.core.timestamps import from_text, now_text
from airflow_opsflow.state.store import StateStore, StateStoreError

OK, FAILED, DELETE_FAILED, MISSING, PENDING = "ok", "failed", "delfail", "missing", "pending"
RESEND = (FAILED, PENDING)  # sent again on every run, whatever the source's value
STALE_HASH = "stale"  # confirmed under a previous hashing scheme: differs from every real hash
_CHUNK = 400  # rows per multi-row statement (SQLite allows 32k parameters; 400 x 9 stays far below)
_NULL = "\\N"  # NULL in COPY's text format
_LEASE_STALE = timedelta(minutes=5)


class SyncBusyError(StateStoreError):
    """Another task is running the same sync right now."""


@dataclass(frozen=True)
class SyncMeta:
    sync_id: str
    hash_kind: str
    watermark: Any
    last_full_at: datetime | None
    last_run_at: datetime | None
    last_counts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KeyState:
    row_hash: str | None
    dest_ref: str | None
    status: str
    write_id: str | None = None


@dataclass(slots=True)
class Answers:
    """A group of the destination's answers, as the recorder stores them (tuples, not an object per key).

    :param confirmed: ``(key, row_hash, dest_ref, status, write_id, new)``: the destination holds the write
        (``status`` ok), or an update found no such record (``missing``: remembered, not retried until the
        row changes). ``new``: the key had no state row when the run read it (the run holds the lock).
    :param rejected: ``(key, dest_ref, status, error, write_id)`` with status failed (or delfail for deletes).
    :param deleted: keys whose delete the destination confirmed.
    """

    confirmed: list[tuple[str, str | None, str | None, str, str, bool]] = field(default_factory=list)
    rejected: list[tuple[str, str | None, str, str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def extend(self, other: Answers) -> None:
        self.confirmed += other.confirmed
        self.rejected += other.rejected
        self.deleted += other.deleted

    def __len__(self) -> int:
        return len(self.confirmed) + len(self.rejected) + len(self.deleted)


class SyncRepo:
    """Sync state on one :class:`StateStore`. Not thread-safe: give each thread its own store."""

    def __init__(self, store: StateStore, sync_id: str) -> None:
        if not sync_id or len(sync_id) > 200:
            raise StateStoreError(f"sync id must be 1 to 200 characters, got {sync_id!r}")
        self.store = store
        self.sync_id = sync_id
        self._keys = store.table("sync_keys")
        self._meta = store.table("sync_meta")
        self._marks = store.table("sync_marks")
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._locked = False
        self._async_commit = False

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Cursor]:
        """``store.transaction()``, a driver's error turned into a StateStoreError naming the database and the
        step (the connection may have been dropped mid-run: the run stops, its marks tell the next one what
        may have been sent)."""
        try:
            with self.store.transaction() as cur:
                yield cur
        except StateStoreError as e:
            cause = e.__cause__
            if cause is None or not is_driver_error(cause):  # not the store's wrapping of a driver error
                raise
            what = f" ({self.store.label})" if self.store.label else ""
            lost = "lost the connection" if is_connection_lost(cause) else "failed"
            raise StateStoreError(f"the state database{what} {lost} while {doing} for sync {self.sync_id!r}: "
                                  f"{describe(cause)}") from cause

    # -- one run at a time -------------------------------------------------------------------------

    def lock(self) -> None:
        """Take the sync's run lock or raise :class:`SyncBusyError`.

        PostgreSQL and MySQL use a session-level advisory lock on this store's connection, released by
        the database as soon as the process dies; SQLite uses a lease row, taken over when its holder's
        process is gone (same host) or stale.
        """
        digest = hashlib.md5(self.sync_id.encode(), usedforsecurity=False).hexdigest()
        with self._transaction("taking the sync's lock") as cur:
            self._ensure_meta(cur)
            if self.store.dialect == "postgres":
                cur.execute("SELECT pg_try_advisory_lock(?)", (int(digest[:15], 16),))
                got = bool(cur.fetchone()[0])
            elif self.store.dialect == "mysql":
                cur.execute("SELECT GET_LOCK(?, 0)", (f"opsflow_sync_{digest[:40]}",))
                got = cur.fetchone()[0] == 1
            else:
                got = self._take_lease(cur)
        if not got:
            raise SyncBusyError(f"sync {self.sync_id!r} is already running in another task; this run does "
                                "nothing rather than send the same records twice")
        self._locked = True

    def unlock(self) -> None:
        if not self._locked:
            return
        self._locked = False
        digest = hashlib.md5(self.sync_id.encode(), usedforsecurity=False).hexdigest()
        with self._transaction("releasing the sync's lock") as cur:
            if self.store.dialect == "postgres":
                cur.execute("SELECT pg_advisory_unlock(?)", (int(digest[:15], 16),))
            elif self.store.dialect == "mysql":
                cur.execute("SELECT RELEASE_LOCK(?)", (f"opsflow_sync_{digest[:40]}",))
            else:
                cur.execute(f"UPDATE {self._meta} SET lease_owner = NULL, lease_at = NULL "
                            "WHERE sync_id = ? AND lease_owner = ?", (self.sync_id, self._owner))

    def _take_lease(self, cur: Cursor) -> bool:
        cur.execute(f"SELECT lease_owner, lease_at FROM {self._meta} WHERE sync_id = ?", (self.sync_id,))
        owner, at = cur.fetchone()
        if owner and not _lease_dead(owner, at):
            return False
        cur.execute(f"UPDATE {self._meta} SET lease_owner = ?, lease_at = ? WHERE sync_id = ?",
                    (self._owner, now_text(), self.sync_id))
        return True

    def heartbeat(self, cur: Cursor) -> None:
        if self.store.dialect not in ("postgres", "mysql"):
            cur.execute(f"UPDATE {self._meta} SET lease_at = ? WHERE sync_id = ? AND lease_owner = ?",
                        (now_text(), self.sync_id, self._owner))

    # -- meta ------------------------------------------------------------------------------------------

    def _ensure_meta(self, cur: Cursor) -> None:
        cur.execute(f"SELECT 1 FROM {self._meta} WHERE sync_id = ?", (self.sync_id,))
        if cur.fetchone() is None:
            cur.execute(f"INSERT INTO {self._meta} (sync_id, hash_kind) VALUES (?, ?)", (self.sync_id, ""))

    def meta(self) -> SyncMeta:
        with self._transaction("reading the sync's run record") as cur:
            self._ensure_meta(cur)
            cur.execute(f"SELECT hash_kind, watermark, last_full_at, last_run_at, last_counts FROM {self._meta} "
                        "WHERE sync_id = ?", (self.sync_id,))
            kind, mark, full_at, run_at, counts = cur.fetchone()
        return SyncMeta(self.sync_id, kind or "", json.loads(mark) if mark else None,
                        from_text(full_at), from_text(run_at),
                        json.loads(counts) if counts else {})

    def finish_run(self, hash_kind: str, counts: dict[str, Any], watermark: Any = None,
                   set_watermark: bool = False, full: bool = False) -> None:
        """Record a completed run (the watermark only moves when the whole read was delivered)."""
        sets = ["hash_kind = ?", "last_run_at = ?", "last_counts = ?"]
        params: list[Any] = [hash_kind, now_text(), json.dumps(counts, default=str)]
        if set_watermark:
            sets.append("watermark = ?")
            params.append(None if watermark is None else json.dumps(watermark))
        if full:
            sets.append("last_full_at = ?")
            params.append(now_text())
        with self._transaction("recording the finished run") as cur:
            cur.execute(f"UPDATE {self._meta} SET {', '.join(sets)} WHERE sync_id = ?", (*params, self.sync_id))

    def reset_hash_kind(self, hash_kind: str) -> None:
        """The hashing scheme changed (e.g. another source dialect): stored hashes cannot be compared.

        Confirmed keys keep a placeholder hash rather than none: every record is sent again, and keys
        that left the source are still known to be at the destination (mirror deletes them)."""
        with self._transaction("resetting the stored hashes") as cur:
            cur.execute(f"UPDATE {self._keys} SET row_hash = ? WHERE sync_id = ? AND row_hash IS NOT NULL",
                        (STALE_HASH, self.sync_id))
            cur.execute(f"UPDATE {self._meta} SET hash_kind = ?, watermark = NULL WHERE sync_id = ?",
                        (hash_kind, self.sync_id))

    # -- keys ------------------------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, KeyState]:
        """The stored state of ``keys`` (absent keys were never sent)."""
        with self._transaction("looking up stored keys") as cur:
            return self._lookup(cur, keys)

    def _lookup(self, cur: Cursor, keys: Sequence[str]) -> dict[str, KeyState]:
        found: dict[str, KeyState] = {}
        for start in range(0, len(keys), _CHUNK):
            part = keys[start:start + _CHUNK]
            marks = ", ".join("?" * len(part))
            cur.execute(f"SELECT key_text, row_hash, dest_ref, status, write_id FROM {self._keys} "
                        f"WHERE sync_id = ? AND key_text IN ({marks})", (self.sync_id, *part))
            for key, row_hash, ref, status, write_id in cur.fetchall():
                found[key] = KeyState(row_hash, ref, status, write_id)
        return found

    def failed_keys(self, limit: int = 1_000_000) -> list[str]:
        """Keys whose last send was rejected or may not have arrived (pending): re-read by key even when an
        incremental read skips them."""
        with self._transaction("reading the keys to retry") as cur:
            cur.execute(f"SELECT key_text FROM {self._keys} WHERE sync_id = ? AND status <> 'ok' "
                        f"AND status IN (?, ?) LIMIT {int(limit)}", (self.sync_id, *RESEND))
            return [r[0] for r in cur.fetchall()]

    def iter_keys(self, page: int = 20_000) -> Iterator[tuple[str, str | None, str | None, str]]:
        """Every stored (key, row_hash, dest_ref, status), in pages by key (for deletes in streamed diffs)."""
        after = ""
        while True:
            with self._transaction("reading the stored keys") as cur:
                cur.execute(f"SELECT key_text, row_hash, dest_ref, status FROM {self._keys} WHERE sync_id = ? "
                            f"AND key_text > ? ORDER BY key_text LIMIT {int(page)}", (self.sync_id, after))
                rows = cur.fetchall()
            yield from ((r[0], r[1], r[2], r[3]) for r in rows)
            if len(rows) < page:
                return
            after = rows[-1][0]

    def counts(self) -> dict[str, int]:
        """How many keys are confirmed, failed and awaiting a delete."""
        with self._transaction("counting the stored keys") as cur:
            cur.execute(f"SELECT status, COUNT(*) FROM {self._keys} WHERE sync_id = ? GROUP BY status", (self.sync_id,))
            return {str(s): int(n) for s, n in cur.fetchall()}

    def synced_count(self) -> int:
        """Keys the destination holds (confirmed at least once, or possibly written by a killed run)."""
        with self._transaction("counting the synced keys") as cur:
            cur.execute(f"SELECT COUNT(*) FROM {self._keys} WHERE sync_id = ? AND (row_hash IS NOT NULL "
                        "OR status = ?)", (self.sync_id, PENDING))
            return int(cur.fetchone()[0])

    # -- write-ahead marks -------------------------------------------------------------------------------

    def mark(self, batches: Sequence[tuple[str, str, list[str], list[str | None] | None]]) -> None:
        """Commit write-ahead marks ``(write_id, op, keys, planned refs or None)``, one per batch, before the
        batches are sent (one row per batch: a few bytes of JSON per key, no index entry per key)."""
        if not batches:
            return
        rows = [(self.sync_id, write_id, op, _json_list(keys), None if refs is None else _json_list(refs))
                for write_id, op, keys, refs in batches]
        with self._transaction("committing write-ahead marks") as cur:
            for start in range(0, len(rows), _CHUNK):
                part = rows[start:start + _CHUNK]
                cur.execute(f"INSERT INTO {self._marks} (sync_id, write_id, op, key_list, ref_list) VALUES "
                            + ", ".join(["(?, ?, ?, ?, ?)"] * len(part)), [v for row in part for v in row])

    def resolve_marks(self) -> int:
        """Turn a killed run's marks into ``pending`` keys where the marked write was never recorded; clear
        the marks. Returns how many keys became pending. Runs under the sync's lock, before the diff.

        A write is recorded when the key's row carries its write id (confirmed, or rejected); a delete is
        also done when the key's row is gone."""
        with self._transaction("resolving a previous run's marks") as cur:
            cur.execute(f"SELECT write_id, op, key_list, ref_list FROM {self._marks} WHERE sync_id = ?",
                        (self.sync_id,))
            marks = cur.fetchall()
            if not marks:
                return 0
            now, pending = now_text(), []
            for write_id, op, keys_json, refs_json in marks:
                keys = json.loads(keys_json)
                refs = json.loads(refs_json) if refs_json else [None] * len(keys)
                known = self._lookup(cur, keys)
                for key, ref in zip(keys, refs, strict=True):
                    if _write_recorded(known.get(key), op, write_id):
                        continue
                    pending.append((self.sync_id, key, None, ref, PENDING, 0, None, now, write_id))
            self._upsert(cur, pending, ok=False, pending=True)
            cur.execute(f"DELETE FROM {self._marks} WHERE sync_id = ?", (self.sync_id,))
        return len(pending)

    def clear_marks(self) -> None:
        """The run recorded an answer for every write it marked: its marks are done with."""
        with self._transaction("clearing the run's marks") as cur:
            cur.execute(f"DELETE FROM {self._marks} WHERE sync_id = ?", (self.sync_id,))

    def record(self, answers: Answers) -> None:
        """Store the destination's answers in one transaction (confirmed hashes advance, rejections keep
        the old hash and gain the error, confirmed deletes drop the key)."""
        now, sid = now_text(), self.sync_id
        oks = answers.confirmed
        bad = [(sid, key, None, ref, status, 1, error[:2000], now, wid)
               for key, ref, status, error, wid in answers.rejected]
        with self._transaction("recording the destination's answers") as cur:
            if self.store.dialect == "postgres" and hasattr(cur.raw, "copy_expert") and oks:
                if not self._async_commit:
                    # Confirmations may be lost in a database crash, never half-written: those records are
                    # pending again (their marks survive), and sent again. Waiting for each commit's WAL
                    # flush is not worth it. (Session-wide: this connection only records answers.)
                    cur.execute("SET synchronous_commit = off")
                    self._async_commit = True
                self._copy_in(cur, [a for a in oks if a[5]], now, stage=False)  # psycopg2: COPY is cheapest
                self._copy_in(cur, [a for a in oks if not a[5]], now, stage=True)
            else:
                self._upsert(cur, [(sid, key, row_hash, ref, status, 0, None, now, wid)
                                   for key, row_hash, ref, status, wid, _new in oks], ok=True)
            self._upsert(cur, bad, ok=False)
            gone = answers.deleted
            for start in range(0, len(gone), _CHUNK):
                part = gone[start:start + _CHUNK]
                marks = ", ".join("?" * len(part))
                cur.execute(f"DELETE FROM {self._keys} WHERE sync_id = ? AND key_text IN ({marks})", (sid, *part))
            self.heartbeat(cur)

    def forget(self, keys: Sequence[str]) -> None:
        """Drop keys that never reached the destination and left the source (nothing to delete there)."""
        self.record(Answers(deleted=list(keys)))

    def _copy_in(self, cur: Cursor, rows: list[tuple[str, str | None, str | None, str, str, bool]], now: str,
                 stage: bool) -> None:
        """Confirmed rows by COPY: straight into the table for keys it has no row for (the sync's lock
        keeps anyone else from adding them), through a staging table and an upsert for the others."""
        import io

        if not rows:
            return
        head = f"{_copy_field(self.sync_id)}\t"
        tail = f"\t0\t\\N\t{now}\t"
        keys = [r[0] for r in rows]
        if _needs_escape(keys):
            keys = [_copy_field(k) for k in keys]
        if _needs_escape([r[2] for r in rows if r[2] is not None]):
            refs = [_NULL if r[2] is None else _copy_field(r[2]) for r in rows]
        else:
            refs = [_NULL if r[2] is None else r[2] for r in rows]
        # Hashes are hex, statuses and write ids ours: no escaping needed.
        text = "".join([f"{head}{k}\t{r[1] or _NULL}\t{ref}\t{r[3]}{tail}{r[4]}\n"
                        for k, ref, r in zip(keys, refs, rows, strict=True)])
        columns = "(sync_id, key_text, row_hash, dest_ref, status, attempts, last_error, updated_at, write_id)"
        if not stage:
            # One read of the whole text (psycopg2 reads 8 KB at a time by default, and each read waits for
            # the GIL again while the other threads are busy).
            cur.raw.copy_expert(f"COPY {self._keys} {columns} FROM STDIN", io.StringIO(text), size=len(text) + 1)
            return
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS opsflow_sync_incoming (LIKE {self._keys}) ON COMMIT DELETE ROWS")
        cur.raw.copy_expert(f"COPY opsflow_sync_incoming {columns} FROM STDIN", io.StringIO(text), size=len(text) + 1)
        table = self._keys.split(".")[-1]
        cur.execute(f"INSERT INTO {self._keys} SELECT * FROM opsflow_sync_incoming ON CONFLICT (sync_id, key_text) "
                    "DO UPDATE SET row_hash = excluded.row_hash, status = excluded.status, attempts = 0, "
                    f"last_error = NULL, updated_at = excluded.updated_at, write_id = excluded.write_id, "
                    f"dest_ref = COALESCE(excluded.dest_ref, {table}.dest_ref)")

    def _upsert(self, cur: Cursor, rows: list[tuple[Any, ...]], ok: bool, pending: bool = False) -> None:
        """Multi-row upserts of full rows: confirmed (``ok``), rejected, or ``pending`` (keeps the confirmed
        hash, the known ref and the last error; only the status and the write to repeat change)."""
        columns = "sync_id, key_text, row_hash, dest_ref, status, attempts, last_error, updated_at, write_id"
        table = self._keys.split(".")[-1]
        if self.store.dialect == "mysql":
            new, old = "VALUES({})".format, "{}".format
        else:
            new, old = "excluded.{}".format, f"{table}.{{}}".format
        sets = {"status": new("status"), "updated_at": new("updated_at"), "write_id": new("write_id")}
        if pending:
            sets["dest_ref"] = f"COALESCE({old('dest_ref')}, {new('dest_ref')})"
        elif ok:
            sets |= {"row_hash": new("row_hash"), "dest_ref": f"COALESCE({new('dest_ref')}, {old('dest_ref')})",
                     "attempts": "0", "last_error": "NULL"}
        else:
            sets |= {"dest_ref": f"COALESCE({new('dest_ref')}, {old('dest_ref')})",
                     "attempts": f"{old('attempts')} + 1", "last_error": new("last_error")}
        # MySQL applies the assignments in order, each seeing the ones before: dest_ref (which reads the old
        # value) goes first.
        order = sorted(sets, key=lambda c: c != "dest_ref")
        update = ", ".join(f"{c} = {sets[c]}" for c in order)
        tail = (f"ON DUPLICATE KEY UPDATE {update}" if self.store.dialect == "mysql"
                else f"ON CONFLICT (sync_id, key_text) DO UPDATE SET {update}")
        for start in range(0, len(rows), _CHUNK):
            part = rows[start:start + _CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part))
            cur.execute(f"INSERT INTO {self._keys} ({columns}) VALUES {values} {tail}",
                        [v for row in part for v in row])


@dataclass(frozen=True)
class PendingKey:
    """A record whose last write may or may not have reached the destination.

    :param state: ``pending`` (a run after a crash found the write unrecorded: sent again by the next run) or
        ``unconfirmed`` (a write-ahead mark with no recorded answer: a run was killed after sending, or is
        sending right now; the sync's next run turns it into ``pending``).
    :param since: when the key became pending (None for a mark: marks keep no time).
    :param op: the marked write's operation (``upsert``, ``delete``...), for an unconfirmed key.
    """

    sync_id: str
    key: str
    state: str
    since: datetime | None
    write_id: str | None
    op: str | None = None


def _write_recorded(state: KeyState | None, op: str, write_id: str) -> bool:
    """Whether a marked write reached the state: its key's row carries the write id (confirmed or rejected),
    or, for a delete, the row is gone (what ``resolve_marks`` and the Ops view both ask)."""
    return (state is None and op == "delete") or (state is not None and state.write_id == write_id)


class SyncStateReader:
    """Reads sync state across syncs, for people (the Ops view): SELECTs only."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._keys = store.table("sync_keys")
        self._marks = store.table("sync_marks")

    def pending(self, sync_ids: Sequence[str], limit: int = 5000) -> tuple[list[PendingKey], bool]:
        """The keys of ``sync_ids`` whose write is pending or unconfirmed (at most ``limit``, by sync then
        key), and whether there were more. Reads the pending keys through the index of non-confirmed keys,
        and the marks left in ``sync_marks`` (a finished run clears its own)."""
        found: list[PendingKey] = []
        more = False
        with self.store.transaction() as cur:
            for i in range(0, len(sync_ids), _CHUNK):
                part = list(sync_ids[i:i + _CHUNK])
                marks = ", ".join("?" * len(part))
                cur.execute(f"SELECT sync_id, key_text, updated_at, write_id FROM {self._keys} "
                            f"WHERE status <> 'ok' AND status = ? AND sync_id IN ({marks}) "
                            f"ORDER BY sync_id, key_text LIMIT {int(limit) + 1}", (PENDING, *part))
                rows = cur.fetchall()
                more = more or len(rows) > limit
                found += [PendingKey(str(sid), str(k), PENDING, from_text(at), wid) for sid, k, at, wid in rows[:limit]]
                cur.execute(f"SELECT sync_id, write_id, op, key_list FROM {self._marks} WHERE sync_id IN ({marks}) "
                            "ORDER BY sync_id, write_id", part)
                for sid, write_id, op, keys_json in cur.fetchall():
                    if len(found) > limit:
                        more = True
                        break
                    keys = [str(k) for k in json.loads(keys_json)]
                    recorded = SyncRepo(self.store, str(sid))._lookup(cur, keys)
                    found += [PendingKey(str(sid), k, "unconfirmed", None, str(write_id), str(op)) for k in keys
                              if not _write_recorded(recorded.get(k), op, write_id)]
        found.sort(key=lambda p: (p.sync_id, p.key, p.state))
        return found[:limit], more or len(found) > limit


def _json_list(values: list[Any]) -> str:
    """A JSON array (orjson: a mark per batch of a million-record sync; json for what it refuses)."""
    import orjson

    try:
        return orjson.dumps(values).decode()
    except TypeError:  # lone surrogates, say
        return json.dumps(values, ensure_ascii=False)


def _needs_escape(texts: list[str]) -> bool:
    """Whether any text needs COPY escapes (a backslash, tab or line break): one scan for the whole list."""
    blob = "\x00".join(texts)
    return "\\" in blob or "\t" in blob or "\n" in blob or "\r" in blob


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _lease_dead(owner: str, at: str | None) -> bool:
    host, _, rest = owner.partition(":")
    taken = from_text(at)
    if taken is None or datetime.now(UTC) - taken > _LEASE_STALE:
        return True
    if host != socket.gethostname():
        return False
    pid = int(rest.split(":")[0] or 0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
