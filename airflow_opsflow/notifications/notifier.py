"""Moved to :mod:`airflow_opsflow.notifiers.incident`; this path keeps working."""

from airflow_opsflow.notifiers.incident import IncidentNotifier

__all__ = ["IncidentNotifier"]
