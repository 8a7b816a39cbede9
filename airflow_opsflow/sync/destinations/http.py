"""Any REST or webhook endpoint: one request per record or per batch, JSON bodies, templated paths.

Without templates the body is the record (per-record) or a JSON array of records (batched), encoded
straight from the mapped fields: the fast path. With a ``body`` template (Jinja) the request body is
rendered with ``records`` (batched) or ``record`` + ``key`` (per record), ``op`` and ``sync_id``; an
``endpoint`` template may use the same names (per record: ``/accounts/{{ record.account_id }}``).

``idempotency_key=True`` adds an ``Idempotency-Key`` header derived from (sync id, op, key, row hash, write
id) per record, or from every (key, hash, write id) of a batch: an endpoint that stores keys (Stripe-style)
then applies a re-sent request once. The write id is the run's, kept by a write a killed run may have
delivered unconfirmed: its re-send carries the same key, while a later, separate write of the same value
(A -> B -> A) gets a new one and is applied. A 404 answer to an update means the record is not there (``missing``); to a
delete, that it is already gone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_opsflow.sync.destinations.base import OK, BatchRejected, DestinationClient, Operation, Outcome, Record
from airflow_opsflow.sync.destinations.transport import HttpTransport


def _env() -> Any:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "default": str}
    return env


class HttpEndpointClient(DestinationClient):
    """POST/PUT/PATCH records to an HTTP API. The engine side of
    :class:`~airflow_opsflow.destinations.http.HttpEndpoint` (its declaration, which opens it).

    :param transport: the connection (base URL, credentials, rate budget).
    :param endpoint: path (template) for upserts/inserts/updates, relative to the base URL.
    :param method: HTTP method for upserts/inserts/updates (``insert_method``/``update_method`` override).
    :param batch_size: records per request; 1 sends one request per record.
    :param body: optional Jinja template of the request body (must render JSON).
    :param delete_endpoint: path template for deletes (``{{ key }}``, ``{{ ref }}``); needed for mirror.
    :param delete_method: HTTP method for deletes.
    :param idempotency_key: add ``Idempotency-Key`` headers.
    :param sync_id: part of the idempotency key.
    :param headers: extra headers for every request.
    :param name: names the destination in logs and errors.
    """

    name: ClassVar[str] = "HTTP endpoint"
    max_batch: ClassVar[int] = 10_000

    def __init__(self, transport: HttpTransport, endpoint: str = "", method: str = "POST", batch_size: int = 100,
                 body: str | None = None, delete_endpoint: str | None = None, delete_method: str = "DELETE",
                 insert_method: str | None = None, update_method: str | None = None, idempotency_key: bool = False,
                 sync_id: str = "", headers: dict[str, str] | None = None, name: str | None = None) -> None:
        self.transport = transport
        self.endpoint, self.method, self.batch_size = endpoint, method.upper(), batch_size
        self.methods = {"upsert": self.method, "insert": (insert_method or self.method).upper(),
                        "update": (update_method or self.method).upper(), "delete": delete_method.upper()}
        self.body_src, self.delete_src = body, delete_endpoint
        self.idempotency_key, self.sync_id = idempotency_key, sync_id
        self.headers = headers or {}
        if name:
            self.name = name  # type: ignore[misc]
        env = _env() if body or "{" in endpoint or (delete_endpoint and "{" in delete_endpoint) else None
        self._body = env.from_string(body) if env and body else None
        self._path = env.from_string(endpoint) if env and "{" in endpoint else None
        self._delete = env.from_string(delete_endpoint) if env and delete_endpoint else None
        if self._path is not None and batch_size > 1:
            raise ValueError("a templated endpoint addresses one record: use batch_size=1")
        self.operations = frozenset({"upsert", "insert", "update"} | ({"delete"} if delete_endpoint else set()))  # type: ignore[misc]

    def fingerprint(self) -> Any:
        return ["http", self.endpoint, self.methods, self.body_src, self.batch_size]

    def send(self, op: Operation, records: Sequence[Record]) -> list[Outcome]:
        if op == "delete":
            return [self._delete_one(r) for r in records]
        if self.batch_size == 1 and len(records) == 1:
            return [self._one(op, records[0])]
        if self.idempotency_key:  # a batch re-sent after a crash may come in another order: same body, same key
            records = sorted(records, key=lambda r: r.key)
        ctx = {"records": [r.fields for r in records], "op": op, "sync_id": self.sync_id}
        raw = self._body.render(ctx).encode() if self._body is not None else None
        self.transport.request(self.methods[op], self.endpoint, body=None if raw else ctx["records"], raw=raw,
                               headers=self._headers(op, records))
        return [OK] * len(records)

    def _one(self, op: Operation, r: Record) -> Outcome:
        ctx = {"record": r.fields, "key": r.key, "op": op, "sync_id": self.sync_id}
        path = self._path.render(ctx) if self._path is not None else self.endpoint
        raw = self._body.render(ctx).encode() if self._body is not None else None
        try:
            self.transport.request(self.methods[op], path, body=None if raw else r.fields, raw=raw,
                                   headers=self._headers(op, [r]))
        except BatchRejected as e:
            if op == "update" and str(e).startswith(("HTTP 404", "HTTP 410")):
                return Outcome("missing")
            raise
        return OK

    def _delete_one(self, r: Record) -> Outcome:
        assert self._delete is not None
        path = self._delete.render({"key": r.key, "ref": r.ref, "sync_id": self.sync_id})
        try:
            self.transport.request(self.methods["delete"], path, headers=self._headers("delete", [r]))
        except BatchRejected as e:
            if str(e).startswith(("HTTP 404", "HTTP 410")):
                return OK  # already gone
            raise
        return OK

    def _headers(self, op: str, records: Sequence[Record]) -> dict[str, str]:
        if not self.idempotency_key:
            return self.headers
        text = json.dumps([self.sync_id, op, [[r.key, r.row_hash, r.write_id] for r in records]], separators=(",", ":"))
        return {**self.headers, "Idempotency-Key": hashlib.sha256(text.encode()).hexdigest()[:40]}

    def requests_for(self, op: Operation, records: int, batch_size: int) -> int:
        return records if op == "delete" else -(-records // batch_size)

    def close(self) -> None:
        self.transport.close()
