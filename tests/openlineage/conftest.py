"""OpenLineage enabled for one test: the provider's file transport writes every event to a JSON-lines file.

The provider reads its configuration once per process (``functools.cache`` in
``airflow.providers.openlineage.conf``) and its plugin registers the listener only when a transport was
configured when plugins were loaded. In the test process plugins are loaded by the first DAG run of the
session, usually with OpenLineage off, so the fixture clears the configuration cache and registers the
provider's listener itself (what the plugin does at start-up), and removes it afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class Events:
    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def of_task(self, dag_id: str, task_id: str) -> list[dict[str, Any]]:
        return [e for e in self.all() if e["job"]["name"] == f"{dag_id}.{task_id}"]


def _clear_conf() -> None:
    from airflow.providers.openlineage import conf

    for value in vars(conf).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture
def lineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Events]:
    path = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "opsflow_tests")
    # The provider emits from a forked child it kills after this many seconds (10 by default): on a loaded
    # CI machine building the facets can take longer, and a killed child writes no event.
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT", "120")
    _clear_conf()
    from airflow.listeners.listener import get_listener_manager
    from airflow.providers.openlineage.plugins import listener as ol_listener
    from airflow.sdk.listener import get_listener_manager as get_sdk_listener_manager

    # Airflow core and the task SDK each keep a listener manager (cached once made); the task runner calls
    # the SDK's. Register with both: which one an earlier test already made is not this test's business.
    managers = list({id(m): m for m in (get_listener_manager(), get_sdk_listener_manager())}.values())
    listener = ol_listener.get_openlineage_listener()
    for manager in managers:
        manager.add_listener(listener)
    try:
        yield Events(path)
    finally:
        for manager in managers:
            manager.pm.unregister(listener)
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT")
        _clear_conf()
