"""Test helpers: load a test DAG module by path, break the sample data in known ways."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from tests.conftest import Database

DAGS = Path(__file__).parent / "dags"
EXAMPLES = Path(__file__).parent.parent / "dags_examples"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"opsflow_test_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results_by_name(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in payload["results"]}


def state_on(db: Database, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Database:
    """The state store on ``db``; on PostgreSQL in tables of their own (``prefix``), dropped first, since that
    server is shared by the whole session."""
    monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_CONN_ID", db.conn_id)
    if db.dialect == "postgres":
        monkeypatch.setenv("AIRFLOW__OPSFLOW__STATE_TABLE_PREFIX", prefix)
        cur = db.conn.cursor()
        cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (prefix.replace("_", "\\_") + "%",))
        tables = [t for (t,) in cur.fetchall()]
        cur.close()
        if tables:
            db.execute(f"DROP TABLE {', '.join(tables)}")
    return db
