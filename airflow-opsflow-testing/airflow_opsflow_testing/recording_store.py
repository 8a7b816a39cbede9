"""The "records API" behaviour of :class:`~airflow_opsflow_testing.recording_http.RecordingHTTPServer`.

A :class:`KeyedCollection` serves one path prefix as a tiny REST resource keyed by a record field, so a sync
test can assert the destination ended equal to the source and that nothing was inserted twice:

* ``POST|PUT <prefix>`` or ``<prefix>/<key>`` with a JSON object, a JSON array of objects or
  ``{"records": [...]}``: upsert each by ``key_field`` (PATCH merges into the stored record, the others
  replace it); one object answers 201 (created) or 200 (updated) with the record, a batch 200 with
  ``{"results": [{"key", "status": "created"|"updated"}], "created", "updated"}``;
* ``DELETE <prefix>/<key>``: 204, or 404 when absent; ``POST <delete_path>`` with keys, objects or
  ``{"records"|"ids"|"keys": [...]}``: 200 ``{"deleted": n, "missing": [...]}``;
* ``GET <prefix>``: every record (a JSON array); ``GET <prefix>/<key>``: one, or 404.

Keys are compared as strings (``7`` and ``"7"`` are one record).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

JsonDict = dict[str, Any]


class RecordsError(Exception):
    """A request the collection refuses: answered ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def records_of(body: Any) -> list[Any] | None:
    """The records a JSON body carries: an object, an array, or ``{"records": [...]}``; None if none."""
    if isinstance(body, dict):
        inner = body.get("records")
        return list(inner) if isinstance(inner, list) else [body]
    if isinstance(body, list):
        return list(body)
    return None


@dataclass
class KeyedCollection:
    prefix: str  # without a trailing slash
    key_field: str
    delete_path: str | None = None
    records: dict[str, Any] = field(default_factory=dict)
    inserts: Counter[str] = field(default_factory=Counter)  # first inserts (again after a delete)
    updates: Counter[str] = field(default_factory=Counter)
    deletes: Counter[str] = field(default_factory=Counter)

    def owns(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/") or path == self.delete_path

    def clear(self) -> None:
        self.records.clear()
        self.inserts.clear()
        self.updates.clear()
        self.deletes.clear()

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Apply one request (the caller holds the lock): ``(status, JSON body or None)``."""
        if path == self.delete_path:
            if method != "POST":
                raise RecordsError(405, f"{method} not allowed on {path}")
            return self._delete_many(body)
        rest = path[len(self.prefix):].strip("/")
        if "/" in rest:
            raise RecordsError(404, f"no such resource {path}")
        key = unquote(rest) or None
        if method == "GET":
            if key is None:
                return 200, [copy.deepcopy(r) for r in self.records.values()]
            if key not in self.records:
                raise RecordsError(404, f"no record {key!r}")
            return 200, copy.deepcopy(self.records[key])
        if method == "DELETE":
            if key is None:
                raise RecordsError(405, "DELETE needs a key: <prefix>/<key>")
            if self.records.pop(key, None) is None:
                raise RecordsError(404, f"no record {key!r}")
            self.deletes[key] += 1
            return 204, None
        if method not in ("POST", "PUT", "PATCH"):
            raise RecordsError(405, f"{method} not allowed on {path}")
        return self._upsert(method, key, body)

    def _key(self, record: Any, path_key: str | None) -> str:
        if not isinstance(record, dict):
            raise RecordsError(400, f"records must be JSON objects, not {type(record).__name__}")
        value = record.get(self.key_field, path_key)
        if value is None or value == "":
            raise RecordsError(400, f"record without its key field {self.key_field!r}")
        return str(value)

    def _upsert(self, method: str, path_key: str | None, body: Any) -> tuple[int, Any]:
        records = records_of(body)
        if not records:
            raise RecordsError(400, "expected a JSON object, an array of objects or {\"records\": [...]}")
        single = isinstance(body, dict) and "records" not in body
        keys = [self._key(r, path_key if single else None) for r in records]  # validate all before writing
        results = []
        for key, record in zip(keys, records, strict=True):
            created = key not in self.records
            stored = dict(record) if created or method != "PATCH" else {**self.records[key], **record}
            stored.setdefault(self.key_field, key)
            self.records[key] = stored
            (self.inserts if created else self.updates)[key] += 1
            results.append({"key": key, "status": "created" if created else "updated"})
        if single:
            return (201 if results[0]["status"] == "created" else 200), copy.deepcopy(self.records[keys[0]])
        created_n = sum(r["status"] == "created" for r in results)
        return 200, {"results": results, "created": created_n, "updated": len(results) - created_n}

    def _delete_many(self, body: Any) -> tuple[int, Any]:
        items = body.get("ids", body.get("keys", body.get("records"))) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise RecordsError(400, 'expected a JSON array of keys or records, or {"ids": [...]}')
        keys = [self._key(i, None) if isinstance(i, dict) else str(i) for i in items]
        missing = []
        for key in keys:
            if self.records.pop(key, None) is None:
                missing.append(key)
            else:
                self.deletes[key] += 1
        return 200, {"deleted": len(keys) - len(missing), "missing": missing}
