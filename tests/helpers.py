"""Test helpers: load a test DAG module by path, break the sample data in known ways."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

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
