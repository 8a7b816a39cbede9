"""Every public class of the provider documents each of its parameters, appears in the reference, and the
documentation site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC = {
    "airflow_opsflow.operators.data_check": ["DataCheckOperator"],
    "airflow_opsflow.operators.check_results": ["CheckResultsOperator"],
    "airflow_opsflow.operators.dbt_results": ["DbtResultsOperator"],
    "airflow_opsflow.operators.report": ["ReportOperator"],
    "airflow_opsflow.operators.reverse_sync": ["ReverseSyncOperator"],
    "airflow_opsflow.operators.ticket": ["TicketOperator"],
    "airflow_opsflow.sensors.data_condition": ["DataConditionSensor"],
    "airflow_opsflow.sensors.ticket": ["TicketSensor"],
    "airflow_opsflow.triggers.data_condition": ["DataConditionTrigger"],
    "airflow_opsflow.triggers.ticket": ["TicketStatusTrigger", "TicketRouteTrigger"],
    "airflow_opsflow.hooks.jira": ["JiraTicketHook"],
    "airflow_opsflow.hooks.hubspot": ["HubSpotHook"],
    "airflow_opsflow.incidents.route": ["AlertRoute"],
    "airflow_opsflow.alerts.slack": ["SlackAlert"],
    "airflow_opsflow.alerts.email": ["EmailAlert"],
    "airflow_opsflow.alerts.jira": ["JiraTicket"],
    "airflow_opsflow.alerts.hubspot": ["HubSpotTicket"],
    "airflow_opsflow.alerts.salesforce": ["SalesforceCase"],
    "airflow_opsflow.alerts.zendesk": ["ZendeskTicket"],
    "airflow_opsflow.incidents.tickets": ["TicketRoute"],
    "airflow_opsflow.notifiers.incident": ["IncidentNotifier"],
    "airflow_opsflow.report_deliveries": ["ReportDelivery", "SlackReport", "EmailReport"],
    "airflow_opsflow.destinations.http": ["HttpEndpoint"],
    "airflow_opsflow.destinations.hubspot": ["HubSpotObjects"],
    "airflow_opsflow.destinations.table": ["DatabaseTable"],
    "airflow_opsflow.destinations.zendesk": ["ZendeskObjects"],
    "airflow_opsflow.destinations.salesforce": ["SalesforceObjects"],
    "airflow_opsflow.sync.mapping": ["Field"],
    "airflow_opsflow.incidents.lifecycle": ["Policy"],
    "airflow_opsflow.links": ["TicketLink"],
}


def documented(cls: type) -> set[str]:
    """``:param x:`` names in the class's and its bases' docstrings (``:param a, b:`` counts for both)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        for m in re.finditer(r":param ([\w, ]+):", klass.__doc__ or ""):
            names |= {n.strip() for n in m.group(1).split(",")}
    return names


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in PUBLIC.items() for n in names])
def test_every_parameter_is_documented(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    missing = [p.name for p in params if p.name not in documented(cls)]
    assert not missing, f"{name} does not document {missing}"


def test_every_public_class_is_in_the_reference() -> None:
    reference = "\n".join(p.read_text() for p in (REPO / "docs" / "reference").glob("*.md"))
    missing = [f"{m}.{n}" for m, names in PUBLIC.items() for n in names if f"::: {m}.{n}" not in reference]
    assert not missing, f"not in docs/reference: {missing}"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    import os

    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    operators = (tmp_path / "site" / "reference" / "operators" / "index.html").read_text()
    assert "statement_timeout" in operators and "DbtResultsOperator" in operators  # parameters are rendered
