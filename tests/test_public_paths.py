"""The import paths DAG authors use keep working across the reorganisation into layers: every
``from airflow_opsflow... import ...`` line of the README and the docs imports, and the former homes of the
alert routes and report deliveries (``airflow_opsflow.notifications.*``) give the very same classes."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_IMPORT = re.compile(r"^\s*from (airflow_opsflow[\w.]*) import ([\w, ]+)$", re.M)


def documented_imports() -> list[tuple[str, str, str]]:
    found = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for module, names in _IMPORT.findall(doc.read_text()):
            found |= {(doc.name, module, n.strip()) for n in names.split(",") if n.strip()}
    return sorted(found)


def test_the_docs_show_imports() -> None:
    assert len(documented_imports()) >= 15


@pytest.mark.parametrize(("doc", "module", "name"), documented_imports())
def test_documented_import_works(doc: str, module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"{doc}: from {module} import {name}"


@pytest.mark.parametrize(("old", "new", "name"), [
    ("airflow_opsflow.notifications.slack", "airflow_opsflow.alerts.slack", "SlackAlert"),
    ("airflow_opsflow.notifications.email", "airflow_opsflow.alerts.email", "EmailAlert"),
    ("airflow_opsflow.notifications.jira", "airflow_opsflow.alerts.jira", "JiraTicket"),
    ("airflow_opsflow.notifications.reports", "airflow_opsflow.report_deliveries", "SlackReport"),
    ("airflow_opsflow.notifications.reports", "airflow_opsflow.report_deliveries", "EmailReport"),
    ("airflow_opsflow.notifications.notifier", "airflow_opsflow.notifiers.incident", "IncidentNotifier"),
    ("airflow_opsflow.alerts", "airflow_opsflow.incidents.route", "AlertRoute"),
])
def test_former_paths_give_the_same_class(old: str, new: str, name: str) -> None:
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)
