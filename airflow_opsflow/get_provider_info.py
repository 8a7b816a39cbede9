"""Provider metadata read by Airflow's ProvidersManager. Pure data: no imports, no I/O."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-opsflow",
        "name": "opsflow",
        "description": "Operational data checks, alerts, tickets and reverse ETL for Apache Airflow.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "opsflow data checks",
                "external-doc-url": "https://pypi.org/project/airflow-opsflow/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "opsflow data checks",
                "python-modules": ["airflow_opsflow.operators.data_check"],
            }
        ],
        "sensors": [
            {
                "integration-name": "opsflow data checks",
                "python-modules": ["airflow_opsflow.sensors.data_condition"],
            }
        ],
        "triggers": [
            {
                "integration-name": "opsflow data checks",
                "python-modules": ["airflow_opsflow.triggers.data_condition"],
            }
        ],
    }
