"""The metric history every metric test keeps: a real state store on the test's database kind."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_opsflow.monitors.repo import MetricRepo
from airflow_opsflow.state.store import StateStore
from tests.conftest import Database


@pytest.fixture
def history(db: Database, tmp_path: Any, pg_uri: str) -> Iterator[MetricRepo]:
    """SQLite tests keep it in a file of their own; PostgreSQL tests in tables under a fresh prefix."""
    if db.dialect == "sqlite":
        store = StateStore(lambda: sqlite3.connect(tmp_path / "state.db"), "sqlite")
    else:
        import psycopg2

        store = StateStore(lambda: psycopg2.connect(pg_uri), "postgres", prefix=f"m{uuid.uuid4().hex[:6]}_")
    yield MetricRepo(store)
    store.close()
