"""Report deliveries in the state store: which destinations a run's report already reached."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airflow_opsflow.core.timestamps import now_text
from airflow_opsflow.state.store import StateStore


def delivery_key(report: str, run_id: str, destination: str) -> str:
    return hashlib.sha256("\x1f".join((report, run_id, destination)).encode()).hexdigest()[:64]


class ReportDeliveryRepo:
    """:param store: the state store (tables are created on first use)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.table = store.table("report_deliveries")

    def sent(self, report: str, run_id: str, destinations: list[str]) -> set[str]:
        keys = {delivery_key(report, run_id, d): d for d in destinations}
        if not keys:
            return set()
        with self.store.transaction() as cur:
            cur.execute(f"SELECT delivery_key FROM {self.table} WHERE delivery_key IN "
                        f"({', '.join('?' * len(keys))})", list(keys))
            return {keys[row[0]] for row in cur.fetchall()}

    def mark(self, report: str, run_id: str, destination: str, detail: dict[str, Any]) -> None:
        key = delivery_key(report, run_id, destination)
        with self.store.transaction() as cur:
            cur.execute(f"DELETE FROM {self.table} WHERE delivery_key = ?", (key,))
            cur.execute(f"INSERT INTO {self.table} (delivery_key, report, run_id, destination, detail, sent_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (key, report[:250], run_id[:250], destination[:250],
                                                      json.dumps(detail, default=str), now_text()))
